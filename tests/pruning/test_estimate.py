"""Device profiles and the per-op latency/RAM/flash estimator (contract.devices, pruning.estimate)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from contract import devices
from contract.errors import PruningError
from pruning.export import to_tflite

REQUIRED = {"host", "cortex-m4f-120mhz", "cortex-m7-216mhz", "cortex-m33-160mhz", "cortex-a53-1200mhz",
            "cortex-a53-1200mhz-2t", "cortex-a55-1200mhz", "cortex-a55-1200mhz-2t", "cortex-a76-2400mhz"}  # fmt: skip
L = keras.layers


def _export(model: keras.Model, quantization: str = "none") -> bytes:
    shape = tuple(int(d) for d in model.input_shape[1:])
    rep = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
    return to_tflite(model, quantization, rep)


def _conv_net(filters: int = 32, size: int = 32, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            L.Conv2D(filters, 3, padding="same", activation="relu"),
            L.Conv2D(filters, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(2 * filters, 3, padding="same", activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(10),
        ]
    )


@pytest.fixture(scope="module")
def conv_int8() -> bytes:
    return _export(_conv_net(), "int8")


@pytest.fixture(scope="module")
def conv_float() -> bytes:
    return _export(_conv_net(), "none")


def test_profiles_load_and_every_field_has_a_source() -> None:
    profiles = devices.load_profiles()
    assert REQUIRED <= set(profiles)
    for name, p in profiles.items():
        assert p.name == name
        assert p.kind in devices.KINDS
        assert p.clock_mhz > 0
        assert p.ram_bytes > 0
        assert p.flash_bytes > 0
        assert p.threads >= 1
        assert p.macs_per_cycle.get("int8", 0) > 0
        assert p.macs_per_cycle.get("float32", 0) > 0
        missing = [f for f in devices.REQUIRED_SOURCES if not p.sources.get(f)]
        assert not missing, f"{name}: no source for {missing}"
        for cls in devices.MAC_CLASSES:
            assert p.efficiency.get(cls), f"{name}: no efficiency for {cls}"
        low, high = p.error_band
        assert 0 < low < 1 < high
        d = p.to_dict()
        assert d["name"] == name
        assert "sources" in d
        assert isinstance(d["error_band"], list)
    assert profiles["cortex-a53-1200mhz-2t"].threads == 2
    assert all(not profiles[n].sparse_speedup for n in profiles if n.startswith("cortex-m"))
    assert profiles["cortex-m4f-120mhz"].runtime == "TFLite Micro + CMSIS-NN (2022+ kernels)"
    assert profiles["cortex-m4f-120mhz-tflm2020"].runtime == "TFLite Micro v2.3.1 + CMSIS-NN (2020)"


def test_unknown_device_raises_pruning_error() -> None:
    with pytest.raises(PruningError) as err:
        devices.get_profile("cortex-z80-4mhz")
    assert err.value.code == "unknown_device"


def test_devices_module_does_not_import_tensorflow() -> None:
    code = (
        "import sys, json; import contract.devices as d; d.load_profiles(); d.get_profile('host');"
        "heavy = [m for m in ('tensorflow', 'keras', 'ai_edge_litert', 'numpy', 'tflite_micro') if m in sys.modules];"
        "print(json.dumps(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_estimate_has_the_report_fields(conv_int8: bytes) -> None:
    from pruning.estimate import estimate

    e = estimate(conv_int8, devices.get_profile("cortex-m4f-120mhz"))
    assert set(e) == {"device", "estimate_ms", "low_ms", "high_ms", "ram_bytes", "flash_bytes", "fits", "basis"} | {
        "energy_mj",
        "energy_low_mj",
        "energy_high_mj",
        "inferences_per_mah",
    }
    assert e["low_ms"] < e["estimate_ms"] < e["high_ms"]
    assert e["flash_bytes"] > len(conv_int8)
    assert e["fits"] is True
    assert "TFLite Micro" in e["basis"]


def test_estimates_grow_with_macs() -> None:
    from pruning.estimate import estimate

    # 128 filters, not 48: on an x86 host with AMX, XNNPACK's int8 kernels work on 64-channel tiles, so 16 and 48
    # filters cost the same padded MACs (measured on a Xeon: 0.093 vs 0.107 ms; 128 filters 0.35 ms)
    small, big = _export(_conv_net(16), "int8"), _export(_conv_net(128), "int8")
    for name in ("host", "cortex-m4f-120mhz", "cortex-a53-1200mhz", "cortex-a76-2400mhz"):
        p = devices.get_profile(name)
        assert estimate(big, p)["estimate_ms"] > 2 * estimate(small, p)["estimate_ms"], name


def test_depthwise_and_pointwise_have_different_cost_classes() -> None:
    from pruning.estimate import analyse, op_time_us, parse

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 32)), L.DepthwiseConv2D(3, padding="same"), L.Conv2D(32, 1)])
    tfl = _export(model, "int8")
    costs = {c.op: c for c in analyse(parse(tfl))}
    dw, pw = costs["DEPTHWISE_CONV_2D"], costs["CONV_2D"]
    assert (dw.cls, pw.cls) == ("depthwise", "conv1x1")
    assert dw.macs == 16 * 16 * 32 * 9
    assert pw.macs == 16 * 16 * 32 * 32
    for name in ("host", "cortex-m4f-120mhz", "cortex-a76-2400mhz"):
        p = devices.get_profile(name)
        assert p.efficiency["depthwise"]["int8"] != p.efficiency["conv1x1"]["int8"]
        # per MAC, depthwise is the costlier class on every runtime
        assert op_time_us(dw, p) / dw.macs > op_time_us(pw, p) / pw.macs, name


def test_unstructured_sparsity_gives_no_speedup_on_mcu() -> None:
    from pruning.estimate import estimate

    model = _conv_net(32)
    dense = _export(model, "int8")
    for layer in model.layers:
        if layer.weights:
            k = layer.weights[0]
            v = np.asarray(k.numpy())
            k.assign(np.where(np.abs(v) < np.quantile(np.abs(v), 0.8), 0, v))
    sparse = _export(model, "int8")
    for name in ("cortex-m4f-120mhz", "cortex-m7-216mhz", "host"):
        p = devices.get_profile(name)
        a, b = estimate(dense, p), estimate(sparse, p)
        assert b["estimate_ms"] == pytest.approx(a["estimate_ms"], rel=0.02), name
    m4 = estimate(sparse, devices.get_profile("cortex-m4f-120mhz"))
    assert "no sparse kernels" in m4["basis"]


def test_channel_thinned_model_estimates_faster() -> None:
    from pruning.estimate import estimate

    # 128 -> 64 filters: below 64 channels an x86 host with AMX gains nothing (its int8 kernels' 64-channel tiles;
    # measured on a Xeon: 16 and 32 filters run alike), and the host estimate says so
    full, thin = _export(_conv_net(128), "int8"), _export(_conv_net(64), "int8")
    for name in ("cortex-m4f-120mhz", "cortex-a55-1200mhz", "host"):
        p = devices.get_profile(name)
        assert estimate(thin, p)["estimate_ms"] < 0.6 * estimate(full, p)["estimate_ms"], name


def test_model_bigger_than_mcu_ram_does_not_fit() -> None:
    from pruning.estimate import estimate

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((160, 160, 3)), L.Conv2D(32, 3, padding="same"), L.Conv2D(8, 1)])
    tfl = _export(model, "int8")  # 160*160*32 int8 activations = 800 KiB > 640 KiB
    e = estimate(tfl, devices.get_profile("cortex-m4f-120mhz"))
    assert e["fits"] is False
    assert e["ram_bytes"] > devices.get_profile("cortex-m4f-120mhz").ram_bytes
    assert "does not fit" in e["basis"]
    assert estimate(tfl, devices.get_profile("cortex-a76-2400mhz"))["fits"] is True


def test_peak_activation_memory_is_a_lifetime_scan() -> None:
    from pruning.estimate import parse, peak_activation_bytes

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 4)), L.Conv2D(8, 1), L.Conv2D(4, 1), L.Conv2D(2, 1)])
    graph = parse(_export(model, "int8"))
    # the largest step holds the 32x32x8 int8 tensor and one neighbour of it
    assert peak_activation_bytes(graph) == 32 * 32 * (4 + 8)


def test_float_model_on_mcu_is_slower_and_says_so(conv_int8: bytes, conv_float: bytes) -> None:
    from pruning.estimate import estimate

    p = devices.get_profile("cortex-m4f-120mhz")
    f, q = estimate(conv_float, p), estimate(conv_int8, p)
    assert f["estimate_ms"] > 3 * q["estimate_ms"]
    assert "float32 reference kernels" in f["basis"]


def test_host_estimate_within_a_loose_factor_of_measurement(
    conv_float: bytes, conv_int8: bytes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On tables calibrated on this CPU (a real `--quick` calibration, ~20-50 s): the committed fallback
    tables come from another CPU and may be off by several times (a 2-core AVX2 EPYC measured 0.43 ms
    where an AVX-512 machine's tables said 0.09), which is why a worker calibrates its own."""
    from pruning.estimate import profile_tflite
    from pruning.estimate.calibrate import calibrate_host

    tables = tmp_path / "host.json"
    tables.write_text(json.dumps(calibrate_host(log=lambda _m: None, quick=True, budget_s=20.0)))
    monkeypatch.setenv("SHEARS_HOST_PROFILE", str(tables))
    devices.clear_cache()
    try:
        _check_loose_factor(profile_tflite, conv_float, conv_int8)
    finally:
        monkeypatch.undo()
        devices.clear_cache()


