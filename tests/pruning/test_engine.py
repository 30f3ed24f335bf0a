"""The engine on tiny models, without the server: masks, schedules, the guard, reproducibility."""

from pathlib import Path

import keras
import numpy as np
import pytest
from pydantic import ValidationError

from contract.errors import PruningError
from contract.report import Report
from pruning import masks, schedule
from pruning.datasets import Data, digits, har
from pruning.finetune import EarlyStop, recalibrate_batchnorm
from pruning.report import write_report
from pruning.run import profile, run
from pruning.spec import PruneSpec
from pruning.tflite_file import constant_tensors


@pytest.fixture(scope="module")
def small_digits() -> Data:
    d = digits()
    return Data(d.x_train[:400], d.y_train[:400], d.x_val, d.y_val, name="digits-small")


def test_threshold_mask_prunes_exactly_the_lowest() -> None:
    scores = np.array([[0.5, 0.1], [0.9, 0.2]])
    assert masks.threshold_mask(scores, 0.5).tolist() == [[1, 0], [1, 0]]
    assert masks.threshold_mask(scores, 0.0).sum() == 4
    assert masks.threshold_mask(np.zeros(10), 0.3).sum() == 7  # ties still give the exact count


def test_polynomial_schedule_is_cubic_and_ends_on_target() -> None:
    plan = schedule.Polynomial(0.8, steps=4)
    values = [plan(t) for t in range(1, 5)]
    assert values == pytest.approx([0.8 * (1 - 0.75**3), 0.8 * (1 - 0.5**3), 0.8 * (1 - 0.25**3), 0.8])
    assert all(a < b for a, b in zip(values, values[1:], strict=False))
    with pytest.raises(ValueError, match="target"):
        schedule.Polynomial(1.2, steps=3)
    assert schedule.OneShot(0.5).get_config() == {"kind": "one_shot", "target": 0.5}


def test_a_schedule_config_rebuilds_the_same_schedule() -> None:
    """The report's `schedule` must describe the curve that ran: `power` included (it was dropped)."""
    plan = schedule.Polynomial(0.8, steps=4, initial=0.1, power=2)
    config = plan.get_config()
    assert config["power"] == 2
    rebuilt = schedule.Polynomial(**{k: v for k, v in config.items() if k != "kind"})
    assert [rebuilt(t) for t in range(1, 5)] == [plan(t) for t in range(1, 5)]


def test_unstructured_masks_hold_through_finetune_and_export(
    digits_model: Path, small_digits: Data, tmp_path: Path
) -> None:
    spec = PruneSpec(sparsity=0.7, epochs=2, learning_rate=1e-3, schedule="polynomial", steps=2, scope="per_layer")
    result = run(digits_model, small_digits, spec, tmp_path)
    pruned = keras.saving.load_model(result.keras_path)
    for variable in masks.prunable_variables(pruned):
        w = np.asarray(variable)
        assert np.mean(w == 0) == pytest.approx(0.7, abs=0.01), variable.path
    # The zeros survive conversion: every kernel in the flatbuffer is ~70% exact zeros.
    kernels = [v for _, v in constant_tensors(result.tflite_path.read_bytes()) if v.size >= 100]
    assert kernels
    assert all(np.mean(v == 0) == pytest.approx(0.7, abs=0.01) for v in kernels)
    report = result.report
    assert [r["sparsity"] for r in report["schedule"]["rounds"]] == pytest.approx([0.6125, 0.7])
    assert report["sparsity"]["overall"] == pytest.approx(0.7, abs=0.001)
    assert report["params"]["nonzero"] < 0.4 * report["params"]["before"]
    assert report["loss"] == {"name": "sparse_categorical_crossentropy", "source": "model"}
    assert report["tflite_check"]["agreement"] >= 0.99
    written = Report.model_validate_json((tmp_path / "report.json").read_text())  # the published schema
    assert written.accuracy is not None
    assert written.accuracy.metric == "accuracy"
    assert written.baseline is not None
    assert [d.device for d in written.baseline.latency] == [d.device for d in written.latency]
    # what the engine process used: more than TensorFlow alone takes (> 100 MB), a few GB at most here
    assert written.resources is not None
    assert 100e6 < written.resources.peak_rss_bytes < 8e9


