"""Every score with every granularity, on a tiny model, and the pieces they are made of."""

from pathlib import Path

import keras
import numpy as np
import pytest

from pruning import masks, scoring
from pruning.datasets import Data, digits
from pruning.errors import PruningError
from pruning.finetune import MaskCheck
from pruning.run import run
from pruning.spec import PruneSpec


@pytest.fixture(scope="module")
def tiny_data() -> Data:
    d = digits()
    return Data(d.x_train[:300], d.y_train[:300], d.x_val[:150], d.y_val[:150], name="digits-tiny")


@pytest.mark.parametrize("method", scoring.METHODS)
@pytest.mark.parametrize("granularity", ["unstructured", "n_of_m", "channel"])
def test_every_score_with_every_granularity(
    digits_model: Path, tiny_data: Data, tmp_path: Path, method: str, granularity: str
) -> None:
    spec = PruneSpec(method=method, granularity=granularity, sparsity=0.5, epochs=1, learning_rate=1e-3)
    result = run(digits_model, tiny_data, spec, tmp_path)
    report = result.report
    pruned = keras.saving.load_model(result.keras_path)
    if granularity == "unstructured":
        assert report["sparsity"]["overall"] == pytest.approx(0.5, abs=0.005)
    elif granularity == "n_of_m":
        kernel = np.asarray(pruned.get_layer("conv2").kernel)  # (3, 3, 16, 32): 2 of every 4 inputs
        blocks = (kernel.reshape(3, 3, 4, 4, 32) != 0).sum(axis=3)
        assert blocks.max() <= 2
        assert report["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
    else:
        assert pruned.get_layer("conv1").filters == 8
        assert pruned.get_layer("fc").units == 32
        assert pruned.get_layer("classes").units == 10
    assert report["pruning"]["method"] == method
    assert report["accuracy"]["after"] > 0.5


def test_scores_rank_differently(digits_model: Path, tiny_data: Data) -> None:
    model = keras.saving.load_model(digits_model)
    variables = masks.prunable_variables(model)
    by_method = {
        m: scoring.weight_scores(m, model, variables, tiny_data.x_train, tiny_data.y_train, model.loss)
        for m in scoring.METHODS
    }
    path = variables[1].path
    kept = {m: masks.threshold_mask(s[path], 0.5) for m, s in by_method.items()}
    assert not np.array_equal(kept["magnitude"], kept["gradient"])
    assert not np.array_equal(kept["magnitude"], kept["activation"])
    assert all(np.all(s[path] >= 0) for s in by_method.values())


def test_gradient_and_activation_are_reproducible(digits_model: Path, tiny_data: Data, tmp_path: Path) -> None:
    for method in ("gradient", "activation"):
        spec = PruneSpec(method=method, sparsity=0.6, epochs=1, seed=5)
        a = run(digits_model, tiny_data, spec, tmp_path / f"{method}-a").report
        b = run(digits_model, tiny_data, spec, tmp_path / f"{method}-b").report
        assert a["accuracy"]["after"] == pytest.approx(b["accuracy"]["after"], abs=1e-6)


def test_global_threshold_prunes_layers_unevenly(digits_model: Path, tiny_data: Data, tmp_path: Path) -> None:
    report = run(digits_model, tiny_data, PruneSpec(sparsity=0.7, epochs=0, scope="global"), tmp_path).report
    assert report["sparsity"]["overall"] == pytest.approx(0.7, abs=0.001)
    per_layer = [1 - r["nonzero"] / r["params"] for r in report["sparsity"]["per_layer"]]
    assert max(per_layer) - min(per_layer) > 0.1


def test_n_of_m_mask_keeps_n_per_block() -> None:
    scores = np.arange(24, dtype=float).reshape(6, 4)  # 6 inputs, 4 outputs
    mask = masks.n_of_m_mask(scores, 2, 4)
    assert mask[:4].sum(axis=0).tolist() == [2, 2, 2, 2]
    assert mask[:4, 0].tolist() == [0, 0, 1, 1]  # the two largest of the block
    assert mask[4:].sum(axis=0).tolist() == [1, 1, 1, 1]  # a short tail keeps the same share


def test_mask_check_catches_a_revived_weight() -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    (kernel,) = masks.prunable_variables(model)
    mask = {kernel.path: masks.threshold_mask(np.abs(np.asarray(kernel)), 0.5)}
    masks.attach([kernel], mask)
    check = MaskCheck([kernel], mask)
    check.on_epoch_end(0)
    kernel.assign(np.ones(kernel.shape, "float32"))
    with pytest.raises(PruningError, match="became non-zero"):
        check.on_epoch_end(1)
