"""Quantization-aware fine-tuning (pruning.qat, pruning.shipping): kernels seen as the converter stores them,
zeros held, and which file a job ships."""

from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from pruning import export, qat
from pruning.datasets import Data, digits
from pruning.run import run
from pruning.spec import PruneSpec
from pruning.tflite_file import zero_fraction


@pytest.fixture(scope="module")
def small_digits() -> Data:
    d = digits()
    return Data(d.x_train[:400], d.y_train[:400], d.x_val, d.y_val, name="digits-small")


def _layers_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, activation="relu", name="dw")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))


def test_fake_quantization_is_what_the_converter_stores() -> None:
    """Per output channel, symmetric, max|w|/127: the int8 file's kernels, dequantized, are our fake-quantized ones."""
    model = _layers_model()
    x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
    interp = export.interpreter(export.to_tflite(model, "int8", x))
    interp.allocate_tensors()
    stored = {}
    for d in interp.get_tensor_details():
        scales = d["quantization_parameters"]["scales"]
        if d["dtype"] == np.int8 and len(scales) > 1 and len(d["shape"]) >= 2:
            q = interp.get_tensor(d["index"]).astype(np.float64)
            shape = [1] * q.ndim
            shape[d["quantization_parameters"]["quantized_dimension"]] = -1
            stored[tuple(d["shape"])] = q * scales.reshape(shape)
    kernels, skipped = qat.quantized_kernels(model)
    assert skipped == []
    assert len(kernels) == 3
    for variable, axes in kernels:
        ours = qat.fake_quantize(np.asarray(variable), axes)
        name = variable.path.split("/")[0]
        # Keras layouts to TFLite's: conv (kh,kw,in,out) -> (out,kh,kw,in); depthwise (kh,kw,in,m) ->
        # (1,kh,kw,in*m); dense (in,out) -> (out,in).
        if name == "conv":
            ours = ours.transpose(3, 0, 1, 2)
        elif name == "dw":
            ours = ours.reshape(1, 3, 3, -1)
        else:
            ours = ours.T
        theirs = stored[ours.shape]
        close = np.isclose(ours, theirs, rtol=1e-5, atol=1e-7)
        assert close.mean() > 0.995, (name, close.mean())  # a rounding tie may fall the other way


def test_the_training_graph_computes_what_the_int8_file_computes() -> None:
    """Kernels and activations fake-quantized where the converter stores int8: the graph's outputs are the
    file's, up to the file's own output rounding (a graph whose ranges were calibrated through unready
    fake quantizers scored 14% where the file scored 89%)."""
    model = _layers_model()
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 8, 8, 3)).astype("float32")
    tflite = export.to_tflite(model, "int8", x)
    graph, tensors = qat.quantized_graph(model, x)
    assert tensors == 3  # the input, conv's relu and the depthwise's relu; not the model's output
    for variable, axes in qat.quantized_kernels(model)[0]:
        variable.assign(qat.fake_quantize(np.asarray(variable), axes))
    ours, theirs, plain = graph.predict(x, verbose=0), export.predict(tflite, x), model.predict(x, verbose=0)
    step = (theirs.max() - theirs.min()) / 255  # the file's output is int8 too
    assert np.abs(ours - theirs).mean() < 2 * step
    assert np.abs(ours - theirs).mean() < 0.75 * np.abs(plain - theirs).mean()  # closer than the float model
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() > 0.95


def test_the_forward_pass_sees_int8_kernels_and_the_float_weights_move() -> None:
    model = _layers_model()
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 5, 32)
    kernels, _ = qat.quantized_kernels(model)
    floats = [np.asarray(v).copy() for v, _ in kernels]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    # A step at rate 0: the loss is that of the int8 kernels, and the float weights come back unrounded.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss)
    seen = model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[qat.FakeQuantizedKernels(kernels)])
    for (variable, _), before in zip(kernels, floats, strict=True):
        np.testing.assert_array_equal(np.asarray(variable), before)
    for (variable, axes), before in zip(kernels, floats, strict=True):
        variable.assign(qat.fake_quantize(before, axes))
    quantized_loss = float(loss(y, model(x)))
    for (variable, _), before in zip(kernels, floats, strict=True):
        variable.assign(before)
    assert seen.history["loss"][0] == pytest.approx(quantized_loss, rel=1e-5)
    assert float(loss(y, model(x))) != pytest.approx(quantized_loss, rel=1e-5)

    # At a real rate the float weights move by the update, and are not left rounded to the int8 grid.
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=loss)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[qat.FakeQuantizedKernels(kernels)])
    for (variable, axes), before in zip(kernels, floats, strict=True):
        now = np.asarray(variable)
        assert not np.array_equal(now, before)
        assert not np.allclose(now, qat.fake_quantize(now, axes))


