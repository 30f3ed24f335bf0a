"""Device profiles through the API and the CLI, estimates in every report, and profile jobs."""

import json
import subprocess
import sys
from pathlib import Path

from tests.services import Service, wait_for_job

DEVICES = ["host", "cortex-m4f-120mhz", "cortex-a53-1200mhz", "cortex-a76-2400mhz"]


def test_devices_are_listed_with_their_sources(embedded: Service) -> None:
    with embedded.client(embedded.new_key()) as c:
        items = c.get("/v1/devices").json()["items"]
    names = {d["name"] for d in items}
    assert {
        "host",
        "cortex-m4f-120mhz",
        "cortex-m7-216mhz",
        "cortex-m33-160mhz",
        "cortex-a53-1200mhz",
        "cortex-a55-1200mhz",
        "cortex-a76-2400mhz",
    } <= names
    for device in items:
        for field in (
            "clock_mhz",
            "ram_bytes",
            "flash_bytes",
            "macs_per_cycle",
            "mem_bandwidth_gbps",
            "per_op_overhead_us",
        ):
            assert device[field] is not None
            assert device["sources"].get(field), (device["name"], field)
    cli = subprocess.run(
        [sys.executable, "-m", "shears.cli", "devices", "--json"], capture_output=True, text=True, check=True
    )
    assert {d["name"] for d in json.loads(cli.stdout)} == names


def test_devices_filter_by_kind(embedded: Service) -> None:
    with embedded.client(embedded.new_key()) as c:
        watches = c.get("/v1/devices", params={"kind": "watch"}).json()["items"]
        bad = c.get("/v1/devices", params={"kind": "toaster"})
    names = {d["name"] for d in watches}
    assert {"galaxy-watch4", "galaxy-watch5", "pixel-watch-2", "pixel-watch-2-4t", "cortex-a55-1200mhz"} <= names
    assert {d["kind"] for d in watches} == {"watch"}
    assert all(d["active_power_mw"] > 0 and d["sources"]["active_power_mw"] for d in watches)
    assert bad.status_code == 422
    assert "watch" in bad.json()["error"]["message"]


