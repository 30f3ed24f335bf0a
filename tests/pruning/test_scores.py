"""Every score with every granularity, on a tiny model, and the pieces they are made of."""

from pathlib import Path

import keras
import numpy as np
import pytest

from contract.errors import PruningError
from pruning import masks, scoring
from pruning.datasets import Data, digits
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


def test_global_threshold_never_empties_a_layer() -> None:
    rng = np.random.default_rng(0)
    scores = {"big": 1000 * rng.random((40, 40)), "small": 1e-3 * rng.random((8, 8))}
    # Raw scores under one threshold would empty the small layer...
    raw = masks.threshold_mask(np.concatenate([s.ravel() for s in scores.values()]), 0.9)
    assert raw[1600:].sum() == 0
    # ...the per-layer normalised (LAMP) ones keep each layer's best weights, at the same overall sparsity.
    out = masks.global_masks(scores, 0.9)
    assert sum(int(m.sum()) for m in out.values()) == round(0.1 * (1600 + 64))
    assert out["small"].sum() >= 1
    assert out["small"].ravel()[np.argmax(scores["small"])] == 1
    # Within a layer the order of the scores is kept: it is still a magnitude threshold there.
    kept = scores["big"][out["big"] == 1]
    assert kept.min() > scores["big"][out["big"] == 0].max()


def _conv_bn(scale: float) -> keras.Model:
    """Conv -> BN -> Depthwise -> BN -> Dense; `scale` multiplies the first kernel and undoes it in
    its BatchNorm's statistics, which leaves the function unchanged."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(8, 3, use_bias=False, name="conv")(inputs)
    x = keras.layers.BatchNormalization(epsilon=1e-12, name="bn")(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw")(x)
    x = keras.layers.BatchNormalization(epsilon=1e-12, name="bn_dw")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    rng = np.random.default_rng(2)
    for bn in ("bn", "bn_dw"):
        layer = model.get_layer(bn)
        layer.gamma.assign(rng.uniform(0.2, 3, 8).astype("float32"))
        layer.moving_variance.assign(rng.uniform(0.5, 2, 8).astype("float32"))
    conv, bn = model.get_layer("conv"), model.get_layer("bn")
    conv.kernel.assign(np.asarray(conv.kernel) * scale)
    bn.moving_mean.assign(np.asarray(bn.moving_mean) * scale)
    bn.moving_variance.assign(np.asarray(bn.moving_variance) * scale**2)
    return model


def test_magnitude_sees_kernels_through_their_batchnorm() -> None:
    model = _conv_bn(1.0)
    bn, bn_dw = model.get_layer("bn"), model.get_layer("bn_dw")
    variables = masks.prunable_variables(model)
    scores = scoring.weight_scores("magnitude", model, variables, np.zeros((1, 6, 6, 2)), np.zeros(1), None)
    fold = np.abs(np.asarray(bn.gamma)) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
    conv = model.get_layer("conv").kernel
    np.testing.assert_allclose(scores[conv.path], np.abs(np.asarray(conv)) * fold, rtol=1e-6)
    fold_dw = np.abs(np.asarray(bn_dw.gamma)) / np.sqrt(np.asarray(bn_dw.moving_variance) + bn_dw.epsilon)
    dw = model.get_layer("dw").kernel  # (3, 3, 8, 1): channels on axis -2
    np.testing.assert_allclose(scores[dw.path], np.abs(np.asarray(dw)) * fold_dw[:, None], rtol=1e-6)
    head = model.get_layer("head").kernel  # no BatchNorm after it: plain |w|
    np.testing.assert_array_equal(scores[head.path], np.abs(np.asarray(head)))


def test_global_masks_ignore_a_scale_that_batchnorm_undoes() -> None:
    x = np.random.default_rng(3).normal(size=(16, 6, 6, 2)).astype("float32")
    same, shrunk = _conv_bn(1.0), _conv_bn(1e-3)
    np.testing.assert_allclose(same.predict(x, verbose=0), shrunk.predict(x, verbose=0), rtol=1e-3, atol=1e-4)
    picked = []
    for model in (same, shrunk):
        variables = masks.prunable_variables(model)
        scores = scoring.weight_scores("magnitude", model, variables, x, np.zeros(16), None)
        picked.append({k.split("/")[0]: m for k, m in masks.global_masks(scores, 0.8).items()})
    for name in picked[0]:
        np.testing.assert_array_equal(picked[0][name], picked[1][name], err_msg=name)


def test_block_masks_drop_whole_runs_along_the_input_axis() -> None:
    rng = np.random.default_rng(4)
    scores = {"dense": rng.random((16, 6)), "conv": rng.random((3, 3, 8, 5)), "thin": rng.random((3, 3, 2, 4))}
    out = masks.block_masks(scores, 0.75, 4, scope="global")
    dense = out["dense"].T.reshape(6, 4, 4)  # (out, blocks, 4): each run of 4 inputs is all kept or all dropped
    assert set(dense.sum(-1).ravel().tolist()) <= {0.0, 4.0}
    conv = np.moveaxis(out["conv"], -2, -1).reshape(3, 3, 5, 2, 4)
    assert set(conv.sum(-1).ravel().tolist()) <= {0.0, 4.0}
    assert sum(int(m.size - m.sum()) for m in out.values()) == pytest.approx(0.75 * (96 + 360 + 72), rel=0.05)
    # Within a layer, every kept run has a higher mean score than every dropped one.
    runs = scores["dense"].T.reshape(6, 4, 4).mean(-1)
    kept = dense.sum(-1) == 4
    assert kept.any()
    assert runs[kept].min() > runs[~kept].max()
    assert masks.block_masks(scores, 0.5, 4)["thin"].shape == (3, 3, 2, 4)  # fewer inputs than the run: one run


def test_block_option_runs_through_the_engine(digits_model: Path, tiny_data: Data, tmp_path: Path) -> None:
    spec = PruneSpec(sparsity=0.75, block=4, epochs=1, learning_rate=1e-3, scope="global")
    result = run(digits_model, tiny_data, spec, tmp_path)
    kernel = np.asarray(keras.saving.load_model(result.keras_path).get_layer("conv2").kernel)  # (3, 3, 16, 32)
    runs = (np.moveaxis(kernel, -2, -1).reshape(3, 3, 32, 4, 4) != 0).sum(-1)
    assert set(runs.ravel().tolist()) <= {0, 4}
    assert result.report["pruning"]["block"] == 4
    assert result.report["sparsity"]["overall"] == pytest.approx(0.75, abs=0.03)
    with pytest.raises(ValueError, match="block"):
        PruneSpec(granularity="channel", block=4)
