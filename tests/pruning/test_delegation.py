"""XNNPACK's delegate partitions: the estimator's count matches LiteRT's own on real exports, and each extra
partition costs the host a delegate invoke, said in `basis`."""

from dataclasses import replace

import keras
import numpy as np
import pytest

from contract.devices import get_profile
from pruning.estimate import runtime_bench
from pruning.estimate.costs import analyse
from pruning.estimate.delegation import extra_partitions, taken_flags
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


def _gathers(blocks: int) -> keras.Model:
    """A channel GATHER after every block (`keras.ops.take`): XNNPACK leaves GATHER to TFLite, so each splits the
    graph. (With the batch fixed at 1, exports no longer carry shape arithmetic: squeeze-excite's Reshape of a
    pooled vector is a constant RESHAPE that XNNPACK takes.)"""
    order = np.arange(16)[::-1].copy()
    x = inp = keras.Input((8, 8, 16))
    for _ in range(blocks):
        x = keras.ops.take(L.Conv2D(16, 1)(x), order, axis=-1)
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
    tflite = to_tflite(_gathers(blocks), quantization, rep)
    extra, left = extra_partitions(parse(tflite))
    assert extra + 1 == _litert_partitions(tflite)
    assert extra >= blocks - 1  # each GATHER splits the graph (the last one ends it)
    assert "GATHER" in left
    se = to_tflite(_squeeze_excite(blocks), quantization, rep)
    assert extra_partitions(parse(se))[0] + 1 == _litert_partitions(se)
    if quantization == "int8":
        assert "SOFTMAX" in left  # no int8 SOFTMAX in XNNPACK: TFLite's kernel runs it


def test_each_extra_partition_and_each_op_on_tflites_kernel_is_costed_and_said() -> None:
    keras.utils.set_random_seed(0)
    tflite = to_tflite(_gathers(3), "none")
    # no op timed on its own kernel: every op left to TFLite (the GATHERs here) pays builtin_op_us
    host = replace(
        get_profile("host"), runtime_key="xnnpack-x86", partition_us=0.5, builtin_op_us=0.25, op_cycles_per_element={}
    )
    graph = parse(tflite)
    extra, _ = extra_partitions(graph)
    left = [op.name for op, taken in zip(graph.ops, taken_flags(graph), strict=True) if not taken]
    assert set(left) == {"GATHER"}
    assert all(c.cls == "memory" for c, op in zip(analyse(graph), graph.ops, strict=True) if op.name in left)
    with_runtime = estimate(tflite, host)
    without = estimate(tflite, replace(host, partition_us=0.0, builtin_op_us=0.0))
    assert with_runtime["estimate_ms"] * 1000 == pytest.approx(
        without["estimate_ms"] * 1000 + extra * 0.5 + len(left) * 0.25,
        abs=0.1,  # estimate_ms: 0.1 us steps
    )
    assert "GATHER" in with_runtime["basis"]
    assert "more delegate partition" in with_runtime["basis"]
    assert "delegate partition" not in estimate(tflite, get_profile("cortex-m4f-120mhz"))["basis"]