def _check_loose_factor(profile_tflite: Any, conv_float: bytes, conv_int8: bytes) -> None:
    for tfl in (conv_float, conv_int8):
        (entry,) = profile_tflite(tfl, ["host"], measure_host=True)
        assert entry["measured_ms"] > 0
        ratio = entry["estimate_ms"] / entry["measured_ms"]
        assert 1 / 3 < ratio < 3, entry
        assert "measured_ms" in entry["basis"]


def test_profile_tflite_one_entry_per_device(conv_int8: bytes) -> None:
    from pruning.estimate import profile_tflite

    names = ["cortex-m4f-120mhz", "cortex-a53-1200mhz", "cortex-a53-1200mhz-2t"]
    entries = profile_tflite(conv_int8, names, measure_host=False)
    assert [e["device"] for e in entries] == names
    assert all(e["measured_ms"] is None for e in entries)
    one, two = entries[1], entries[2]
    assert two["estimate_ms"] < one["estimate_ms"]
    with pytest.raises(PruningError):
        profile_tflite(conv_int8, ["nope"], measure_host=False)


def test_tflite_micro_arena_measured_for_tiny_int8_model(conv_int8: bytes) -> None:
    from pruning import micro
    from pruning.estimate import estimate, parse, peak_activation_bytes

    if not micro.available():
        pytest.skip("tflite-micro is not installed")
    usage = micro.arena_usage(conv_int8, hint=peak_activation_bytes(parse(conv_int8)))
    assert usage is not None
    assert usage["head"] >= peak_activation_bytes(parse(conv_int8)) * 0.9
    assert usage["total"] == usage["head"] + usage["tail"]
    e = estimate(conv_int8, devices.get_profile("cortex-m4f-120mhz"))
    assert "measured with the tflite-micro interpreter" in e["basis"]
    p = devices.get_profile("cortex-m4f-120mhz")
    assert e["ram_bytes"] == usage["total"] + p.runtime_ram_bytes


