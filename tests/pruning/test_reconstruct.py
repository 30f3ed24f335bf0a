"""A channel cut re-fits the layers that read the cut channels (least squares), then folds BatchNorm."""

from typing import Any

import keras
import numpy as np

from pruning import strategies
from pruning.datasets import Data
from pruning.finetune import recalibrate_batchnorm
from pruning.graph import analyse
from pruning.reconstruct import fold_batchnorm
from pruning.surgery import remove_channels


def _model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(inputs)))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(x)))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="head")(x))


def _data() -> Data:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, 256)
    return Data(x, y, x[:64], y[:64])


def _gap(a: keras.Model, b: keras.Model, x: np.ndarray) -> float:
    """Relative error of `b`'s outputs against `a`'s."""
    ya, yb = a.predict(x, verbose=0), b.predict(x, verbose=0)
    return float(np.linalg.norm(ya - yb) / np.linalg.norm(ya))


def test_a_channel_cut_refits_its_consumers_to_the_dense_outputs() -> None:
    model, data = _model(), _data()
    recalibrate_batchnorm(model, data.x_train)  # the moving statistics of a trained model
    pruner = strategies.ChannelPruner(model, data, "sparse_categorical_crossentropy", "magnitude")
    pruned = pruner.prune(model, 0.5)
    graph = analyse(model)
    plain = remove_channels(graph, pruner._kept(graph, pruner._scored(model)[1], 0.5))
    recalibrate_batchnorm(plain, data.x_train)  # the cut without the re-fit
    reconstruction = pruner.notes["reconstruction"]
    assert len(reconstruction["layers"]) == 2  # the second convolution and the head
    assert reconstruction["layers"][-1] == "head"
    assert reconstruction["batchnorm"] == "folded (2 layers)"
    assert _gap(model, pruned, data.x_val) < 0.5 * _gap(model, plain, data.x_val)


def test_folding_batchnorm_keeps_the_inference_output() -> None:
    model, data = _model(), _data()
    before = model.predict(data.x_val, verbose=0)
    assert fold_batchnorm(model, data.x_train) == 2
    np.testing.assert_allclose(model.predict(data.x_val, verbose=0), before, rtol=1e-4, atol=1e-5)
    # ... while a training step now normalises by statistics near the moving ones.
    bn = next(layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    z = keras.Model(model.inputs, bn.input).predict(data.x_train, verbose=0).reshape(-1, 8)
    np.testing.assert_allclose(np.asarray(bn.moving_mean), z.mean(0), rtol=1e-3, atol=1e-4)


def test_a_layer_too_wide_to_refit_is_left_as_cut_and_named(monkeypatch: Any) -> None:
    """A Dense after Flatten reads every position of every channel: its X'X would not fit (a 7x7x1280 Flatten
    needs 31 GB), so beyond MAX_COLUMNS regression columns the layer stays as cut and the report says why."""
    from pruning import reconstruct

    monkeypatch.setattr(reconstruct, "MAX_COLUMNS", 100)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same")(inputs)))
    x = keras.layers.Conv2D(8, 3, padding="same", name="middle")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.Flatten()(x)))
    data = _data()
    pruner = strategies.ChannelPruner(model, data, "sparse_categorical_crossentropy", "magnitude")
    pruned = pruner.prune(model, 0.5)
    notes = pruner.notes["reconstruction"]
    assert notes["layers"] == ["middle"]  # 3 x 3 x 4 kept channels + bias: 37 columns
    assert list(notes["not_refitted"]) == ["head"]
    assert "more than 100" in notes["not_refitted"]["head"]
    assert pruned.get_layer("head").get_weights()[0].shape[0] < 8 * 8 * 8


def test_a_conv1d_reading_cut_channels_is_named_as_left_as_cut() -> None:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 3))
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="second")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling1D()(x)))
    rng = np.random.default_rng(0)
    x_train, y = rng.normal(size=(128, 16, 3)).astype("float32"), rng.integers(0, 4, 128)
    pruner = strategies.ChannelPruner(
        model, Data(x_train, y, x_train[:32], y[:32]), "sparse_categorical_crossentropy", "magnitude"
    )
    pruner.prune(model, 0.5)
    notes = pruner.notes["reconstruction"]
    assert notes["layers"] == ["head"]
    assert "Conv1D" in notes["not_refitted"]["second"]


def test_the_layer_inputs_computed_in_chunks_give_the_same_refit(monkeypatch: Any) -> None:
    """The regression is accumulated `BATCH` samples at a time whatever the chunk the layer inputs are computed in
    (one Keras call per chunk, not per 8 samples: a 5-8x shorter cut): the same weights, chunk of 8 or of all."""
    from pruning import reconstruct

    model, data = _model(), _data()
    graph = analyse(model)
    kept = {g.id: set(range(0, g.size, 2)) for g in graph.groups.values() if g.frozen is None}
    weights = []
    for activation_bytes in (1, reconstruct.ACTIVATION_BYTES):
        monkeypatch.setattr(reconstruct, "ACTIVATION_BYTES", activation_bytes)
        pruned = remove_channels(graph, kept)
        done, _ = reconstruct.reconstruct(graph, kept, pruned, data.x_train)
        assert len(done) == 2
        weights.append(pruned.get_weights())
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
