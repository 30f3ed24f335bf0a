"""Channel removal on real dependency patterns: the smaller model computes what the original
computes once the removed channels' contributions are zeroed."""

from pathlib import Path

import keras
import numpy as np
import pytest

from contract.errors import PruningError
from pruning.architectures import ic_resnet8, kws_dscnn
from pruning.counting import total_macs
from pruning.datasets import Data, digits, har
from pruning.estimate.graph import parse
from pruning.graph import DEPTHWISE, RECURRENT, SEPARABLE, analyse, keep_indices
from pruning.run import profile, run
from pruning.spec import PruneSpec
from pruning.surgery import remove_channels


def _randomise(model: keras.Model, seed: int = 0) -> keras.Model:
    rng = np.random.default_rng(seed)
    for w in model.weights:
        if "moving_variance" in w.path:
            w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
        else:
            w.assign(rng.normal(0, 0.3, w.shape).astype("float32"))
    return model


def _zero_removed_inputs(model: keras.Model, kept: dict[int, set[int]]) -> keras.Model:
    """The original model with the removed channels' contributions to each consumer zeroed."""
    graph = analyse(model)
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    for node in graph.nodes:
        layer = node.layer
        units = keep_indices(graph.chan(node.outputs[0]), kept)
        if layer.name in graph.heads and graph.find(graph.heads[layer.name]) in kept:
            # A removed head adds nothing once its values are zero (kernel and bias; query, key, value, output).
            removed = sorted(set(range(layer.num_heads)) - kept[graph.find(graph.heads[layer.name])])
            weights = reference.get_layer(layer.name).get_weights()
            weights[4][:, removed, :], weights[5][removed, :] = 0, 0
            reference.get_layer(layer.name).set_weights(weights)
            continue
        if isinstance(layer, RECURRENT) and units is not None:
            # A removed unit no longer feeds the kept ones through the recurrent kernel.
            weights = reference.get_layer(layer.name).get_weights()
            weights[1][sorted(set(range(layer.units)) - set(units)), :] = 0
            reference.get_layer(layer.name).set_weights(weights)
        consumer = isinstance(layer, (*SEPARABLE, *RECURRENT)) or (
            isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense)
            and not isinstance(layer, DEPTHWISE)
        )
        chan = graph.chan(node.inputs[0])
        keep = keep_indices(chan, kept)
        if not consumer or chan is None or keep is None:
            continue
        drop = sorted(set(range(len(chan))) - set(keep))
        weights = reference.get_layer(layer.name).get_weights()
        weights[1 if isinstance(layer, SEPARABLE) else 0][..., drop, :] = 0
        reference.get_layer(layer.name).set_weights(weights)
    return reference


