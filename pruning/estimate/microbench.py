"""Single-op micro-benchmarks of this machine (`python -m pruning.estimate calibrate-host`): the one-op
models that are timed, how they are exported to `.tflite`, and how they are timed with LiteRT.
Keras, TensorFlow and LiteRT are imported only when a benchmark is built or timed."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray


def micro_cases() -> list[tuple[str, str, list[tuple[int, ...]], Any]]:
    """(class, description, input shapes, builder) of one-op models: shapes typical of MobileNet,
    EfficientNet, ResNet layers and of the small MCU models, plus odd channel counts that expose the
    kernels' channel tiles, and the ops of attention blocks (BATCH_MATMUL, SOFTMAX over rows, GELU,
    SQUARED_DIFFERENCE), whose int8 kernels XNNPACK does not take. Each is exported float32, int8 and (MAC
    classes) dynamic-range int8."""
    import keras

    L = keras.layers  # noqa: N806
    cases: list[tuple[str, str, list[tuple[int, ...]], Any]] = []

    def one(layer_fn: Any) -> Any:
        return lambda xs: layer_fn()(xs[0])

    for h, cin, cout, s in [(56, 32, 32, 1), (28, 64, 64, 1), (14, 128, 128, 1), (7, 256, 256, 1), (28, 16, 16, 1),
                            (112, 3, 32, 2), (48, 3, 8, 2), (32, 16, 16, 1), (16, 32, 32, 1), (24, 12, 24, 1),
                            (16, 8, 8, 1), (25, 1, 64, 2)]:  # fmt: skip
        k = (10, 4) if cin == 1 else 3
        shape = (h * 2, 5 * 2, cin) if cin == 1 else (h * s, h * s, cin)
        cases.append(("conv", f"conv {k} {shape}->{cout} s{s}", [shape],
                      one(lambda c=cout, k=k, s=s: L.Conv2D(c, k, strides=s, padding="same"))))  # fmt: skip
    # small convolutions (a few microseconds, where a per-op setup term shows), 2D and 1D-as-2D (kernel 1 x k)
    small: list[tuple[tuple[int, ...], tuple[int, int], tuple[int, int], int]] = [
        ((8, 8, 8), (3, 3), (1, 1), 8), ((12, 12, 4), (3, 3), (2, 2), 12), ((1, 96, 8), (1, 3), (1, 1), 16),
        ((1, 300, 2), (1, 7), (1, 3), 8)]  # fmt: skip
    for shape1, kk, ss, cout in small:
        cases.append(("conv", f"conv {kk} {shape1}->{cout} s{ss}", [shape1],
                      one(lambda c=cout, k=kk, s=ss: L.Conv2D(c, k, strides=s, padding="same"))))  # fmt: skip
    for h, cin, cout in [(56, 32, 64), (28, 128, 128), (14, 256, 512), (7, 512, 1024), (112, 32, 16), (14, 96, 24),
                         (28, 24, 144), (7, 160, 960), (25, 64, 64), (12, 8, 16), (28, 40, 20),
                         (14, 20, 40)]:  # fmt: skip
        cases.append(("conv1x1", f"conv1x1 {h}x{h}x{cin}->{cout}", [(h, h, cin)], one(lambda c=cout: L.Conv2D(c, 1))))
    for h, c, k, s in [(112, 32, 3, 1), (112, 96, 3, 2), (28, 144, 3, 1), (14, 384, 3, 1), (7, 960, 3, 1),
                       (14, 240, 5, 1), (56, 144, 5, 2), (25, 64, 3, 1), (48, 8, 3, 1), (40, 24, 3, 1),
                       (20, 20, 3, 1)]:  # fmt: skip
        cases.append(("depthwise", f"dw {k}x{k} {h}x{h}x{c} s{s}", [(h, h, c)],
                      one(lambda k=k, s=s: L.DepthwiseConv2D(k, strides=s, padding="same"))))  # fmt: skip
    # weights up to ~1 MiB (L2-resident); bigger weights are a memory effect (cache floor, cold-weight term)
    for din, dout in [(1024, 256), (512, 256), (256, 128), (640, 128), (128, 8), (64, 10), (1280, 128), (100, 12)]:
        cases.append(("fully_connected", f"fc {din}->{dout}", [(din,)], one(lambda d=dout: L.Dense(d))))
    # Matrix products of two activations (attention's QK^T and AV): BATCH_MATMUL, costed with the class's
    # setup and per-output terms and an efficiency of its own. In int8 XNNPACK takes it only when the
    # right-hand side is symmetric (zero point 0); else TFLite's reference kernel runs it, far slower: both
    # are timed, the representative data's range setting the zero point.
    for b, m, k, n in [(4, 49, 32, 49), (2, 100, 16, 100), (8, 25, 64, 25)]:
        for rhs, span in (("symmetric", (-128 / 127, 1.0)), ("asymmetric", (-0.25, 1.0))):
            cases.append(("fully_connected", f"batch_matmul {b}x{m}x{k} @ {b}x{k}x{n} {rhs}", [(b, m, k), (b, k, n)],
                          with_ranges(lambda xs: keras.ops.matmul(xs[0], xs[1]), [(-1.0, 1.0), span])))  # fmt: skip
    add = lambda xs: L.Add()(xs)  # noqa: E731
    mul = lambda xs: L.Multiply()(xs)  # noqa: E731
    cat = lambda xs: L.Concatenate()(xs)  # noqa: E731
    cases += [
        ("pool", "maxpool 2x2 56x56x64", [(56, 56, 64)], one(lambda: L.MaxPooling2D(2))),
        ("pool", "maxpool 3x3 s2 28x28x128", [(28, 28, 128)], one(lambda: L.MaxPooling2D(3, 2, padding="same"))),
        ("pool", "avgpool 7x7 7x7x1024", [(7, 7, 1024)], one(lambda: L.AveragePooling2D(7))),
        ("pool", "avgpool 2x2 32x32x64", [(32, 32, 64)], one(lambda: L.AveragePooling2D(2))),
        ("elementwise", "add 56x56x64", [(56, 56, 64)] * 2, add),
        ("elementwise", "add 14x14x160", [(14, 14, 160)] * 2, add),
        ("elementwise", "mul 28x28x96", [(28, 28, 96)] * 2, mul),
        ("elementwise", "mul 14x14x480 by 1x1x480", [(14, 14, 480), (1, 1, 480)], mul),
        ("elementwise", "relu6 56x56x64", [(56, 56, 64)], one(lambda: L.ReLU(6.0))),
        ("elementwise", "relu 28x28x128", [(28, 28, 128)], one(lambda: L.ReLU())),
        ("elementwise", "hard_swish 28x28x96", [(28, 28, 96)], one(lambda: L.Activation("hard_swish"))),
        ("transcendental", "logistic 28x28x96", [(28, 28, 96)], one(lambda: L.Activation("sigmoid"))),
        ("transcendental", "tanh 56x56x32", [(56, 56, 32)], one(lambda: L.Activation("tanh"))),
        ("memory", "concat 28x28x64 x2", [(28, 28, 64)] * 2, cat),
        ("memory", "concat 14x14x128 x2", [(14, 14, 128)] * 2, cat),
        ("memory", "pad 56x56x32", [(56, 56, 32)], one(lambda: L.ZeroPadding2D(1))),
        ("memory", "mean 7x7x1280", [(7, 7, 1280)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "mean 14x14x256", [(14, 14, 256)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "mean 56x56x32", [(56, 56, 32)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "softmax 1000", [(1000,)], one(lambda: L.Softmax())),
        ("memory", "softmax 10", [(10,)], one(lambda: L.Softmax())),
        ("memory", "softmax 4x49x49", [(4, 49, 49)], one(lambda: L.Softmax())),
        ("memory", "softmax 2x100x100", [(2, 100, 100)], one(lambda: L.Softmax())),
        ("transcendental", "gelu 49x128", [(49, 128)], one(lambda: L.Activation("gelu"))),
        ("transcendental", "gelu 100x256", [(100, 256)], one(lambda: L.Activation("gelu"))),
        (
            "elementwise",
            "squared_difference 49x64",
            [(49, 64)] * 2,
            lambda xs: keras.ops.square(keras.ops.subtract(xs[0], xs[1])),
        ),
        (
            "elementwise",
            "squared_difference 100x128",
            [(100, 128)] * 2,
            lambda xs: keras.ops.square(keras.ops.subtract(xs[0], xs[1])),
        ),
    ]
    return cases


def with_ranges(build: Any, ranges: list[tuple[float, float]]) -> Any:
    """`build`, with the range of each input's representative data (which sets its int8 zero point)."""
    build.rep_ranges = ranges
    return build


