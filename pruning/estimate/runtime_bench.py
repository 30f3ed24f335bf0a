"""Micro-benchmarks of what the runtime costs around the ops (host calibration, tables version 7): an op that
XNNPACK leaves to TFLite's own kernel (`builtin_op_us`), an extra delegate partition (`partition_us`) and each
loop variable a WHILE iteration carries (`loop_var_us`); and (version 8) the rate at which GEMMs of several rows
read weights that are not in the core's cache (`weight_stream_rows`). None of them is a zoo model: a chain of 16
tiny ADDs, with GATHERs in front of it or between its ADDs, WHILE loops of 1 and 8 state tensors, and chains of
eight 1x1 convolutions (version 11: at 4x4 pixels, float32 and int8); (version 9) what each op of a graph of
hundreds costs beyond the per-op overhead (`graph_op_overhead`: chains of 33, 129 and 401 tiny ADDs); and
(version 10) how much slower a MAC is in a GEMM of few rows (`gemm_rows`: single 1x1 convolutions at 2x2 .. 16x16
pixels)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pruning.estimate.microbench import GEMM_DTYPES

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


ROWS_SWEEP_MIB = {"float32": (0.5, 2, 8, 32, 128), "int8": (0.5, 2, 8, 32)}
"""Weights of the several-row sweep's chains, in all, by dtype (int8 stops at 32 MiB: converting a 128 MiB int8
chain takes ~45 s; beyond the sweep a stream reads at its last rate)."""
ROWS_SWEEP_PIXELS = 4
"""The sweep's chains run at 4x4 pixels: GEMMs of 16 rows (version 8 ran 2x2, 4 rows; see `rows_weight_sweep`)."""
ROWS_SWEEP_ROUNDS = 2
"""Readings of each chain, in interleaved rounds, the lowest kept: one calibration of the AVX-512 EPYC
(2026-12-08) read the float 8 MiB chain at 7.6 GB/s where four others read 10.7-11.0, which charged every float
model of about 8 MiB a stream it does not pay (bench/host_weight_stream.py: 1.64x at 4 rows)."""


def conv_chain_tflite(channels: int, pixels: int = 2, ops: int = 8, quantization: str = "none") -> bytes:
    """`ops` 1x1 convolutions of `channels` -> `channels` on a `pixels` x `pixels` input (float unless
    `quantization` says otherwise): GEMMs of pixels^2 rows, each with weights of its own."""
    import keras

    from pruning.estimate.microbench import single_op_tflite

    def build(xs: Any) -> Any:
        x = xs[0]
        for _ in range(ops):
            x = keras.layers.Conv2D(channels, 1)(x)
        return x

    return single_op_tflite([(pixels, pixels, channels)], build, quantization)


def rows_weight_sweep(timed: Any, log: Any = print) -> dict[str, list[tuple[int, float]]]:
    """dtype -> (weight bytes, GB/s) of chains of eight 1x1 convolutions at 4x4 pixels (16-row GEMMs), 0.5 MiB to
    32 or 128 MiB of weights in all, ascending; channels a multiple of 64, so no size pays a padded tile the
    others do not. The compute per byte is the same at every size (16 MACs a weight), so it cancels in the
    estimator's difference to the smallest size. Each chain is timed in `ROWS_SWEEP_ROUNDS` interleaved rounds, its
    lowest reading kept. Why 16 rows and int8 (version 11): on the AVX-512 EPYC
    (2026-12-08) a chain of 32 MiB ran 1.30x (int8) and 1.34x (float) the time of its single op timed alone at 16
    rows, 1.06-1.08x at 64 rows, while at 4 rows float it read 31.2 GB/s at 0.5 MiB and 28.5 at 32 MiB: the
    4-row float chain of version 8 is compute-bound and hides what a bigger GEMM waits for. Why not the one-row
    sweep: on a Xeon (2026-12-07) a 96 MiB chain read its weights at 14.6 GB/s with 1 row, 9.7 with 4 and 6.3
    with 9 (the rows of a tile are read while the weights stream in, and wait for them)."""
    chains: list[tuple[str, int, bytes]] = []
    for dtype, sizes in ROWS_SWEEP_MIB.items():
        width = 1 if dtype == "int8" else 4
        for mib in sizes:
            channels = max(64, int(round((mib * 2**20 / (8 * width)) ** 0.5 / 64)) * 64)
            model = conv_chain_tflite(channels, ROWS_SWEEP_PIXELS, quantization=GEMM_DTYPES[dtype])
            chains.append((dtype, 8 * channels * channels * width, model))
    best = [timed(model) for _, _, model in chains]
    for _ in range(ROWS_SWEEP_ROUNDS - 1):  # the rounds interleave the sizes: a slow spell hits one reading
        best = [min(us, timed(model)) for us, (_, _, model) in zip(best, chains, strict=True)]
    sweeps: dict[str, list[tuple[int, float]]] = {}
    for (dtype, size, _), us in zip(chains, best, strict=True):
        sweeps.setdefault(dtype, []).append((size, size / (us * 1e3)))
        log(f"weight stream of 16-row GEMMs, {dtype} {size / 2**20:6.2f} MiB: {sweeps[dtype][-1][1]:6.1f} GB/s")
    return sweeps


