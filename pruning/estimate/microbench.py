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
    """Median time of one inference (LiteRT, 1 thread), the lower of `repeats` medians, microseconds."""
    from pruning.host import measure_latency

    return min(
        float(measure_latency(tflite, threads=1, warmup=10, runs=400, budget_s=budget_s)["measured_ms"]) * 1000.0
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