def test_zeros_stay_zero_through_quantization_aware_finetuning() -> None:
    model = _layers_model()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 5, 64)
    kernels, _ = qat.quantized_kernels(model)
    for variable, _ in kernels:
        w = np.asarray(variable)
        variable.assign(np.where(rng.random(w.shape) < 0.6, 0.0, w).astype(w.dtype))
    zeros = [np.asarray(v) == 0 for v, _ in kernels]
    done = qat.finetune_quantized(
        model,
        x,
        y,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        epochs=2,
        batch_size=16,
        optimizer=lambda steps: keras.optimizers.Adam(1e-2),
        on_progress=lambda f: None,
    )
    assert done["zeros_held"]
    assert done["fake_quantized"]["kernels"] == 3
    for (variable, _), zero in zip(kernels, zeros, strict=True):
        assert np.all(np.asarray(variable)[zero] == 0)
        assert variable.constraint is None  # the hold is removed afterwards


def test_a_job_asked_for_quantization_aware_int8_says_which_file_ships(
    digits_model: Path, small_digits: Data, tmp_path: Path
) -> None:
    spec = PruneSpec(sparsity=0.6, epochs=1, quantization="int8", quantization_aware="always")
    report = run(digits_model, small_digits, spec, tmp_path).report
    block = report["quantization"]
    assert set(block) >= {"path", "post_training", "quantization_aware", "note"}
    aware, post = block["quantization_aware"], block["post_training"]
    assert aware["epochs"] == qat.QAT_EPOCHS
    assert aware["zeros_held"]
    assert aware["seconds"] > 0
    shipped = aware if block["path"] == "quantization_aware" else post
    assert shipped["drop"] == min(aware["drop"], post["drop"])
    # The headline and the guard judge the file that ships, and that file keeps the cut's zeros.
    assert report["accuracy"]["after"] == pytest.approx(shipped["after"])
    assert report["accuracy"]["judged_on"] == "tflite"
    assert zero_fraction((tmp_path / "model.tflite").read_bytes()) > 0.4

    never = run(digits_model, small_digits, replace(spec, quantization_aware="never"), tmp_path / "never").report
    assert never["quantization"]["path"] == "post_training"
    assert "quantization_aware" not in never["quantization"]


def _fragile(tmp_path: Path, data: Data) -> Path:
    """A dense classifier of the digits whose int8 file is broken by its input: one extra input feature that
    is 0 except on one training sample, where it is 5,000, so the input's int8 scale swallows the rest."""
    keras.utils.set_random_seed(3)
    flat = data.x_train.shape[1] * data.x_train.shape[2] * data.x_train.shape[3]
    model = keras.Sequential(
        [keras.Input((flat + 1,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=keras.losses.SparseCategoricalCrossentropy(True))
    x, _ = _widen(data)
    model.fit(x, data.y_train, epochs=15, batch_size=32, verbose=0)
    path = tmp_path / "fragile.keras"
    model.save(path)
    return path


def _widen(data: Data) -> tuple[np.ndarray, np.ndarray]:
    def wide(x: np.ndarray, spike: bool) -> np.ndarray:
        extra = np.zeros((len(x), 1), np.float32)
        if spike:
            extra[0, 0] = 5000.0
        return np.concatenate([x.reshape(len(x), -1), extra], axis=1).astype(np.float32)

    return wide(data.x_train, True), wide(data.x_val, False)


def test_auto_runs_quantization_aware_finetuning_only_when_post_training_int8_breaks_the_guard(
    small_digits: Data, tmp_path: Path
) -> None:
    x_train, x_val = _widen(small_digits)
    data = Data(x_train, small_digits.y_train, x_val, small_digits.y_val, name="digits-spiked")
    model = _fragile(tmp_path, small_digits)
    spec = PruneSpec(sparsity=0.3, epochs=1, quantization="int8", max_accuracy_drop=0.05)
    report = run(model, data, spec, tmp_path / "auto").report
    block = report["quantization"]
    assert block["post_training"]["drop"] > 0.05  # the spike broke post-training int8 ...
    assert "quantization_aware" in block  # ... so auto tried quantization-aware fine-tuning
    if report["guard"]["met"] is False:  # the input's scale is not a kernel's: it may not recover, but says so
        assert "loses" in report["guard"]["note"]
        assert block["note"] in report["guard"]["note"]

    never = run(model, data, replace(spec, quantization_aware="never"), tmp_path / "never").report
    assert "quantization_aware" not in never["quantization"]
    assert never["guard"]["met"] is False
    assert "turned off" in never["guard"]["note"]


def test_asking_for_quantization_aware_finetuning_without_int8_is_refused() -> None:
    """It would do nothing: the engine (and `shears prune`) refuse it, as the API does (tests/api/test_jobs.py)."""
    with pytest.raises(ValueError, match="needs quantization int8"):
        PruneSpec(quantization="float16", quantization_aware="always")
    assert PruneSpec(quantization="float16", quantization_aware="auto").quantization_aware == "auto"