def _branchy() -> keras.Model:
    """Residual Add, depthwise, separable, Concatenate, pooling, Flatten -> Dense in one graph."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(8, 3, padding="same", name="residual")(x))
    x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    a = keras.layers.Conv2D(12, 1)(keras.layers.DepthwiseConv2D(3, padding="same")(x))
    b = keras.layers.SeparableConv2D(6, 3, padding="same")(x)
    c = keras.layers.MaxPooling2D()(keras.layers.Concatenate()([a, b]))
    d = keras.layers.Dense(10, activation="relu")(keras.layers.Flatten()(c))
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(d))


def _conv1d() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((32, 3)),
            keras.layers.Conv1D(8, 5, padding="same", activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.SeparableConv1D(12, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling1D(),
            keras.layers.Conv1D(16, 3),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(4),
        ]
    )


def _recurrent() -> keras.Model:
    """A wrist-sensor stack: Conv1D into GRU (sequences) into LSTM, and a SimpleRNN beside it."""
    inputs = keras.Input((20, 3))
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.GRU(12, return_sequences=True)(x)
    a = keras.layers.LSTM(10)(x)
    b = keras.layers.SimpleRNN(6)(x)
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Concatenate()([a, b])))


def _attention() -> keras.Model:
    """A transformer-lite block on sensor frames: embedding, self-attention with a residual, LayerNorm."""
    inputs = keras.Input((10, 6))
    x = keras.layers.Dense(16, activation="relu", name="embed")(inputs)
    a = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")(x, x)
    x = keras.layers.LayerNormalization()(keras.layers.Add()([x, a]))
    x = keras.layers.Dense(16, activation="relu")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model(inputs, keras.layers.Dense(3)(x))


CASES = {
    "attention": (_attention, (10, 6)),
    "recurrent": (_recurrent, (20, 3)),
    "branchy": (_branchy, (12, 12, 3)),
    "conv1d": (_conv1d, (32, 3)),
    "resnet8": (lambda: ic_resnet8(size=16), (16, 16, 3)),
    "ds_cnn": (kws_dscnn, (49, 10, 1)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_removed_channels_match_zeroed_contributions(case: str) -> None:
    build, shape = CASES[case]
    model = _randomise(build())
    graph = analyse(model)
    assert graph.prunable(), "nothing prunable found"
    rng = np.random.default_rng(1)
    kept = {g.id: set(rng.choice(g.size, max(1, g.size // 2), replace=False).tolist()) for g in graph.prunable()}
    pruned = remove_channels(graph, kept)
    assert total_macs(pruned) < 0.6 * total_macs(model)
    x = rng.normal(size=(4, *shape)).astype("float32")
    expected = _zero_removed_inputs(model, kept).predict(x, verbose=0)
    got = pruned.predict(x, verbose=0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_groups_follow_the_architecture() -> None:
    graph = analyse(_branchy())
    roots = {tuple(g.producers): g for g in graph.groups.values() if graph.find(g.id) == g.id}
    # The residual Add ties the two convolutions into one group.
    assert ("residual", "stem") in {tuple(sorted(p)) for p in roots}
    # The last layer is never pruned.
    (last,) = [g for p, g in roots.items() if p == ("head",)]
    assert last.frozen == "feeds the model output"


def test_unsupported_layers_are_left_unpruned_with_a_reason() -> None:
    inputs = keras.Input((8,))
    x = keras.layers.Dense(6, name="before")(inputs)
    x = keras.layers.Reshape((3, 2), name="reshape")(x)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(4, name="after")(x)))
    graph = analyse(model)
    frozen = {g.producers[0]: g.frozen for g in graph.groups.values()}
    assert "Reshape" in (frozen["before"] or "")
    assert frozen["after"] is None
    assert any(s["layer"] == "reshape" for s in graph.skipped)


def test_channel_job_makes_a_smaller_faster_model(digits_model: Path, tmp_path: Path) -> None:
    d = digits()
    data = Data(d.x_train[:600], d.y_train[:600], d.x_val, d.y_val)
    report = run(
        digits_model, data, PruneSpec(granularity="channel", sparsity=0.5, epochs=3, learning_rate=1e-3), tmp_path
    ).report
    assert report["params"]["after"] < 0.5 * report["params"]["before"]
    assert report["macs"]["after"] < 0.5 * report["macs"]["before"]
    assert report["size"]["tflite_bytes"] < 0.5 * report["baseline"]["size"]["tflite_bytes"]
    layers = {row["layer"]: row for row in report["sparsity"]["per_layer"]}
    assert layers["conv1"]["channels_before"] == 16
    assert layers["conv1"]["channels_after"] == 8
    assert layers["classes"]["channels_after"] == 10  # the output layer keeps its classes
    assert report["accuracy"]["before"] - report["accuracy"]["after"] < 0.1
    assert report["tflite_check"]["agreement"] >= 0.99


def test_macs_reduction_target(tmp_path: Path) -> None:
    from pruning.examples import har_cnn

    har_cnn(epochs=1).save(tmp_path / "har.keras")
    spec = PruneSpec(granularity="channel", sparsity=None, macs_reduction=0.6, epochs=0)
    report = run(tmp_path / "har.keras", har(n=400), spec, tmp_path / "out").report
    assert report["macs"]["reduction"] >= 0.6
    assert report["macs"]["reduction"] < 0.75


@pytest.mark.slow
def test_a_wrist_sensor_gru_is_cut_and_ships_unrolled(tmp_path: Path) -> None:
    """Conv1D + GRU through a channel job: the GRU's units are cut, and both files ship with the steps unrolled
    (the report's `export` says so) and agree with the Keras model."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((128, 3)), keras.layers.Conv1D(16, 5, strides=4, activation="relu"), keras.layers.GRU(16),
         keras.layers.Dense(6, activation="softmax")]
    )  # fmt: skip
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "gru.keras")
    report = run(tmp_path / "gru.keras", har(n=300), PruneSpec(granularity="channel", epochs=0), tmp_path / "o").report
    assert (report["export"]["recurrent"], report["export"]["steps"]) == ("unrolled", [31])
    assert parse((tmp_path / "o" / "model.tflite").read_bytes()).loops == []  # no WHILE in what ships
    profiled = profile(tmp_path / "gru.keras", PruneSpec(devices=("host",)), tmp_path / "p").report
    assert profiled["export"]["recurrent"] == "unrolled"  # a profile job exports as a prune job does
    pruned = keras.saving.load_model(tmp_path / "o" / "model.keras")
    assert [layer.units for layer in pruned.layers if isinstance(layer, keras.layers.GRU)] == [8]
    assert report["tflite_check"]["agreement"] >= 0.99


