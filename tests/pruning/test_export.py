"""The export's graph rewrite: 1D layers become one XNNPACK partition, with the same outputs."""

import keras
import numpy as np
import pytest

from contract.errors import PruningError
from pruning.export import UNROLL_STEPS, expand_dims_as_reshape, interpreter, predict, recurrent_export, to_tflite

L = keras.layers


def _conv1d() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((32, 3)),
            L.Conv1D(8, 5, strides=2, padding="same", activation="relu"),
            L.MaxPooling1D(),
            L.SeparableConv1D(8, 3, padding="same", activation="relu"),
            L.Conv1D(8, 3, padding="same", activation="relu"),
            L.GlobalAveragePooling1D(),
            L.Dense(4, activation="softmax"),
        ]
    )


def _ops(tflite: bytes) -> list[str]:
    interp = interpreter(tflite)
    interp.allocate_tensors()  # applies the XNNPACK delegate: its partitions show up as DELEGATE nodes
    return [op["op_name"] for op in interp._get_ops_details()]


def _converter_output(model: keras.Model) -> bytes:
    import tensorflow as tf

    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def test_conv1d_model_exports_as_one_xnnpack_partition_with_the_same_outputs() -> None:
    model = _conv1d()
    x = np.random.default_rng(0).normal(size=(64, 32, 3)).astype(np.float32)
    raw = _converter_output(model)
    assert "EXPAND_DIMS" in _ops(raw)
    assert _ops(raw).count("DELEGATE") > 1  # what the rewrite is for: every EXPAND_DIMS splits the graph

    exported = to_tflite(model)
    ops = _ops(exported)
    assert "EXPAND_DIMS" not in ops
    assert ops.count("DELEGATE") == 1
    np.testing.assert_array_equal(predict(exported, x), predict(raw, x))
    np.testing.assert_allclose(predict(exported, x), model.predict(x, verbose=0), atol=1e-5)

    from tflite_micro.python.tflite_micro import runtime

    micro = runtime.Interpreter.from_bytes(exported)
    micro.set_input(x[:1], 0)
    micro.invoke()
    np.testing.assert_allclose(micro.get_output(0), predict(raw, x[:1]), atol=1e-6)


def test_int8_conv1d_export_is_rewritten_too() -> None:
    model = _conv1d()
    x = np.random.default_rng(1).normal(size=(64, 32, 3)).astype(np.float32)
    exported = to_tflite(model, "int8", representative=x)
    ops = _ops(exported)
    assert "EXPAND_DIMS" not in ops
    assert ops.count("DELEGATE") == 1
    agree = (predict(exported, x).argmax(1) == model.predict(x, verbose=0).argmax(1)).mean()
    assert agree >= 0.9


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_models_without_expand_dims_are_left_byte_for_byte(quantization: str) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dense(3)])
    x = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype(np.float32)
    exported = to_tflite(model, quantization, representative=x)
    assert expand_dims_as_reshape(exported) == exported


def test_pruned_zeros_are_exported_as_positive_zeros() -> None:
    """Masked weights and BatchNorm folding with a negative scale make -0.0; the file has only +0.0,
    computes the same, and compresses better for it."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(16, 3), L.BatchNormalization(), L.ReLU(), L.Flatten()])
    model.layers[1].set_weights([np.array([-1.0, 2.0] * 8, np.float32), *model.layers[1].get_weights()[1:]])
    kernel, bias = model.layers[0].get_weights()
    mask = np.random.default_rng(0).random(kernel.shape) < 0.2
    model.layers[0].set_weights([kernel * mask, bias])  # negative weights times 0 are -0.0

    import tensorflow as tf

    raw = bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    exported = to_tflite(model)

    def zeros(tflite: bytes) -> tuple[int, int]:
        from pruning.tflite_file import constant_tensors

        values = np.concatenate([v for _, v in constant_tensors(tflite) if v.dtype == np.float32])
        return int(((values == 0) & np.signbit(values)).sum()), int(((values == 0) & ~np.signbit(values)).sum())

    negative, positive = zeros(raw)
    assert negative > 100  # what the converter writes
    assert positive > 100
    assert zeros(exported) == (0, negative + positive)
    x = np.random.default_rng(1).normal(size=(32, 8, 8, 4)).astype(np.float32)
    np.testing.assert_array_equal(predict(exported, x), predict(raw, x))
    from pruning.export import gzip_bytes

    assert gzip_bytes(exported) < 0.97 * gzip_bytes(raw)


def test_a_recurrent_model_exports_with_its_batch_fixed_at_one() -> None:
    """Keras's GRU with a dynamic batch leaves TensorList ops LiteRT's builtins lack; the export retries
    at batch 1 (what a device runs) and predictions go one row at a time."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((32, 3)), keras.layers.Conv1D(8, 5, strides=2), keras.layers.GRU(8), keras.layers.Dense(4)]
    )
    x = np.random.default_rng(0).normal(size=(5, 32, 3)).astype("float32")
    tflite = to_tflite(model)
    np.testing.assert_allclose(predict(tflite, x), model.predict(x, verbose=0), atol=1e-5)


