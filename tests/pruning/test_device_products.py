"""Devices as users name them, their power and battery figures, energy per inference, and estimates of ops
without a cost model (a stated fallback, never a crash)."""

import keras
import numpy as np
import pytest

from contract import devices
from pruning.estimate import estimate
from pruning.export import to_tflite

PRODUCTS = {
    "galaxy-watch4": ("watch", [1, 2]),
    "galaxy-watch5": ("watch", [1, 2]),
    "pixel-watch-2": ("watch", [1, 2, 4]),
    "pixel-7-big": ("phone", [1, 2]),
    "pixel-7-mid": ("phone", [1, 2]),
    "pixel-8-big": ("phone", [1]),
    "pixel-8-mid": ("phone", [1, 2, 4]),
    "raspberry-pi-4": ("sbc", [1, 2, 4]),
    "raspberry-pi-5": ("sbc", [1, 2, 4]),
    "arduino-nano-33-ble-sense": ("mcu", [1]),
    "stm32h7": ("mcu", [1]),
    "esp32-s3": ("mcu", [1]),
}


@pytest.fixture(scope="module")
def tiny_int8() -> bytes:
    x = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(8, 3, activation="relu")(x)
    y = keras.layers.GlobalAveragePooling2D()(y)
    model = keras.Model(x, keras.layers.Dense(4)(y))
    rep = np.random.default_rng(0).uniform(-1, 1, (8, 12, 12, 3)).astype(np.float32)
    return to_tflite(model, "int8", rep)


def test_products_have_kinds_threads_and_cited_sources() -> None:
    profiles = devices.load_profiles()
    for name, (kind, threads) in PRODUCTS.items():
        variants = [name] + [f"{name}-{n}t" for n in threads if n > 1]
        assert [profiles[v].threads for v in variants] == threads, name
        assert f"{name}-8t" not in profiles
        for v in variants:
            p = profiles[v]
            assert p.kind == kind, v
            assert p.based_on in profiles, v
            for key in ("clock_mhz", "ram_bytes", "threads", "active_power_mw", "battery"):
                assert p.sources.get(key), (v, key)
    assert "pixel-8-big-2t" not in profiles  # the Tensor G3 has one X3 core
    assert "ESP-NN" in profiles["esp32-s3"].notes  # says how it is costed
    assert profiles["arduino-nano-33-ble-sense"].clock_mhz == 64
    assert profiles["stm32h7"].clock_mhz == 480


def test_every_profile_but_host_has_a_cited_power_figure() -> None:
    for p in devices.load_profiles().values():
        if p.kind == "host":
            continue
        assert p.active_power_mw > 0, p.name
        assert p.battery_voltage_v > 0, p.name
        assert p.sources.get("active_power_mw"), p.name


def test_energy_per_inference_follows_latency_power_and_bands(tiny_int8: bytes) -> None:
    one = estimate(tiny_int8, devices.get_profile("pixel-watch-2"))
    four = estimate(tiny_int8, devices.get_profile("pixel-watch-2-4t"))
    p = devices.get_profile("pixel-watch-2")
    assert one["energy_mj"] == pytest.approx(one["estimate_ms"] * p.active_power_mw / 1000, rel=1e-3)
    assert one["energy_low_mj"] == pytest.approx(one["energy_mj"] * p.error_band[0] * p.power_band[0], rel=1e-3)
    assert one["energy_high_mj"] == pytest.approx(one["energy_mj"] * p.error_band[1] * p.power_band[1], rel=1e-3)
    assert one["inferences_per_mah"] == pytest.approx(3600 * p.battery_voltage_v / one["energy_mj"], rel=1e-3)
    assert "energy = estimate x" in one["basis"]
    # four busy cores draw more power than one: less time, not proportionally less energy
    assert four["estimate_ms"] < one["estimate_ms"]
    assert four["energy_mj"] / four["estimate_ms"] > one["energy_mj"] / one["estimate_ms"]
    host = estimate(tiny_int8, devices.get_profile("host"))
    assert host["energy_mj"] is None
    assert "no active-power figure" in host["basis"]


def test_an_op_without_a_cost_model_is_estimated_with_a_stated_fallback() -> None:
    x = keras.Input((16,))
    y = keras.layers.Dense(8)(x)
    model = keras.Model(x, keras.ops.cumsum(y, axis=-1))
    tflite = to_tflite(model, "none", np.zeros((2, 16), np.float32))
    for name in ("host", "cortex-a53-1200mhz", "galaxy-watch5"):
        e = estimate(tflite, devices.get_profile(name))
        assert e["estimate_ms"] > 0
        assert "FALLBACK" in e["basis"]
        assert "CUMSUM" in e["basis"]