def test_subclassed_models_are_refused(tmp_path: Path) -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, x: object) -> object:
            return self.dense(keras.layers.Flatten()(x))

    net = Net()
    net(np.zeros((1, 8, 8, 1), "float32"))
    net.save(tmp_path / "net.keras")
    with pytest.raises(PruningError) as error:
        run(tmp_path / "net.keras", digits(), PruneSpec(granularity="channel"), tmp_path / "o")
    assert error.value.code in {"unsupported_model", "unsafe_model"}


def test_channel_guard_backs_off_to_a_wider_model(digits_model: Path, tmp_path: Path) -> None:
    d = digits()
    data = Data(d.x_train[:300], d.y_train[:300], d.x_val, d.y_val)
    spec = PruneSpec(
        granularity="channel", sparsity=0.95, schedule="polynomial", steps=3, epochs=0, max_accuracy_drop=0.02
    )
    report = run(digits_model, data, spec, tmp_path).report
    assert report["guard"]["met"] is False
    assert report["accuracy"]["before"] - report["accuracy"]["after"] <= 0.02
    pruned = keras.saving.load_model(tmp_path / "model.keras")
    step = report["guard"]["backed_off_to_step"]
    reached = 0.0 if step == 0 else report["schedule"]["rounds"][step - 1]["sparsity"]
    assert pruned.get_layer("conv1").filters == max(1, round((1 - reached) * 16))
    assert report["metrics"]["after"]["val"]["loss"] > 0


def test_a_channel_pruned_resnet_fine_tunes(tmp_path: Path) -> None:
    """Halving ResNet-8 makes its 1x1 stride-2 shortcuts narrow; fine-tuning them must work."""
    d = digits()
    x = np.repeat(np.kron(d.x_train[:256], np.ones((1, 2, 2, 1), np.float32)), 3, axis=-1)
    xv = np.repeat(np.kron(d.x_val[:128], np.ones((1, 2, 2, 1), np.float32)), 3, axis=-1)
    model = ic_resnet8(size=16)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, d.y_train[:256], epochs=1, verbose=0)
    model.save(tmp_path / "r8.keras")
    data = Data(x, d.y_train[:256], xv, d.y_val[:128])
    spec = PruneSpec(granularity="channel", sparsity=0.5, epochs=1, learning_rate=1e-3)
    report = run(tmp_path / "r8.keras", data, spec, tmp_path / "out").report
    assert report["macs"]["after"] < 0.35 * report["macs"]["before"]


@pytest.mark.slow
def test_attention_heads_are_pruned_as_groups(tmp_path: Path) -> None:
    graph = analyse(_attention())
    heads = graph.groups[graph.heads["mha"]]
    assert (heads.size, heads.frozen) == (4, None)
    frozen = {g.producers[0]: g.frozen for g in graph.groups.values()}
    assert "keeps the width of its inputs" in (frozen["embed"] or "")
    pruned = remove_channels(graph, {heads.id: {0, 3}})
    assert pruned.get_layer("mha").num_heads == 2
    # Through a job: half the heads go, the model exports and the report names the head group.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 10, 6)).astype("float32")
    y = (x[:, :, 0].mean(1) > 0).astype("int64") + (x[:, :, 1].mean(1) > 0)
    model = _attention()
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    model.save(tmp_path / "attention.keras")
    data = Data(x[:192], y[:192], x[192:], y[192:], name="synthetic frames")
    report = run(tmp_path / "attention.keras", data, PruneSpec(granularity="channel", sparsity=0.5, epochs=1),
                 tmp_path / "job").report  # fmt: skip
    (group,) = [g for g in report["pruning"]["groups"] if g["producers"] == ["mha"]]
    assert group["prunable"] is True
    assert report["macs"]["after"] < report["macs"]["before"]
    assert report["tflite_check"]["loads"] is True
