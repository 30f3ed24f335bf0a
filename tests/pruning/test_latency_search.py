"""Latency-budget search: the per-layer estimate agrees with the .tflite one, a reachable budget is met
through run(), an unreachable one under a tight guard stops with the best model and says so."""

import contextlib
import io
from pathlib import Path

import keras
import numpy as np
import pytest

from contract.devices import get_profile
from pruning import export
from pruning.datasets import Data, digits
from pruning.estimate import estimate
from pruning.estimate.keras_model import estimate_keras_ms
from pruning.graph import analyse, keep_indices
from pruning.latency_search import search_latency
from pruning.run import run
from pruning.spec import PruneSpec
from pruning.surgery import remove_channels

DEVICE = "cortex-a53-1200mhz"
L = keras.layers


def _tflite(model: keras.Model, quantization: str) -> bytes:
    sample = np.random.default_rng(0).random((8, *model.inputs[0].shape[1:])).astype("float32")
    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its SavedModel signature
        return export.to_tflite(model, quantization, sample)


def _har_like() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((64, 3)),
            L.Conv1D(8, 5, strides=2, padding="same", activation="relu"),
            L.Conv1D(16, 5, strides=2, padding="same", activation="relu"),
            L.GlobalAveragePooling1D(),
            L.Dense(16, activation="relu"),
            L.Dense(6, activation="softmax"),
        ]
    )


def _branchy() -> keras.Model:
    inputs = keras.Input((12, 12, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(16, 3, padding="same", use_bias=False)(inputs)))
    y = L.BatchNormalization()(L.Conv2D(16, 3, padding="same")(x))
    x = L.ReLU()(L.Add()([x, y]))
    a = L.Conv2D(12, 1)(L.DepthwiseConv2D(3, padding="same")(x))
    b = L.SeparableConv2D(8, 3, padding="same")(x)
    x = L.Concatenate()([a, b])
    x = L.Flatten()(L.MaxPooling2D()(x))
    return keras.Model(inputs, L.Dense(5, activation="softmax")(L.Dropout(0.1)(x)))


@pytest.mark.parametrize("build", [_har_like, _branchy])
@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_per_layer_estimate_agrees_with_the_tflite_estimate(build: object, quantization: str) -> None:
    model = build()  # type: ignore[operator]
    graph = analyse(model)
    # Cut every prunable group to 5/8 of its channels, the way a search proposal would.
    kept = {g.id: set(range(max(1, g.size * 5 // 8))) for g in graph.prunable()}
    pruned = remove_channels(graph, kept)

    def channels(t: object) -> int:
        index = keep_indices(graph.chan(t), kept)
        return int(t.shape[-1]) if index is None else len(index)  # type: ignore[attr-defined]

    exported = {id(model): _tflite(model, quantization), id(pruned): _tflite(pruned, quantization)}
    # (The host's figures are microseconds, below the report's 4-decimal rounding; Arm cores only.)
    for device in (DEVICE, "cortex-m4f-120mhz", "cortex-a76-2400mhz-4t"):
        profile = get_profile(device)
        for m, ch in ((model, None), (pruned, None), (model, channels)):
            reference = m if ch is None else pruned
            from_tflite = estimate(exported[id(reference)], profile)["estimate_ms"]
            per_layer = estimate_keras_ms(m, profile, quantization, ch)
            assert per_layer == pytest.approx(from_tflite, rel=0.03, abs=1e-4), (device, reference.name)
    assert estimate_keras_ms(pruned, get_profile(DEVICE)) < estimate_keras_ms(model, get_profile(DEVICE))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Data]:
    """A tiny conv net on the built-in digits, trained for a few seconds."""
    keras.utils.set_random_seed(0)
    data = digits()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            L.Conv2D(24, 3, padding="same", activation="relu", name="conv2"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(32, activation="relu", name="fc"),
            L.Dense(10, activation="softmax", name="classes"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=8, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    model.save(path)
    return path, data


def test_search_meets_a_reachable_budget_through_run(tiny: tuple[Path, Data], tmp_path: Path) -> None:
    path, data = tiny
    dense_ms = estimate(_tflite(keras.models.load_model(path), "none"), get_profile(DEVICE))["estimate_ms"]
    budget = round(0.6 * dense_ms, 4)
    spec = PruneSpec(
        granularity="channel", latency_ms=budget, device=DEVICE, epochs=1, learning_rate=1e-3, search_samples=256
    )
    assert DEVICE in spec.devices
    lines: list[str] = []
    result = run(path, data, spec, tmp_path, log=lines.append)
    found = result.report["latency_search"]
    assert found["met"] is True
    assert found["device"] == DEVICE
    assert found["budget_ms"] == budget
    assert found["dense_estimate_ms"] == pytest.approx(dense_ms)
    assert found["reached_estimate_ms"] <= budget
    assert found["rounds"]
    assert all({"round", "group", "channels_removed", "estimate_ms", "accuracy"} <= set(r) for r in found["rounds"])
    assert found["rounds"][-1]["estimate_ms"] <= budget
    # The delivered .tflite itself is within the budget, and its output layer is whole.
    shipped = result.tflite_path.read_bytes()
    assert estimate(shipped, get_profile(DEVICE))["estimate_ms"] <= budget
    [entry] = [e for e in result.report["latency"] if e["device"] == DEVICE]
    assert entry["estimate_ms"] <= budget
    pruned = keras.models.load_model(result.keras_path)
    assert pruned.get_layer("classes").units == 10
    assert result.report["accuracy"]["after"] > 0.5
    assert any(line.startswith("search round") for line in lines)


def test_unreachable_budget_under_a_tight_guard_returns_the_best_model(tiny: tuple[Path, Data]) -> None:
    path, data = tiny
    model = keras.models.load_model(path)
    profile = get_profile(DEVICE)
    dense_ms = estimate_keras_ms(model, profile)
    spec = PruneSpec(
        granularity="channel",
        latency_ms=0.05 * dense_ms,
        device=DEVICE,
        max_accuracy_drop=0.0,
        learning_rate=1e-3,
        search_samples=256,
    )
    found = search_latency(model, data, "sparse_categorical_crossentropy", spec)
    report = found.report
    assert report["met"] is False
    assert "cannot be met" in report["note"]
    assert report["reached_estimate_ms"] > spec.latency_ms
    assert estimate_keras_ms(found.model, profile) <= dense_ms
    assert found.model.get_layer("classes").units == 10
    # Every kept round stayed within the guard on the search's hold-out.
    assert all(r["accuracy"] >= report["hold_out"]["dense"] - 1e-6 for r in report["rounds"])  # rounded to 6 places


def test_latency_target_needs_channel_granularity_and_a_known_device() -> None:
    with pytest.raises(ValueError, match="do not make it faster"):
        PruneSpec(granularity="unstructured", latency_ms=1.0, device=DEVICE)
    with pytest.raises(ValueError, match="known devices: .*cortex-a53-1200mhz"):
        PruneSpec(granularity="channel", latency_ms=1.0, device="toaster-9000")
    with pytest.raises(ValueError, match="go together"):
        PruneSpec(granularity="channel", latency_ms=1.0)
    spec = PruneSpec.from_job_spec({"granularity": "channel", "target": {"latency_ms": 2.0, "device": DEVICE}})
    assert (spec.latency_ms, spec.device, spec.target_sparsity) == (2.0, DEVICE, 0.0)