GRAPH_SIZES = (33, 129, 401)
"""Chains of tiny float ADDs whose per-op time is timed (version 9): the calibration's per-op overhead is the
slope of the first 33."""


def adds_chain_tflite(n: int) -> bytes:
    """`n` tiny float ADDs in a row (the calibration's per-op chain)."""
    from pruning.estimate.microbench import chain_tflite

    return chain_tflite(n, "none")


def graph_op_overhead(timed: Any, per_op_us: float, log: Any = print) -> list[tuple[int, float]]:
    """(ops, microseconds beyond `per_op_us` per op) at chains of 129 and 401 tiny ADDs against 33, cumulative and
    never decreasing. Why: on an AMD EPYC (AVX2, 2026-12-07) an ADD cost 0.009-0.026 us in the first 33 ops of a
    chain, 0.024-0.029 from 33 to 129 and 0.037-0.039 from 129 to 401 (float and int8 alike): a graph of hundreds
    of small ops (an unrolled GRU: 403) no longer keeps its ops' state in the core's caches, and the estimator
    read it 0.62-0.70x of its measured time."""
    files = {n: adds_chain_tflite(n) for n in GRAPH_SIZES}
    times = {n: float("inf") for n in GRAPH_SIZES}
    for _ in range(3):  # rounds over the sizes, the lowest kept: a single reading of 129 ADDs once came 3 us high
        times = {n: min(times[n], timed(files[n])) for n in GRAPH_SIZES}
    first = GRAPH_SIZES[0]
    points, extra = [], 0.0
    for n in GRAPH_SIZES[1:]:
        extra = max(extra, times[n] - times[first] - (n - first) * per_op_us)
        points.append((n, round(extra, 3)))
    log("graph size: " + ", ".join(f"{n} ops {e:.2f} us beyond the per-op overhead" for n, e in points))
    return points


GEMM_ROWS_PIXELS = (2, 4, 8, 16)
GEMM_ROWS_CHANNELS = 512
"""`gemm_rows` times 1x1 convolutions of 512 -> 512 channels on 2x2 .. 16x16 pixels: GEMMs of 4, 16, 64 and 256 rows
with the same weights (1 MiB float, in a core's L2 when repeated); 256 rows is the reference, among the sizes the
conv1x1 tables are fitted on (7x7 to 56x56 pixels), where a MAC costs what the tables say."""


def gemm_rows(timed: Any, fixed_us: dict[str, float], log: Any = print) -> dict[str, list[list[float]]]:
    """dtype -> [[rows, slowdown], ...] at 4, 16 and 64 rows: the time of a MAC in a 1x1 convolution of that many
    output pixels over its time at 256 (net of `fixed_us[dtype]`: the invoke, per-op and first-op overheads), at
    least 1. Why: on an AMD EPYC with AVX-512 (2026-12-07, bench/host_conv_reuse.py) a single 1x1 convolution ran
    31 / 43 / 53 / 56 GMAC/s float and 96-115 / 146-161 / 184-195 / ~210 int8 at 4 / 16 / 64 / 256 rows, while the
    tables (fitted on 49 rows and more, mostly several hundred) held ~55 and ~215 at every size: ResNet50 at 64 px
    and InceptionV3 at 96 px, whose late stages are convolutions of 2x2-4x4 pixels, read 0.67-0.87x of their
    time."""
    out: dict[str, list[list[float]]] = {}
    for dtype, quantization in GEMM_DTYPES.items():
        per_row = {}
        for pixels in GEMM_ROWS_PIXELS:
            rows = pixels * pixels
            model = conv_chain_tflite(GEMM_ROWS_CHANNELS, pixels, 1, quantization)
            per_row[rows] = max(timed(model) - fixed_us.get(dtype, 0.0), 1e-3) / rows
        reference = per_row[GEMM_ROWS_PIXELS[-1] ** 2]
        out[dtype] = [[rows, round(max(per_row[rows] / reference, 1.0), 3)] for rows in sorted(per_row)[:-1]]
    log("GEMM rows: a MAC's time against 256 rows " + "; ".join(
        f"{dtype} " + ", ".join(f"{int(r)} rows {s:.2f}x" for r, s in pts) for dtype, pts in out.items()))  # fmt: skip
    return out


def runtime_overheads(
    timed: Any,
    per_op_us: float,
    log: Any = print,
    invoke_us: float = 0.0,
    first_op_us: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
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
    rows = {d: [[int(size), round(rate, 2)] for size, rate in pts] for d, pts in rows_weight_sweep(timed, log).items()}
    return {
        "builtin_op_us": round(builtin, 3),
        "partition_us": round(split, 3),
        "loop_var_us": round(per_var, 3),
        "weight_stream_rows": rows,
        "graph_op_overhead": [[n, e] for n, e in graph_op_overhead(timed, per_op_us, log)],
        "gemm_rows": gemm_rows(
            timed,
            {
                d: invoke_us + per_op_us + (first_op_us or {}).get("conv1x1", {}).get(d, 0.0)
                for d in ("float32", "int8")
            },
            log,
        ),  # fmt: skip
    }