@pytest.mark.parametrize("layer", ["GRU", "LSTM", "SimpleRNN", "Bidirectional"])
def test_a_recurrent_model_exports_to_int8_unrolled(layer: str) -> None:
    """TF 2.21's converter dies (SIGSEGV) quantizing a recurrent loop to int8; the export unrolls the
    time steps first, and the int8 file agrees with the Keras model."""
    keras.utils.set_random_seed(0)
    rnn = (
        keras.layers.Bidirectional(keras.layers.GRU(6)) if layer == "Bidirectional" else getattr(keras.layers, layer)(8)
    )
    model = keras.Sequential([keras.Input((16, 3)), keras.layers.Conv1D(8, 3, strides=2), rnn, keras.layers.Dense(4)])
    x = np.random.default_rng(0).normal(size=(64, 16, 3)).astype("float32")
    tflite = to_tflite(model, "int8", x)
    got, want = predict(tflite, x[:16]), model.predict(x[:16], verbose=0)
    assert np.mean(np.argmax(got, 1) == np.argmax(want, 1)) >= 0.8
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max() + 0.05


def _subgraphs(tflite: bytes) -> int:
    from ai_edge_litert import schema_py_generated as schema

    return int(schema.Model.GetRootAs(tflite, 0).SubgraphsLength())


def test_a_float_recurrent_model_exports_unrolled_and_says_so() -> None:
    """Up to UNROLL_STEPS fixed steps a float GRU, LSTM or SimpleRNN, nested models included, is exported
    unrolled (one graph, no WHILE loop: faster on LiteRT, bench/recurrent_unroll.py) and computes what Keras
    does; free steps or longer sequences keep the loop, and `recurrent_export` (the report's `export`) says
    which."""
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((16, 8)), L.LSTM(6, return_sequences=True), L.SimpleRNN(5)])
    inp = keras.Input((32, 3))
    x = L.GRU(8, return_sequences=True)(L.Conv1D(8, 5, strides=2, padding="same")(inp))
    model = keras.Model(inp, L.Dense(4)(inner(x)))
    form = recurrent_export(model, "none")
    assert form is not None, "a recurrent model"
    assert (form["recurrent"], form["steps"]) == ("unrolled", [16, 16, 16])
    x = np.random.default_rng(0).normal(size=(6, 32, 3)).astype("float32")
    tflite = to_tflite(model)
    assert _subgraphs(tflite) == 1
    np.testing.assert_allclose(predict(tflite, x), model.predict(x, verbose=0), atol=1e-5)

    free = keras.Sequential([keras.Input((None, 3)), L.GRU(4), L.Dense(2)])
    long = keras.Sequential([keras.Input((UNROLL_STEPS + 1, 3)), L.GRU(4), L.Dense(2)])
    for kept, steps in ((free, [None]), (long, [UNROLL_STEPS + 1])):
        form = recurrent_export(kept, "none")
        assert form is not None, "a recurrent model"
        assert (form["recurrent"], form["steps"]) == ("loop", steps)
    assert _subgraphs(to_tflite(long)) > 1
    assert recurrent_export(_conv1d(), "none") is None
    both = keras.Sequential([keras.Input((16, 3)), L.Bidirectional(L.GRU(4))])
    assert recurrent_export(both, "none")["steps"] == [16, 16]  # type: ignore[index]
    assert _subgraphs(to_tflite(both)) == 1
    shared, a, b = L.GRU(4), keras.Input((16, 3)), keras.Input((None, 3))
    called_twice = keras.Model([a, b], [shared(a), shared(b)])  # on 16 steps and on free ones: the loop stays
    assert recurrent_export(called_twice, "none")["recurrent"] == "loop"  # type: ignore[index]


def test_int8_export_of_a_recurrent_model_without_fixed_steps_fails_with_a_reason() -> None:
    model = keras.Sequential([keras.Input((None, 3)), keras.layers.GRU(4), keras.layers.Dense(2)])
    with pytest.raises(PruningError, match="fixed number of time steps"):
        to_tflite(model, "int8", np.zeros((4, 8, 3), "float32"))


def test_every_export_fixes_the_batch_at_one_and_is_judged_as_keras_computes_it() -> None:
    """No run-time shape arithmetic (a free batch made SHAPE / PACK / RESHAPE ops and placeholder shapes), and
    `predict` still matches Keras: batched where the file allows it, one row at a time where a stored RESHAPE
    fixes the batch, with a free length taken from the data."""
    keras.utils.set_random_seed(0)
    x = keras.Input((6, 16))
    seq = keras.Model(x, keras.layers.Dense(4)(keras.layers.Reshape((3, 32))(keras.layers.Dense(16)(x))))
    tflite = to_tflite(seq)
    ops = {op["op_name"] for op in interpreter(tflite)._get_ops_details()}
    assert not ops & {"SHAPE", "PACK", "STRIDED_SLICE"}, ops
    assert interpreter(tflite).get_input_details()[0]["shape"].tolist() == [1, 6, 16]
    data = np.random.default_rng(0).normal(size=(40, 6, 16)).astype(np.float32)
    np.testing.assert_allclose(predict(tflite, data), seq.predict(data, verbose=0), atol=1e-4)
    free = keras.Input((None, 3))
    conv = keras.Model(free, keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(4, 3)(free)))
    steps = np.random.default_rng(1).normal(size=(10, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(predict(to_tflite(conv), steps), conv.predict(steps, verbose=0), atol=1e-4)


def test_an_integer_input_stays_an_integer_input() -> None:
    """Token ids into an Embedding: the fixed-batch copy keeps the input's dtype, so ids are not floats."""
    keras.utils.set_random_seed(0)
    ids = keras.Input((5,), dtype="int32")
    model = keras.Model(
        ids, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(50, 8)(ids)))
    )
    tflite = to_tflite(model)
    assert interpreter(tflite).get_input_details()[0]["dtype"] == np.int32
    tokens = np.random.default_rng(0).integers(0, 50, (12, 5))
    np.testing.assert_allclose(predict(tflite, tokens), model.predict(tokens, verbose=0), atol=1e-5)