def _representative(shapes: list[tuple[int, ...]], build: Any) -> list[NDArray[Any]]:
    """Four samples per input, uniform over its range, with both ends present (a reproducible zero point)."""
    rng = np.random.default_rng(0)
    reps = []
    for shape, (lo, hi) in zip(shapes, getattr(build, "rep_ranges", [(-1.0, 1.0)] * len(shapes)), strict=True):
        rep = rng.uniform(lo, hi, (4, *shape)).astype(np.float32)
        rep.flat[0], rep.flat[1] = lo, hi
        reps.append(rep)
    return reps


def single_op_tflite(shapes: list[tuple[int, ...]], build: Any, quantization: str) -> bytes:
    import keras

    from pruning.export import to_tflite

    # named in order: the converter orders a signature's inputs by name (keras_tensor_10 before _9)
    xs = [keras.Input(s, name=f"in{i}") for i, s in enumerate(shapes)]
    model = keras.Model(xs if len(xs) > 1 else xs[0], build(xs))
    reps = _representative(shapes, build)
    if len(shapes) == 1:
        return to_tflite(model, quantization, reps[0])
    return _to_tflite_multi(model, quantization, reps)


def _to_tflite_multi(model: Any, quantization: str, reps: list[NDArray[Any]]) -> bytes:
    """pruning.export.to_tflite for models with several inputs (micro-benchmarks of binary ops)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":

        def batches() -> Any:
            for i in range(len(reps[0])):
                yield [r[i : i + 1] for r in reps]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def time_us(tflite: bytes, budget_s: float = 0.4, repeats: int = 3) -> float:
    """Median time of one inference (LiteRT, 1 thread, thread CPU time over 40 timed batches: pruning.host), the
    lower of `repeats` medians, microseconds."""
    from pruning.host import measure_latency

    return min(
        float(measure_latency(tflite, threads=1, warmup=10, runs=40, budget_s=budget_s)["measured_ms"]) * 1000.0
        for _ in range(repeats)
    )


def chain_tflite(n: int, quantization: str) -> bytes:
    import keras

    from pruning.export import to_tflite

    x = keras.Input((1, 1, 8))
    y = x
    for _ in range(n):
        y = keras.layers.Add()([y, x])
    model = keras.Model(x, y)
    rep = np.random.default_rng(0).uniform(-1, 1, (4, 1, 1, 8)).astype(np.float32)
    return to_tflite(model, quantization, rep)


def op_overheads(timed: Any, build: Any, repeats: int = 3, log: Any = print) -> tuple[float, float, list[float]]:
    """(per-op, invoke overhead, every per-op reading) microseconds, from chains of 1 and 33 tiny ADDs
    (`build(n, quantization)`), float32 and int8: the slope and the intercept, each pair timed `repeats` times
    interleaved and the median taken, so one reading taken in a passing state of the host does not become the
    tables' (an idle AVX-512 EPYC read 0.022 us per op in one calibration, 0.058 in the next ten minutes later
    and in every check after it)."""
    per_op: list[float] = []
    invoke: list[float] = []
    for _ in range(repeats):
        for q in ("none", "int8"):
            t1, t33 = timed(build(1, q)), timed(build(33, q))
            slope = max((t33 - t1) / 32, 0.0)
            per_op.append(slope)
            invoke.append(max(t1 - slope, 0.0))
    log(f"overhead: per op {np.median(per_op):.3f} us (readings {', '.join(f'{v:.3f}' for v in per_op)}), "
        f"invoke {np.median(invoke):.3f} us")  # fmt: skip
    return float(np.median(per_op)), float(np.median(invoke)), [round(v, 4) for v in per_op]


def stable_time_us(tflite: bytes, budget_s: float = 0.4, max_repeats: int = 6, tolerance: float = 0.03) -> float:
    """`time_us`'s medians repeated until the two lowest agree within `tolerance` (noisy hosts), at most
    `max_repeats` times; the lowest. A median of 0 (a timer faster than its clock) is returned as 0: the
    caller floors it."""
    meds: list[float] = []
    for _ in range(max_repeats):
        meds.append(time_us(tflite, budget_s, repeats=1))
        if len(meds) >= 2:
            a, b = sorted(meds)[:2]
            if b <= a * (1 + tolerance) or b - a < 0.05:
                break
    return min(meds)


FIRST_OP_CHAINS: dict[str, tuple[tuple[int, ...], Any]] = {
    "fully_connected": ((48,), lambda L: L.Dense(48)),
    "conv": ((8, 8, 16), lambda L: L.Conv2D(16, 3, padding="same")),
    "depthwise": ((8, 8, 32), lambda L: L.DepthwiseConv2D(3, padding="same")),
}
"""Per MAC class, a small op (input shape, layer) chained 1 and 9 times by `first_op_overheads` (conv1x1 runs
on conv's GEMM kernels and takes its value)."""


def mac_chain_tflite(cls: str, n: int, quantization: str) -> bytes:
    """`n` copies of the class's small op in a row (distinct weights, kilobytes: all cache-resident)."""
    import keras

    from pruning.export import to_tflite

    shape, layer = FIRST_OP_CHAINS[cls]
    x = inp = keras.Input(shape)
    for _ in range(n):
        x = layer(keras.layers)(x)
    rep = np.random.default_rng(0).uniform(-1, 1, (4, *shape)).astype(np.float32)
    return to_tflite(keras.Model(inp, x), quantization, rep)


GEMM_DTYPES = {"float32": "none", "int8": "int8"}
"""dtype -> the export quantization of the calibration's GEMM chains (float32 and int8 kernels)."""

FIRST_OP_ROUNDS = 3
"""Rounds of `first_op_overheads`' chains, interleaved, the lowest reading of each chain kept. With one reading
(tables v2-v10) four calibrations of an idle AVX-512 EPYC within 40 minutes (2026-12-08) read a chain of one
float conv at 3.66, 4.52, 6.63 and 3.66 us (nine: 29.2-33.0 us) and one FULLY_CONNECTED at 0.58-1.11 us, so the
once-per-inference cost came out 0.0, 0.79, 3.02 and 0.0 us for float convolutions: taken off every conv case of
the fit, it moved the tables of small models by 10-20%."""


def first_op_overheads(
    timed: Any,
    invoke_us: float,
    log: Any = print,
    marginal: dict[tuple[str, str], list[Any]] | None = None,
    rounds: int = FIRST_OP_ROUNDS,
) -> dict[str, dict[str, float]]:
    """class -> dtype -> microseconds an inference pays once when it runs ops of that class, beyond the invoke
    overhead (of a chain of ADDs) and beyond the ops' own cost: the intercept of a chain of 1 and 9 small ops,
    minus the invoke overhead. Measured on a Xeon: about 0.3 us for int8 FULLY_CONNECTED and convolutions, once
    per inference however many such ops follow (a convolution chain followed by a FULLY_CONNECTED chain pays it
    once), nothing in float32. Single-op micro-benchmarks pay it once too, so the fit takes it off their times;
    the estimate adds the largest of a model's classes once. Each chain is timed in `rounds` interleaved rounds
    and its lowest reading kept (`FIRST_OP_ROUNDS`: one slow reading of a sub-microsecond chain is a spell of the
    host, not the runtime's cost).

    `marginal` collects (class, dtype) -> [(the small op's OpCost, what one more of it costs in the chain,
    (t9 - t1) / 8 us)]: a small op's own time, which a one-op model hides under its invoke overhead (an AVX2
    EPYC: a 48->48 int8 FULLY_CONNECTED adds 0.19 us to a chain, where the fit on one-op models gave 0.04 us),
    for the class's fit beside the one-op cases."""
    from pruning.estimate.costs import analyse
    from pruning.estimate.graph import parse

    chains = {(cls, dtype): (mac_chain_tflite(cls, 1, q), mac_chain_tflite(cls, 9, q))
              for cls in FIRST_OP_CHAINS for dtype, q in GEMM_DTYPES.items()}  # fmt: skip
    readings: dict[tuple[str, str], list[tuple[float, float]]] = {key: [] for key in chains}
    for _ in range(max(rounds, 1)):
        for key, (one, nine) in chains.items():
            readings[key].append((timed(one), timed(nine)))
    out: dict[str, dict[str, float]] = {}
    for (cls, dtype), pairs in readings.items():
        t1, t9 = min(a for a, _ in pairs), min(b for _, b in pairs)
        first = max(t1 - max(t9 - t1, 0.0) / 8 - invoke_us, 0.0)
        out.setdefault(cls, {})[dtype] = round(first, 3)
        log(f"first {cls} op {dtype}: chain 1 {t1:.2f} us, 9 {t9:.2f} us (lowest of {len(pairs)}) -> once per "
            f"inference {first:.3f} us")  # fmt: skip
        if marginal is None or t9 <= t1:
            continue
        ops = [c for c in analyse(parse(chains[cls, dtype][0])) if c.cls == cls and not c.init_time]
        if len(ops) == 1:
            marginal.setdefault((cls, ops[0].dtype), []).append((ops[0], (t9 - t1) / 8))
    if "conv" in out:
        out["conv1x1"] = dict(out["conv"])
    return out


def loop_tflite(n: int) -> bytes:
    """A WHILE loop of `n` iterations (a counter and two tiny float ops on a (1, 16) state), as the converter
    makes of a recurrent layer: the WHILE op, its condition subgraph and its body subgraph."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, 16), tf.float32)])  # type: ignore[untyped-decorator]
    def f(x: Any) -> Any:
        _, y = tf.while_loop(lambda i, _x: i < n, lambda i, x: (i + 1, x * 0.5 + 1.0), (tf.constant(0), x))
        return y

    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return bytes(converter.convert())


def loop_overheads(timed: Any, invoke_us: float, per_op_us: float, log: Any = print) -> tuple[float, float]:
    """(once per WHILE loop, per iteration) microseconds beyond the ops of its body: the interpreter evaluates
    the condition subgraph, moves the loop state and invokes the body's delegated subgraph each iteration.
    From loops of 1 and 33 iterations; the body's three ops are taken off at the per-op overhead."""
    t1, t33 = timed(loop_tflite(1)), timed(loop_tflite(33))
    slope = max(t33 - t1, 0.0) / 32
    per_iteration = max(slope - 3 * per_op_us, 0.0)
    fixed = max(t1 - slope - invoke_us, 0.0)
    log(f"WHILE loop: 1 iteration {t1:.2f} us, 33 {t33:.2f} us -> {per_iteration:.3f} us per iteration, "
        f"{fixed:.3f} us once")  # fmt: skip
    return round(fixed, 3), round(per_iteration, 3)


SWEEP_SIZES = [(256, 256), (512, 256), (512, 512), (768, 512), (1024, 512), (1024, 768), (1024, 1024), (2048, 1024),
               (2048, 2048), (4096, 2048), (4096, 4096), (8192, 4096)]  # fmt: skip
"""(inputs, units) of the weight-stream sweep's float FULLY_CONNECTED ops: 0.25, 0.5, 1, 1.5, 2, 3, 4 ... 128 MiB."""


def weight_sweep(timed: Any, quick: bool = False, log: Any = print, single: Any = None) -> list[tuple[int, float]]:
    """(weight bytes, GB/s) of single float FULLY_CONNECTED ops timed in a loop, ascending sizes (`single`: the
    model builder, `single_op_tflite` unless given)."""
    import keras

    single = single or single_op_tflite
    sweep = []
    sizes = [(256, 256), (1024, 256), (1024, 1024)] if quick else SWEEP_SIZES
    for din, dout in sizes:
        tfl = single([(din,)], lambda xs, d=dout: keras.layers.Dense(d)(xs[0]), "none")
        size = din * dout * 4
        rate = size / (timed(tfl, 0.1 if quick else (0.5 if size < 2**22 else 1.0)) * 1e3)
        sweep.append((size, rate))
        log(f"weight stream {size / 2**20:6.2f} MiB: {rate:6.1f} GB/s")
    return sweep


def interleaved_cases(cases: list[Any]) -> list[Any]:
    """Cases round-robin over classes, so a budget cut still leaves every class some samples."""
    by_cls: dict[str, list[Any]] = {}
    for case in cases:
        by_cls.setdefault(case[0], []).append(case)
    out = []
    while any(by_cls.values()):
        for queue in by_cls.values():
            if queue:
                out.append(queue.pop(0))
    return out


def matmul_kind(desc: str) -> str:
    """'symmetric' or 'asymmetric' for a BATCH_MATMUL case (the last word of its description), else ''."""
    return desc.rsplit(" ", 1)[-1] if desc.startswith("batch_matmul") else ""