def test_the_runtime_micro_benchmarks_separate_the_kernel_the_split_and_the_loop_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A GATHER on TFLite's kernel costs 0.25 us, a split 0.05 us more, a loop variable 0.03 us beyond its ops; the
    16-row GEMM chains, float32 and int8, read their weights at 40 GB/s up to 8 MiB and 10 GB/s beyond; an ADD costs
    0.015 us more beyond the 129th op of a chain; a MAC of a 1x1 convolution costs 1.6x at 4 rows, 1.2x at 16 and
    1.05x at 64 what it costs at 256 (float; int8 2x, 1.25x, 1.1x), after the invoke, per-op and first-op overheads."""
    monkeypatch.setattr(runtime_bench, "gather_chain_tflite", lambda front, between: ("chain", front, between))
    monkeypatch.setattr(runtime_bench, "loop_vars_tflite", lambda n, state: ("loop", n, state))
    monkeypatch.setattr(
        runtime_bench, "conv_chain_tflite",
        lambda channels, pixels=2, ops=8, quantization="none": ("conv", channels, int(quantization == "int8"))
        if ops == 8 else ("rows", pixels, int(quantization == "int8")),
    )  # fmt: skip
    monkeypatch.setattr(runtime_bench, "adds_chain_tflite", lambda n: ("adds", n, 0))
    per_mac = {0: {4: 1.6, 16: 1.2, 64: 1.05, 256: 1.0}, 1: {4: 2.0, 16: 1.25, 64: 1.1, 256: 1.0}}

    def timed(model: tuple[str, int, int]) -> float:
        kind, a, b = model
        if kind == "chain":
            return 0.8 + 0.25 * (a + b) + 0.05 * b
        if kind == "conv":
            size = 8 * a * a * (1 if b else 4)
            return size / ((40.0 if size <= 8 * 2**20 else 10.0) * 1e3)
        if kind == "adds":
            return 0.7 + 0.022 * a + 0.015 * max(a - 129, 0)
        if kind == "rows":
            return 1.0 + 0.5 * b + a * a * 0.5 * per_mac[b][a * a]  # int8's first op costs 0.5 us more
        return 2.0 + (a - 1) * (0.18 + (0.03 + 2 * 0.022) * (b - 1))

    first_op = {"conv1x1": {"int8": 0.5}}
    got = runtime_bench.runtime_overheads(timed, per_op_us=0.022, log=lambda _m: None, invoke_us=0.978,
                                          first_op_us=first_op)  # fmt: skip
    assert got.pop("gemm_rows") == {"float32": [[4, 1.6], [16, 1.2], [64, 1.05]],
                                    "int8": [[4, 2.0], [16, 1.25], [64, 1.1]]}  # fmt: skip
    rows = got.pop("weight_stream_rows")
    assert got.pop("graph_op_overhead") == [[129, 0.0], [401, pytest.approx(4.08)]]
    # the GATHER's own per-op overhead is in the tables already: 0.25 - 0.022 more on TFLite's kernel
    assert got == pytest.approx({"builtin_op_us": 0.228, "partition_us": 0.05, "loop_var_us": 0.03}, abs=1e-3)
    assert [size / 2**20 for size, _ in rows["float32"]] == [0.5, 2, 8, 32, 128]  # channels a multiple of 64
    assert [size / 2**20 for size, _ in rows["int8"]] == [0.5, 2, 8, 32]
    assert [rate for _, rate in rows["float32"]] == [40.0, 40.0, 40.0, 10.0, 10.0]
    assert [rate for _, rate in rows["int8"]] == [40.0, 40.0, 40.0, 10.0]


def test_an_op_timed_on_its_own_kernel_is_not_charged_again() -> None:
    """int8 SOFTMAX runs on TFLite's kernel, and so did its own micro-benchmark: no builtin_op_us on top."""
    keras.utils.set_random_seed(0)
    rep = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 16)).astype(np.float32)
    tflite = to_tflite(_squeeze_excite(1), "int8", rep)
    base = replace(get_profile("host"), runtime_key="xnnpack-x86", partition_us=0.0, builtin_op_us=1.0)
    timed = replace(base, op_cycles_per_element={**base.op_cycles_per_element, "SOFTMAX": {"int8": 1.0}})
    untimed = replace(
        base, op_cycles_per_element={k: v for k, v in base.op_cycles_per_element.items() if k != "SOFTMAX"}
    )
    zero = replace(untimed, builtin_op_us=0.0)
    own_table = (
        estimate(tflite, timed)["estimate_ms"] * 1000
        - estimate(tflite, replace(timed, builtin_op_us=0.0))["estimate_ms"] * 1000
    )
    class_table = estimate(tflite, untimed)["estimate_ms"] * 1000 - estimate(tflite, zero)["estimate_ms"] * 1000
    assert class_table == pytest.approx(own_table + 1.0, abs=0.1)  # the one SOFTMAX
