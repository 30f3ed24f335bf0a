"""Transfer-learning models: a backbone nested in a Sequential or functional model is pruned as the
one graph it is, squeeze-excite and hard-swish included; a cut that removes nothing fails."""

from pathlib import Path

import keras
import numpy as np
import pytest

from contract.errors import PruningError
from pruning.counting import total_macs
from pruning.datasets import Data, digits
from pruning.graph import analyse
from pruning.nesting import flatten, nested_models
from pruning.recipe import compiled_optimizer
from pruning.run import run
from pruning.spec import PruneSpec
from pruning.surgery import remove_channels
from tests.pruning.test_channels import _randomise, _zero_removed_inputs


def _backbone() -> keras.Model:
    """MobileNetV3's patterns at toy size: preprocessing, an inverted residual, a squeeze-excite gate
    (pooled, reshaped, hard sigmoid written as keras.ops arithmetic), hard-swish."""
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.Activation("hard_swish")(x)
    e = keras.layers.Conv2D(16, 1, name="expand")(x)
    e = keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise")(keras.layers.ReLU()(e))
    s = keras.layers.GlobalAveragePooling2D(name="squeeze")(e)
    s = keras.layers.Reshape((1, 1, 16), name="se_reshape")(s)
    s = keras.layers.Conv2D(4, 1, activation="relu", name="se_reduce")(s)
    s = keras.layers.Conv2D(16, 1, name="se_expand")(s)
    s = keras.layers.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)
    e = keras.layers.Multiply(name="excite")([e, s])
    p = keras.layers.Conv2D(8, 1, name="project")(e)
    x = keras.layers.Add(name="residual")([x, p])
    return keras.Model(inputs, keras.layers.Conv2D(12, 3, padding="same", name="top")(x), name="backbone")


def _transfer(frozen: bool = False) -> keras.Model:
    backbone = _backbone()
    backbone.trainable = not frozen
    head = keras.Sequential(
        [keras.Input((8, 8, 1)), backbone, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)], name="inner"
    )
    # Two levels: a functional model calling the Sequential that calls the backbone.
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, keras.layers.Softmax()(head(inputs)), name="outer")


def test_a_nested_model_is_flattened_into_the_same_computation() -> None:
    model = _randomise(_transfer())
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    assert nested_models(model) == ["inner", "backbone"]
    flat, inlined = flatten(model)
    # What it was compiled with goes along: fine-tuning rewinds to it (pruning.recipe).
    assert compiled_optimizer(flat) == compiled_optimizer(model)
    assert flat.loss == "sparse_categorical_crossentropy"
    assert inlined == ["inner", "backbone"]
    assert not nested_models(flat)
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 1)).astype("float32")
    np.testing.assert_allclose(flat.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert total_macs(flat) > 0
    assert total_macs(model) == 0


def test_channel_groups_run_through_the_nesting_and_the_squeeze_excite() -> None:
    flat, _ = flatten(_randomise(_transfer()))
    graph = analyse(flat)
    prunable = {p for g in graph.prunable() for p in g.producers}
    # The gate's expanding convolution is tied to the block it gates; its reducing one is its own group.
    assert {"expand", "se_expand"} <= {p for g in graph.prunable() for p in g.producers if "expand" in g.producers}
    assert {"stem", "project", "se_reduce", "top"} <= prunable
    rng = np.random.default_rng(1)
    kept = {g.id: set(rng.choice(g.size, max(1, g.size // 2), replace=False).tolist()) for g in graph.prunable()}
    pruned = remove_channels(graph, kept)
    assert total_macs(pruned) < 0.6 * total_macs(flat)
    x = rng.normal(size=(4, 8, 8, 1)).astype("float32")
    expected = _zero_removed_inputs(flat, kept).predict(x, verbose=0)
    np.testing.assert_allclose(pruned.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.fixture(scope="module")
def transfer_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Trained a little on digits with a frozen backbone, as transfer learning is done."""
    keras.utils.set_random_seed(0)
    d = digits()
    model = _transfer(frozen=True)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(d.x_train, d.y_train, epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("nested") / "transfer.keras"
    model.save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("granularity", ["channel", "unstructured"])
def test_a_transfer_learning_job_prunes_the_backbone(transfer_model: Path, tmp_path: Path, granularity: str) -> None:
    d = digits()
    data = Data(d.x_train[:400], d.y_train[:400], d.x_val, d.y_val)
    spec = PruneSpec(granularity=granularity, sparsity=0.5, epochs=1, learning_rate=1e-3, scope="per_layer")
    report = run(transfer_model, data, spec, tmp_path).report
    assert report["nested"]["inlined"] == ["inner", "backbone"]
    expand = {row["layer"]: row for row in report["sparsity"]["per_layer"]}["expand"]
    # The frozen backbone's layers are cut too, not only the head.
    if granularity == "channel":
        assert expand["channels_after"] == expand["channels_before"] // 2
        assert report["macs"]["after"] < report["macs"]["before"]
    else:
        assert expand["nonzero"] <= 0.6 * expand["params"]  # half the kernel; the bias stays
    assert report["tflite_check"]["agreement"] >= 0.95


def test_a_cut_that_removes_nothing_fails_with_the_reason(tmp_path: Path) -> None:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, name="narrow")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(x)))
    model.save(tmp_path / "narrow.keras")
    d = digits()
    data = Data(d.x_train[:200], d.y_train[:200], d.x_val, d.y_val)
    spec = PruneSpec(granularity="channel", sparsity=0.1, epochs=0)
    with pytest.raises(PruningError) as caught:
        run(tmp_path / "narrow.keras", data, spec, tmp_path / "out")
    assert caught.value.code == "nothing_to_prune"
    assert "too small" in caught.value.message