def test_prune_report_has_every_requested_device(embedded: Service, digits_model: Path) -> None:
    with embedded.client(embedded.new_key()) as c:
        with digits_model.open("rb") as f:
            model = c.post("/v1/models", files={"file": ("m.keras", f)}).json()
        spec = {
            "model_id": model["id"],
            "dataset_id": "builtin:digits",
            "granularity": "channel",
            "target": {"sparsity": 0.5},
            "finetune": {"epochs": 1},
            "quantization": "int8",
            "devices": DEVICES,
        }
        job = wait_for_job(c, c.post("/v1/jobs", json=spec).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        report = c.get(f"/v1/jobs/{job['id']}/report").json()
    for key in ("latency",):
        entries = {e["device"]: e for e in report[key]}
        dense = {e["device"]: e for e in report["baseline"][key]}
        assert list(entries) == DEVICES
        for name, entry in entries.items():
            assert entry["low_ms"] <= entry["estimate_ms"] <= entry["high_ms"]
            assert entry["ram_bytes"] > 0
            assert entry["flash_bytes"] >= report["size"]["tflite_bytes"]
            assert isinstance(entry["fits"], bool)
            assert entry["basis"]
            # Channel removal makes the model faster on every device, by the same estimator.
            assert entry["estimate_ms"] < dense[name]["estimate_ms"]
        assert entries["host"]["measured_ms"] > 0
        assert entries["cortex-m4f-120mhz"]["measured_ms"] is None


def test_profile_job_for_a_tflite_upload(embedded: Service, tmp_path: Path) -> None:
    import keras

    from pruning.export import to_tflite

    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(16, 3),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    (tmp_path / "m.tflite").write_bytes(to_tflite(model))
    with embedded.client(embedded.new_key()) as c:
        uploaded = c.post("/v1/models", files={"file": ("m.tflite", (tmp_path / "m.tflite").read_bytes())}).json()
        spec = {"model_id": uploaded["id"], "kind": "profile", "devices": ["host", "cortex-m7-216mhz"]}
        job = wait_for_job(c, c.post("/v1/jobs", json=spec).json()["id"])
        assert job["status"] == "succeeded", job["error"]
        report = c.get(f"/v1/jobs/{job['id']}/report").json()
        assert c.get(f"/v1/jobs/{job['id']}/model.tflite").content == (tmp_path / "m.tflite").read_bytes()
        bad = c.post("/v1/jobs", json=dict(spec, devices=["host", "toaster-9000"]))
        assert bad.status_code == 422
        assert "toaster-9000" in bad.json()["error"]["message"]
        assert "galaxy-watch5" in bad.json()["error"]["message"]  # the known names are listed
    assert [e["device"] for e in report["latency"]] == ["host", "cortex-m7-216mhz"]
    host, m7 = report["latency"]
    assert "host tables" in host["basis"]  # whose calibration, and whether it is this CPU's
    assert "fingerprint" in host["basis"]
    assert m7["energy_mj"] > 0
    assert m7["energy_low_mj"] < m7["energy_mj"] < m7["energy_high_mj"]
    assert m7["inferences_per_mah"] > 0
    assert report["size"]["tflite_bytes"] == (tmp_path / "m.tflite").stat().st_size
    assert job["result"]["latency"] == report["latency"]


def test_profile_command(tmp_path: Path, digits_model: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "shears.cli",
            "profile",
            str(digits_model),
            "--device",
            "host",
            "--device",
            "cortex-m4f-120mhz",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(out.stdout)
    assert [e["device"] for e in report["latency"]] == ["host", "cortex-m4f-120mhz"]
    assert report["latency"][0]["measured_ms"] > 0


def test_a_job_without_devices_reports_every_profile_of_its_class_that_it_fits(
    embedded: Service, tmp_path: Path
) -> None:
    """No `devices`: host, then the 1-thread profiles of the model's class that it fits (a tiny model: the
    microcontrollers; a model too big for any of them, 4 MiB of float activations > the 1 MiB of the largest: the
    watches, phones and boards)."""
    import keras
    import numpy as np

    from pruning.export import to_tflite

    tiny = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Conv2D(8, 3), keras.layers.Flatten(),
                             keras.layers.Dense(4)])  # fmt: skip
    big = keras.Sequential([keras.Input((256, 256, 3)), keras.layers.Conv2D(16, 3, padding="same"),
                            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)])  # fmt: skip
    rep = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype(np.float32)
    (tmp_path / "tiny.tflite").write_bytes(to_tflite(tiny, "int8", rep))
    (tmp_path / "big.tflite").write_bytes(to_tflite(big))
    reports = {}
    with embedded.client(embedded.new_key()) as c:
        for name in ("tiny", "big"):
            up = c.post("/v1/models", files={"file": (f"{name}.tflite", (tmp_path / f"{name}.tflite").read_bytes())})
            job = wait_for_job(
                c, c.post("/v1/jobs", json={"model_id": up.json()["id"], "kind": "profile"}).json()["id"]
            )
            assert job["status"] == "succeeded", job["error"]
            assert "devices" not in job["spec"]  # the echo shows what was set
            reports[name] = c.get(f"/v1/jobs/{job['id']}/report").json()
    profiles = {d["name"]: d for d in c_items(embedded)}
    for name, kinds in (("tiny", {"mcu"}), ("big", {"watch", "phone", "sbc"})):
        entries = reports[name]["latency"]
        devices = [e["device"] for e in entries]
        assert devices[0] == "host"
        assert entries[0]["measured_ms"] > 0
        others = devices[1:]
        assert len(others) >= 5, devices
        assert {profiles[d]["kind"] for d in others} == kinds
        assert all(profiles[d]["threads"] == 1 for d in others)
        assert all(e["fits"] and e["estimate_ms"] > 0 and e["energy_mj"] for e in entries[1:])
    assert "galaxy-watch5" in [e["device"] for e in reports["big"]["latency"]]
    assert "arduino-nano-33-ble-sense" in [e["device"] for e in reports["tiny"]["latency"]]


def c_items(service: Service) -> list[dict[str, object]]:
    with service.client(service.new_key()) as c:
        items: list[dict[str, object]] = c.get("/v1/devices").json()["items"]
    return items
