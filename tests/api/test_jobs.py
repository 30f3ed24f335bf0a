"""Job submission: strict specs, clear 4xx errors, and failed jobs that say why."""

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_auth_and_tenancy import _assert_error
from tests.services import Service, wait_for_job


@pytest.fixture(scope="module")
def model_id(embedded: Service, key: str, digits_model: Path) -> str:
    with embedded.client(key) as c, digits_model.open("rb") as f:
        return str(c.post("/v1/models", files={"file": ("m.keras", f)}).json()["id"])


def _spec(model_id: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"model_id": model_id, "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}}
    spec.update(changes)
    return spec


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"colour": "red"}, "invalid_request"),
        ({"target": {"sparsity": 1.5}}, "invalid_request"),
        ({"target": {"sparsity": 0.5, "macs_reduction": 0.5}}, "invalid_request"),
        ({"finetune": {"epochs": -1}}, "invalid_request"),
        ({"finetune": {"epochs": 1, "batch_size": 64, "lr": 0.1}}, "invalid_request"),
        ({"quantization": "int4"}, "invalid_request"),
        ({"quantization": "int8", "quantization_aware": "sometimes"}, "invalid_request"),
        ({"quantization_aware": "always"}, "invalid_spec"),
        ({"devices": ["toaster-9000"]}, "unknown_device"),
        ({"target": {"macs_reduction": 0.5}}, "invalid_spec"),
        ({"n_of_m": {"n": 2, "m": 4}}, "invalid_spec"),
        ({"granularity": "n_of_m", "n_of_m": {"n": 4, "m": 4}}, "invalid_request"),
        ({"kind": "sweep"}, "invalid_spec"),
        ({"kind": "mystery"}, "invalid_request"),
        ({"granularity": "channel", "target": {"sparsity": 0.5}, "block": 4}, "invalid_spec"),
        ({"block": 0}, "invalid_request"),
        ({"target": {"latency_ms": 5, "device": "host"}}, "invalid_spec"),
        ({"granularity": "n_of_m", "target": {"latency_ms": 5, "device": "host"}}, "invalid_spec"),
        ({"granularity": "channel", "target": {"latency_ms": 5, "device": "toaster-9000"}}, "unknown_device"),
        ({"granularity": "channel", "target": {"latency_ms": 5}}, "invalid_request"),
        ({"dataset_id": "builtin:har"}, "data_mismatch"),
        ({"target": None}, "invalid_spec"),
    ],
)
def test_bad_specs_are_422(embedded: Service, key: str, model_id: str, changes: dict[str, Any], code: str) -> None:
    with embedded.client(key) as c:
        _assert_error(c.post("/v1/jobs", json=_spec(model_id, **changes)), 422, code)


def test_latency_target_needs_channels_and_names_the_known_devices(embedded: Service, key: str, model_id: str) -> None:
    with embedded.client(key) as c:
        r = c.post("/v1/jobs", json=_spec(model_id, target={"latency_ms": 5, "device": "host"}))
        assert r.status_code == 422
        assert "do not make it faster" in r.json()["error"]["message"]
        spec = _spec(model_id, granularity="channel", target={"latency_ms": 5, "device": "toaster-9000"})
        r = c.post("/v1/jobs", json=spec)
        assert r.status_code == 422
        assert "cortex-a53-1200mhz" in r.json()["error"]["message"]


def test_latency_job_runs_to_its_budget(embedded: Service, key: str, model_id: str) -> None:
    target = {"latency_ms": 0.25, "device": "cortex-a53-1200mhz"}  # the dense digits CNN: ~0.35 ms
    spec = _spec(model_id, granularity="channel", target=target, finetune={"epochs": 0})
    with embedded.client(key) as c:
        job = _submit(c, spec)
        assert job["status"] == "queued"
        assert job["spec"]["target"] == target
        done = wait_for_job(c, job["id"])
        assert done["status"] == "succeeded", done["error"]
        found = c.get(f"/v1/jobs/{job['id']}/report").json()["latency_search"]
    assert found["met"] is True
    assert found["reached_estimate_ms"] <= 0.25 < found["dense_estimate_ms"]
    assert found["rounds"]


def test_blocks_of_zeros_reach_the_downloaded_model(embedded: Service, key: str, model_id: str) -> None:
    from pruning.tflite_file import zero_fraction

    spec = _spec(model_id, target={"sparsity": 0.75}, block=4, finetune={"epochs": 0})
    with embedded.client(key) as c:
        done = wait_for_job(c, _submit(c, spec)["id"])
        assert done["status"] == "succeeded", done["error"]
        report = c.get(f"/v1/jobs/{done['id']}/report").json()
        tflite = c.get(f"/v1/jobs/{done['id']}/model.tflite").content
    assert report["pruning"]["block"] == 4
    assert report["sparsity"]["overall"] == pytest.approx(0.75, abs=0.02)
    assert zero_fraction(tflite) >= 0.7
    # Scope and schedule were left unset: the engine chose them and says so.
    assert report["pruning"]["scope"] == "global"
    assert report["schedule"]["chosen"] == ["scope", "schedule", "steps"]
    assert report["schedule"]["kind"] == "polynomial"
    assert report["schedule"]["steps"] == 1  # no epochs: one round
    assert "unset in the job" in report["schedule"]["why"]