def test_profile_reports_hold_the_contract_and_a_bad_report_is_not_written(digits_model: Path, tmp_path: Path) -> None:
    """A profile job's report lacks the prune-only parts; the engine refuses to write one that breaks the contract."""
    dense = profile(digits_model, PruneSpec(devices=("host",)), tmp_path / "keras")
    keras_report = Report.model_validate_json((tmp_path / "keras" / "report.json").read_text())
    assert keras_report.accuracy is None
    assert keras_report.baseline is None
    assert keras_report.params is not None
    assert keras_report.params.after is None
    assert keras_report.latency[0].measured_ms is not None
    profile(dense.tflite_path, PruneSpec(devices=("cortex-m4f-120mhz",)), tmp_path / "tflite")
    tflite_report = Report.model_validate_json((tmp_path / "tflite" / "report.json").read_text())
    assert tflite_report.size.keras_bytes is None
    assert tflite_report.params is None
    assert tflite_report.latency[0].measured_ms is None
    broken = {**dense.report, "latency": [{"device": "host", "ms": 1.0}]}
    with pytest.raises(ValidationError, match="estimate_ms"):
        write_report(broken, tmp_path / "broken.json")
    assert not (tmp_path / "broken.json").exists()


def test_guard_backs_off_to_the_last_step_that_met_it(digits_model: Path, small_digits: Data, tmp_path: Path) -> None:
    # 99% sparsity with no fine-tuning destroys the model; a 1-point guard must refuse it.
    spec = PruneSpec(sparsity=0.99, epochs=0, schedule="polynomial", steps=3, max_accuracy_drop=0.01)
    report = run(digits_model, small_digits, spec, tmp_path).report
    guard = report["guard"]
    assert guard["met"] is False
    assert guard["note"]
    assert report["accuracy"]["before"] - report["accuracy"]["after"] <= 0.01
    assert report["sparsity"]["reached"] < 0.99
    assert report["sparsity"]["reached"] == pytest.approx(
        [0.0, *[r["sparsity"] for r in report["schedule"]["rounds"]]][guard["backed_off_to_step"]]
    )


def test_same_seed_same_result(digits_model: Path, small_digits: Data, tmp_path: Path) -> None:
    spec = PruneSpec(sparsity=0.5, epochs=1, learning_rate=1e-3, seed=3)
    a = run(digits_model, small_digits, spec, tmp_path / "a").report
    b = run(digits_model, small_digits, spec, tmp_path / "b").report
    assert a["accuracy"]["after"] == pytest.approx(b["accuracy"]["after"], abs=1e-6)
    wa = keras.saving.load_model(tmp_path / "a" / "model.keras").get_weights()
    wb = keras.saving.load_model(tmp_path / "b" / "model.keras").get_weights()
    assert all(np.array_equal(x == 0, y == 0) for x, y in zip(wa, wb, strict=True))


def test_inferred_loss_for_an_uncompiled_logits_model(tmp_path: Path) -> None:
    data = har(n=300)
    model = keras.Sequential(
        [keras.Input((128, 3)), keras.layers.Conv1D(4, 5), keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(6)]
    )
    model.save(tmp_path / "logits.keras")
    report = run(tmp_path / "logits.keras", data, PruneSpec(sparsity=0.5, epochs=1), tmp_path / "out").report
    assert report["loss"] == {"name": "sparse_categorical_crossentropy (from logits)", "source": "inferred"}


def test_regression_uses_mae_and_the_error_guard(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6) + 70).astype(np.float32)  # e.g. heart rate from six features
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(x[:200], y[:200], epochs=30, verbose=0)
    model.save(tmp_path / "hr.keras")
    data = Data(x[:200], y[:200], x[200:], y[200:])
    report = run(
        tmp_path / "hr.keras", data, PruneSpec(sparsity=0.3, epochs=1, max_error_increase=100.0), tmp_path / "o"
    ).report
    assert report["task"] == "regression"
    assert report["accuracy"]["metric"] == "mae"
    assert report["guard"]["metric"] == "mae"
    assert report["guard"]["met"] is True


