"""XNNPACK's delegate partitions: the estimator's count matches LiteRT's own on real exports, and each extra
partition costs the host a delegate invoke, said in `basis`."""

import keras
import numpy as np
import pytest

from contract.devices import get_profile
from pruning.estimate.delegation import extra_partitions
from pruning.estimate.estimator import estimate
from pruning.estimate.graph import parse
from pruning.export import to_tflite

L = keras.layers


def _squeeze_excite(blocks: int) -> keras.Model:
    """Keras's Reshape of a pooled vector exports as SHAPE / STRIDED_SLICE / PACK / RESHAPE, which XNNPACK
    leaves to TFLite (int32 shape arithmetic): every block splits the graph."""
    x = inp = keras.Input((8, 8, 16))
    for _ in range(blocks):
        s = L.Reshape((1, 1, 16))(L.GlobalAveragePooling2D()(x))
        x = L.Conv2D(16, 1)(L.Multiply()([x, L.Dense(16, activation="sigmoid")(s)]))
    return keras.Model(inp, L.Dense(4, activation="softmax")(L.Flatten()(x)))


def _litert_partitions(tflite: bytes) -> int:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite, num_threads=1)
    interpreter.allocate_tensors()
    return sum(op["op_name"] == "DELEGATE" for op in interpreter._get_ops_details())


@pytest.mark.parametrize(("blocks", "quantization"), [(1, "none"), (3, "none"), (2, "int8")])
def test_the_partition_count_is_litert_own(blocks: int, quantization: str) -> None:
    keras.utils.set_random_seed(0)
    rep = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 16)).astype(np.float32)
    tflite = to_tflite(_squeeze_excite(blocks), quantization, rep)
    extra, left = extra_partitions(parse(tflite))
    assert extra + 1 == _litert_partitions(tflite)
    assert extra >= blocks  # the shape arithmetic splits the graph once a block at least
    assert "SHAPE" in left
    if quantization == "int8":
        assert "SOFTMAX" in left  # no int8 SOFTMAX in XNNPACK: TFLite's kernel runs it


def test_each_extra_partition_costs_a_delegate_invoke_and_is_said() -> None:
    keras.utils.set_random_seed(0)
    tflite = to_tflite(_squeeze_excite(3), "none")
    host = get_profile("host")
    extra, _ = extra_partitions(parse(tflite))
    with_splits = estimate(tflite, host)
    without = estimate(tflite, host.__class__(**{**host.__dict__, "runtime_key": "no-delegate"}))
    assert with_splits["estimate_ms"] * 1000 == pytest.approx(
        without["estimate_ms"] * 1000 + extra * host.invoke_overhead_us, abs=0.01
    )
    assert "SHAPE" in with_splits["basis"]
    assert "more delegate partition" in with_splits["basis"]
    assert "delegate partition" not in estimate(tflite, get_profile("cortex-m4f-120mhz"))["basis"]