def test_an_int8_job_fine_tuned_with_fake_quantization_says_which_file_shipped(
    embedded: Service, key: str, model_id: str
) -> None:
    from shears_client.report import Report

    spec = _spec(model_id, quantization="int8", quantization_aware="always", finetune={"epochs": 1})
    with embedded.client(key) as c:
        done = wait_for_job(c, _submit(c, spec)["id"])
        assert done["status"] == "succeeded", done["error"]
        raw = c.get(f"/v1/jobs/{done['id']}/report").json()
    report = Report.from_json(raw)
    assert report.quantization is not None
    assert report.quantization.path in ("post_training", "quantization_aware")
    assert report.quantization.quantization_aware is not None
    shipped = getattr(report.quantization, report.quantization.path)
    assert report.accuracy is not None
    assert report.accuracy.after == pytest.approx(shipped.after)
    assert raw["quantization"]["quantization_aware"]["zeros_held"] is True
    # Every field the client types is one the engine writes.
    from shears_client.report import Quantization, QuantizedFile

    assert set(Quantization.fields()) <= set(raw["quantization"])
    for path in ("post_training", "quantization_aware"):
        assert set(QuantizedFile.fields()) <= set(raw["quantization"][path])


def test_unknown_ids_are_404(embedded: Service, key: str, model_id: str) -> None:
    with embedded.client(key) as c:
        _assert_error(c.post("/v1/jobs", json=_spec("mdl_nope")), 404)
        _assert_error(c.post("/v1/jobs", json=_spec(model_id, dataset_id="ds_nope")), 404)
        _assert_error(c.post("/v1/jobs", json=_spec(model_id, dataset_id="builtin:imagenet")), 404)
        _assert_error(c.get("/v1/jobs/job_nope"), 404)
        _assert_error(c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}), 422)


def _submit(c: httpx.Client, spec: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/v1/jobs", json=spec)
    assert r.status_code == 202, r.text
    return dict(r.json())


def test_results_before_success_are_409_and_cancel_of_queued_job(embedded: Service, key: str, model_id: str) -> None:
    # The workers are held still from submit to cancel, so the job is certainly queued when cancelled
    # (it was a race with the embedded worker taking it).
    with embedded.client(key) as c, embedded.workers_paused():
        job = _submit(c, _spec(model_id, finetune={"epochs": 50}))
        _assert_error(c.get(f"/v1/jobs/{job['id']}/model.tflite"), 409, "job_not_finished")
        _assert_error(c.get(f"/v1/jobs/{job['id']}/artifacts"), 409, "job_not_finished")
        _assert_error(c.get(f"/v1/jobs/{job['id']}/artifacts/layers.png"), 409, "job_not_finished")
        assert c.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
        cancelled = c.post(f"/v1/jobs/{job['id']}/cancel").json()
        assert cancelled["cancel_requested"] is True
        assert cancelled["status"] == "cancelled"  # a queued job is cancelled at once
    with embedded.client(key) as c:
        final = wait_for_job(c, job["id"])
        assert final["status"] == "cancelled"
        _assert_error(c.post(f"/v1/jobs/{job['id']}/cancel"), 409, "job_finished")
        assert [j["id"] for j in c.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]].count(
            job["id"]
        ) == 1


def test_job_whose_model_cannot_be_loaded_fails_with_a_reason(embedded: Service, digits_model: Path) -> None:
    key = embedded.new_key()  # a tenant of its own: its copy of the model is about to be damaged
    with embedded.client(key) as c, digits_model.open("rb") as f:
        model = c.post("/v1/models", files={"file": ("m.keras", f)}).json()
    # The stored file goes bad after upload (disk fault, bad sync): the job must fail, not hang.
    (stored,) = (embedded.root / "artifacts").glob(f"*/models/{model['id']}/model.keras")
    stored.write_bytes(stored.read_bytes()[:1000])
    with embedded.client(key) as c:
        job = wait_for_job(c, _submit(c, _spec(model["id"]))["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "corrupt_archive"
    assert "damaged or truncated" in job["error"]["message"]


def test_job_with_mismatched_labels_fails_with_a_reason(embedded: Service, key: str, tmp_path: Path) -> None:
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")]
    )
    model.save(tmp_path / "four.keras")
    with embedded.client(key) as c:
        uploaded = c.post("/v1/models", files={"file": ("four.keras", (tmp_path / "four.keras").read_bytes())}).json()
        job = wait_for_job(c, _submit(c, _spec(uploaded["id"]))["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "data_mismatch"
    assert "4 outputs" in job["error"]["message"]