def test_bad_inputs_raise_coded_errors(digits_model: Path, tmp_path: Path) -> None:
    with pytest.raises(PruningError) as shape:
        run(digits_model, har(n=50), PruneSpec(), tmp_path)
    assert shape.value.code == "data_mismatch"
    with pytest.raises(PruningError) as tfl:
        run(tmp_path / "x.tflite", digits(), PruneSpec(), tmp_path)
    assert tfl.value.code == "unsupported_model"

    class Custom(keras.Model):
        def call(self, x: object) -> object:
            return x

    sub = Custom()
    sub(np.zeros((1, 4), np.float32))
    sub.save(tmp_path / "sub.keras")
    with pytest.raises(PruningError) as subclassed:
        run(tmp_path / "sub.keras", digits(), PruneSpec(), tmp_path)
    assert subclassed.value.code in {"unsupported_model", "unsafe_model"}


@pytest.mark.parametrize("quantization", ["float16", "dynamic_int8", "int8"])
def test_quantized_exports_keep_zeros_and_accuracy(
    digits_model: Path, small_digits: Data, tmp_path: Path, quantization: str
) -> None:
    from pruning.export import interpreter

    report = run(
        digits_model, small_digits, PruneSpec(sparsity=0.5, epochs=0, quantization=quantization), tmp_path
    ).report
    tflite = (tmp_path / "model.tflite").read_bytes()
    expected_input = np.int8 if quantization == "int8" else np.float32
    assert interpreter(tflite).get_input_details()[0]["dtype"] == expected_input
    accuracy = report["accuracy"]
    # The headline judges the file that ships.
    assert accuracy["judged_on"] == "tflite"
    assert accuracy["after"] == accuracy["tflite_after"]
    assert accuracy["tflite_after"] >= accuracy["keras_after"] - 0.03
    assert accuracy["tflite_loss"] == pytest.approx(accuracy["keras_after"] - accuracy["tflite_after"])
    float_bytes = 4 * report["params"]["before"]
    assert report["size"]["tflite_bytes"] < (0.6 if quantization == "float16" else 0.35) * float_bytes
    assert report["size"]["tflite_gzip_bytes"] < report["baseline"]["size"]["tflite_gzip_bytes"]


def test_batchnorm_recalibration_changes_statistics_not_weights() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    conv = keras.layers.Conv2D(4, 3, name="conv")
    bn = keras.layers.BatchNormalization(momentum=0.99, name="bn")
    x = keras.layers.ReLU()(bn(conv(inputs)))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(0).normal(2.0, 3.0, size=(512, 8, 8, 1)).astype("float32")
    trainable = [np.asarray(w).copy() for w in model.trainable_weights]

    assert recalibrate_batchnorm(model, data, batch_size=256) == 1

    for before, after in zip(trainable, model.trainable_weights, strict=True):
        np.testing.assert_array_equal(before, np.asarray(after))
    # The moving statistics are now the average of the two batches' own, not a 1% step towards them.
    pre = np.asarray(conv(data)).reshape(2, -1, 4)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), pre.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bn.moving_variance), pre.var(axis=1).mean(axis=0), rtol=1e-4)
    assert bn.momentum == 0.99


def test_early_stopping_judges_the_model_with_its_batchnorm_recalibrated() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, bn(inputs))
    data = np.random.default_rng(0).normal(5.0, 2.0, size=(512, 4)).astype("float32")
    seen = []

    def done(m: keras.Model) -> bool:
        seen.append(np.asarray(bn.moving_mean).copy())
        return True

    lagging = EarlyStop(done)
    lagging.set_model(model)
    lagging.on_epoch_end(0)
    np.testing.assert_array_equal(seen[-1], np.zeros(4))  # judged on the moving statistics as they were
    stop = EarlyStop(done, recalibrate_on=data)
    stop.set_model(model)
    stop.on_epoch_end(2)
    np.testing.assert_allclose(seen[-1], data.mean(axis=0), rtol=1e-4)  # as they will be after fine-tuning
    assert stop.stopped_after == 3
