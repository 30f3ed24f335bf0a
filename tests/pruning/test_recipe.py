"""Fine-tuning defaults: with no `finetune` settings the engine chooses them and says why."""

from pathlib import Path

import keras
import numpy as np
import pytest

from pruning.datasets import Data, digits
from pruning.recipe import CHANNEL_RATE_SCALE, MAX_EPOCHS, compiled_optimizer, range_test
from pruning.run import run
from pruning.spec import PruneSpec


@pytest.fixture(scope="module")
def data() -> Data:
    d = digits()
    return Data(d.x_train[:600], d.y_train[:600], d.x_val, d.y_val)


@pytest.mark.slow
def test_defaults_rewind_the_models_own_optimizer_and_stop_once_recovered(
    digits_model: Path, data: Data, tmp_path: Path
) -> None:
    report = run(digits_model, data, PruneSpec(granularity="channel", sparsity=0.5), tmp_path).report
    chosen = report["finetune"]
    assert chosen["optimizer"] == "Adam"
    # What digits_cnn was compiled with (Adam 3e-3), times the channel cut's multiple.
    assert chosen["learning_rate"] == pytest.approx(3e-3 * CHANNEL_RATE_SCALE)
    assert "compiled optimizer" in chosen["why"]["learning_rate"]
    assert f"{CHANNEL_RATE_SCALE:g}x its rate" in chosen["why"]["learning_rate"]
    assert chosen["schedule"] == "cosine"
    assert 2 <= chosen["epochs"] <= MAX_EPOCHS
    assert "steps" in chosen["why"]["epochs"]
    assert chosen["batch_size"] == 64  # the job's (the contract's default)
    assert chosen["distillation"] is None  # off by default (bench/recovery.py)
    assert chosen["early_stop_within"] == pytest.approx(0.005)
    (last,) = report["schedule"]["rounds"]
    drop = report["accuracy"]["before"] - report["accuracy"]["after"]
    # Either it recovered to within half a point and stopped, or it used every epoch trying.
    if "stopped_early_after_epoch" in last:
        assert drop <= 0.005
        assert last["stopped_early_after_epoch"] < chosen["epochs"]
    assert drop < 0.03


@pytest.mark.slow
def test_explicit_settings_win(digits_model: Path, data: Data, tmp_path: Path) -> None:
    spec = PruneSpec(sparsity=0.5, epochs=1, learning_rate=5e-4, distill=True)
    report = run(digits_model, data, spec, tmp_path).report
    chosen = report["finetune"]
    assert (chosen["epochs"], chosen["learning_rate"], chosen["schedule"]) == (1, 5e-4, "constant")
    assert chosen["distillation"]["weight"] > 0
    assert report["accuracy"]["before"] - report["accuracy"]["after"] < 0.05
    assert chosen["early_stop_within"] is None
    assert chosen["batch_size"] == 64
    # 1 epoch of 10 steps, where the engine would allow 60 epochs (600 steps) for this cut: the report says so.
    assert chosen["why"]["epochs"].startswith("set in the job (10 steps); SHORTER than the engine's budget")
    assert "leave epochs unset" in chosen["why"]["epochs"]


@pytest.mark.parametrize(
    ("optimizer", "granularity", "scaled"),
    [("Adam", "channel", True), ("SGD", "channel", False), ("Adam", "unstructured", False)],
)
def test_channel_cuts_fine_tune_at_a_multiple_of_an_adam_models_rate(
    data: Data, tmp_path: Path, optimizer: str, granularity: str, scaled: bool
) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, "relu"),
            keras.layers.Dense(10, "softmax"),
        ]
    )
    model.compile(getattr(keras.optimizers, optimizer)(2e-3), "sparse_categorical_crossentropy")
    model.fit(data.x_train, data.y_train, epochs=1, verbose=0)
    model.save(tmp_path / "tiny.keras")
    spec = PruneSpec(granularity=granularity, sparsity=0.5, epochs=1)
    chosen = run(tmp_path / "tiny.keras", data, spec, tmp_path / "run").report["finetune"]
    assert CHANNEL_RATE_SCALE > 1
    assert chosen["learning_rate"] == pytest.approx(2e-3 * (CHANNEL_RATE_SCALE if scaled else 1))
    assert (f"{CHANNEL_RATE_SCALE:g}x its rate" in chosen["why"]["learning_rate"]) == scaled


def test_a_model_saved_without_an_optimizer_gets_a_range_test(data: Data) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    assert compiled_optimizer(model) is None
    before = [w.copy() for w in model.get_weights()]
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    rate = range_test(model, data.x_train, data.y_train, loss, batch_size=32, seed=0)
    assert 1e-5 <= rate <= 1e-2
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # the test leaves the weights as they were


@pytest.mark.slow
def test_the_from_scratch_control_is_reported(digits_model: Path, data: Data, tmp_path: Path) -> None:
    spec = PruneSpec(granularity="channel", sparsity=0.5, epochs=2, control=True)
    report = run(digits_model, data, spec, tmp_path).report
    control = report["control"]
    assert control["epochs"] == 2
    assert control["pruned"] == report["accuracy"]["after"]
    assert 0 <= control["from_scratch"] <= 1
    assert control["pruning_wins_by"] == pytest.approx(control["pruned"] - control["from_scratch"])
    assert ("did NOT beat" in control["note"]) == (control["pruning_wins_by"] <= 0)


@pytest.mark.parametrize(
    ("fields", "scope", "schedule", "steps", "chosen"),
    [
        ({}, "global", "polynomial", 5, ("scope", "schedule", "steps")),
        ({"epochs": 3}, "global", "polynomial", 2, ("scope", "schedule", "steps")),
        ({"epochs": 0}, "global", "polynomial", 1, ("scope", "schedule", "steps")),
        ({"granularity": "channel"}, "global", "one_shot", 1, ("scope", "schedule", "steps")),
        ({"scope": "per_layer", "schedule": "one_shot"}, "per_layer", "one_shot", 1, ("steps",)),
        ({"scope": "global", "schedule": "polynomial", "steps": 2}, "global", "polynomial", 2, ()),
    ],
)
def test_unset_scope_and_schedule_are_chosen_and_named(
    fields: dict[str, object], scope: str, schedule: str, steps: int, chosen: tuple[str, ...]
) -> None:
    spec = PruneSpec(**fields)  # type: ignore[arg-type]
    assert (spec.scope, spec.schedule, spec.steps, spec.defaults) == (scope, schedule, steps, chosen)
    assert PruneSpec.from_job_spec({"schedule": {"kind": "one_shot"}, "scope": "per_layer"}).defaults == ("steps",)
    with pytest.raises(ValueError, match="unknown schedule"):
        PruneSpec(schedule="cosine")