def test_xnnpack_sparse_path_needs_densify() -> None:
    from pruning.estimate import analyse, parse, sparse_path

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(8, 3, strides=2, padding="same"), L.Conv2D(16, 1)])
    w = model.layers[1].kernel
    w.assign(np.zeros(w.shape, dtype="float32"))
    graph = parse(_export(model, "none"))
    applies, why = sparse_path(graph, analyse(graph))
    assert not applies
    assert "DENSIFY" in why
    p = dataclasses.replace(devices.get_profile("cortex-a76-2400mhz"), sparse_speedup=True)
    from pruning.estimate import estimate

    assert "no speed-up" in estimate(_export(model, "none"), p)["basis"]


def test_mcu_ram_falls_back_and_says_so_without_tflite_micro(conv_int8: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """tflite-micro is an optional extra (x86_64 Linux wheels only): without it the arena is computed."""
    from pruning import micro
    from pruning.estimate import estimate, parse, peak_activation_bytes

    monkeypatch.setattr(micro, "available", lambda: False)
    monkeypatch.setattr(micro, "arena_bytes", lambda *a, **k: pytest.fail("tflite-micro was asked"))
    e = estimate(conv_int8, devices.get_profile("cortex-m4f-120mhz"))
    assert "tflite-micro is not installed on this worker" in e["basis"]
    assert "shears[mcu]" in e["basis"]
    assert e["ram_bytes"] >= peak_activation_bytes(parse(conv_int8))


def test_a_recurrent_loop_is_costed_once_per_step() -> None:
    """A float GRU converted as it is (what a user uploads: the engine's own export unrolls up to 32 steps) is
    a WHILE loop whose body is another subgraph: its ops count once per time step (they were not counted at
    all: 1% of the measured time)."""
    from pruning.estimate.estimator import estimate
    from pruning.estimate.graph import parse
    from pruning.export import _convert

    def gru(steps: int) -> bytes:
        keras.utils.set_random_seed(0)
        return _convert(keras.Sequential([keras.Input((steps, 8)), L.GRU(16), L.Dense(3)]), "none", None)

    short, long = gru(10), gru(40)
    graph = parse(long)
    (loop,) = graph.loops
    assert loop.trips == loop.inlined == 40
    assert sum(op.name == "FULLY_CONNECTED" for op in graph.ops) == 2 * 40 + 1  # input and recurrent kernels, head
    host = devices.get_profile("host")
    a, b = estimate(short, host), estimate(long, host)
    assert 3.0 < b["estimate_ms"] / a["estimate_ms"] < 4.5
    assert "WHILE loop (a recurrent layer): its body of" in b["basis"]
    assert "costed 40 times" in b["basis"]
