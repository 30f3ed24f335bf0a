"""Micro-benchmarks of what the runtime costs around the ops (host calibration, tables version 7): an op that
XNNPACK leaves to TFLite's own kernel (`builtin_op_us`), an extra delegate partition (`partition_us`) and each
loop variable a WHILE iteration carries (`loop_var_us`). None of them is a zoo model: a chain of 16 tiny ADDs,
with GATHERs in front of it or between its ADDs, and WHILE loops of 1 and 8 state tensors."""

from __future__ import annotations

from typing import Any

import numpy as np

WIDTH = 64
ADDS = 16


def gather_chain_tflite(in_front: int, between: int) -> bytes:
    """16 ADDs on a (1, 64) vector, after `in_front` GATHERs (TFLite runs them before the one delegate partition)
    and with `between` GATHERs spread among the ADDs (each splits the partition)."""
    import tensorflow as tf

    idx = tf.constant(np.arange(WIDTH)[::-1].copy(), tf.int32)
    every = ADDS // (between + 1)

    @tf.function(input_signature=[tf.TensorSpec((1, WIDTH), tf.float32)])  # type: ignore[untyped-decorator]
    def f(x: Any) -> Any:
        y = x
        for _ in range(in_front):
            y = tf.gather(y, idx, axis=1)
        z = y
        for i in range(ADDS):
            z = z + y
            if between and (i + 1) % every == 0 and (i + 1) // every <= between:
                z = tf.gather(z, idx, axis=1)
        return z

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return bytes(converter.convert())


def loop_vars_tflite(n: int, state: int) -> bytes:
    """A WHILE loop of `n` iterations carrying a counter and `state` (1, 16) tensors, two tiny ops on each."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 16), tf.float32)])  # type: ignore[untyped-decorator]
    def f(x: Any) -> Any:
        init = [tf.constant(0)] + [x * float(k + 1) for k in range(state)]
        out = tf.while_loop(lambda i, *_: i < n, lambda i, *vs: [i + 1] + [v * 0.5 + 1.0 for v in vs], init)
        y = out[1]
        for v in out[2:]:
            y = y + v
        return y

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return bytes(converter.convert())


def runtime_overheads(timed: Any, per_op_us: float, log: Any = print) -> dict[str, float]:
    """`builtin_op_us`: what a GATHER on TFLite's kernel adds in front of the partition (4 of them vs none),
    beyond the per-op overhead the tables already give it; `partition_us`: what one GATHER between the ADDs
    adds beyond a GATHER in front (3 splits); `loop_var_us`: per iteration and per loop variable, beyond its
    two ops (loops of 1 and 33 iterations, 1 and 8 tensors)."""
    base = timed(gather_chain_tflite(0, 0))
    each = (timed(gather_chain_tflite(4, 0)) - base) / 4  # a GATHER in all: its table time is the per-op overhead
    builtin = max(each - per_op_us, 0.0)
    split = max((timed(gather_chain_tflite(0, 3)) - base) / 3 - each, 0.0)
    slopes = {}
    for state in (1, 8):
        t1, t33 = timed(loop_vars_tflite(1, state)), timed(loop_vars_tflite(33, state))
        slopes[state] = max(t33 - t1, 0.0) / 32
    per_var = max((slopes[8] - slopes[1]) / 7 - 2 * per_op_us, 0.0)
    log(f"runtime: an op on TFLite's kernel {builtin:.3f} us, an extra delegate partition {split:.3f} us, "
        f"a loop variable {per_var:.3f} us an iteration")  # fmt: skip
    return {"builtin_op_us": round(builtin, 3), "partition_us": round(split, 3), "loop_var_us": round(per_var, 3)}
