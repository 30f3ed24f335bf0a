"""Keras builders of the device-estimate zoo (bench/device_zoo.py, bench/device_published.py): the MLPerf
Tiny models, MobileNets, EfficientNet-Lite, the examples, unstructured-pruned variants. Random weights."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import math  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers


def kws_dscnn(filters: int = 64) -> keras.Model:
    """MLPerf Tiny KWS DS-CNN (49x10 MFCC): 2,656,768 MACs at 64 filters."""
    x = inp = keras.Input((49, 10, 1))
    x = L.Conv2D(filters, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=(25, 5))(x))
    return keras.Model(inp, L.Dense(12, activation="softmax")(x), name=f"kws_dscnn_{filters}")


def vww_mobilenet(alpha: float = 0.25) -> keras.Model:
    """MLPerf Tiny VWW: MobileNetV1 alpha 0.25 at 96x96, AveragePooling + Dense 2."""
    x = inp = keras.Input((96, 96, 3))

    def c(n: int) -> int:  # the listed widths are those of alpha 0.25
        return max(4, int(round(n * alpha / 0.25)))

    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(c(8), 3, strides=2, padding="same", use_bias=False)(x)))
    for width, stride in (
        [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    ):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(c(width), 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=x.shape[1:3])(x))
    return keras.Model(inp, L.Dense(2, activation="softmax")(x), name=f"vww_mobilenet_{alpha}")


def resnet8(base: int = 16) -> keras.Model:
    """MLPerf Tiny IC ResNet-8 (CIFAR-10 32x32): 12,501,632 MACs at base 16."""
    x = inp = keras.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(base, 3, padding="same")(x)))
    for filters, stride in [(base, 1), (base * 2, 2), (base * 4, 2)]:
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(pool_size=8)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name=f"resnet8_{base}")


def ad_autoencoder() -> keras.Model:
    """MLPerf Tiny AD deep autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640 (264,192 MACs)."""
    x = inp = keras.Input((640,))
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(640)(x), name="ad_autoencoder")


def _round_filters(filters: float, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


_EFFNET_BLOCKS = [  # kernel, repeats, in, out, expand, stride (EfficientNet-B0 = Lite0 without SE/swish)
    (3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1),
]  # fmt: skip
LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


def efficientnet_lite(level: int, resolution: int | None = None) -> keras.Model:
    """EfficientNet-Lite (tensorflow/tpu efficientnet/lite): B0 blocks without squeeze-excite, ReLU6,
    stem (32) and head (1280) not scaled, first and last block repeats not scaled."""
    width, depth, size = LITE[level]
    size = resolution or size
    x = inp = keras.Input((size, size, 3))
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)))
    cin = 32
    for i, (k, repeats, _, fout, expand, stride) in enumerate(_EFFNET_BLOCKS):
        fout = _round_filters(fout, width)
        n = repeats if i in (0, len(_EFFNET_BLOCKS) - 1) else int(math.ceil(depth * repeats))
        for r in range(n):
            s = stride if r == 0 else 1
            y = x
            if expand != 1:
                y = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(cin * expand, 1, use_bias=False)(y)))
            y = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False)(y)))
            y = L.BatchNormalization()(L.Conv2D(fout, 1, use_bias=False)(y))
            x = L.Add()([x, y]) if s == 1 and cin == fout else y
            cin = fout
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(1280, 1, use_bias=False)(x)))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000, activation="softmax")(x), name=f"efficientnet_lite{level}_{size}")


def _apps(name: str, **kw: Any) -> Any:
    def build() -> keras.Model:
        fn = getattr(keras.applications, name)
        extra = {"include_preprocessing": False} if name.startswith("MobileNetV3") else {}
        return fn(weights=None, **extra, **kw)

    return build


def digits_cnn() -> keras.Model:
    from pruning.examples import digits_cnn as build

    return build(epochs=0)


def har_cnn() -> keras.Model:
    from pruning.examples import har_cnn as build

    return build(epochs=0)


def unstructured(builder: Any, sparsity: float = 0.8) -> Any:
    """The same model with `sparsity` of every conv/dense kernel zeroed by magnitude (per layer, numpy)."""

    def build() -> keras.Model:
        model = builder()
        rng = np.random.default_rng(0)
        for layer in model.layers:
            for w in layer.weights:
                if "kernel" not in w.path or len(w.shape) < 2:
                    continue
                value = np.asarray(w.numpy())
                if not np.any(value):
                    value = rng.normal(0, 0.05, value.shape).astype(value.dtype)
                cut = np.quantile(np.abs(value), sparsity)
                w.assign(np.where(np.abs(value) <= cut, 0, value).astype(value.dtype))
        return model

    return build


ZOO: dict[str, Any] = {
    "mobilenet_v1_1.0_224": _apps("MobileNet", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v1_0.5_160": _apps("MobileNet", alpha=0.5, input_shape=(160, 160, 3)),
    "mobilenet_v1_0.25_128": _apps("MobileNet", alpha=0.25, input_shape=(128, 128, 3)),
    "mobilenet_v2_1.0_224": _apps("MobileNetV2", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v2_0.5_160": _apps("MobileNetV2", alpha=0.5, input_shape=(160, 160, 3)),
    "mobilenet_v2_0.35_96": _apps("MobileNetV2", alpha=0.35, input_shape=(96, 96, 3)),
    "mobilenet_v3_small_1.0_224": _apps("MobileNetV3Small", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v3_small_0.75_128": _apps("MobileNetV3Small", alpha=0.75, input_shape=(128, 128, 3)),
    "mobilenet_v3_large_1.0_160": _apps("MobileNetV3Large", alpha=1.0, input_shape=(160, 160, 3)),
    "mobilenet_v3_large_min_1.0_160": _apps(
        "MobileNetV3Large", alpha=1.0, minimalistic=True, input_shape=(160, 160, 3)
    ),
    "efficientnet_b0_224": _apps("EfficientNetB0", input_shape=(224, 224, 3)),
    "efficientnet_lite0_224": lambda: efficientnet_lite(0),
    "mlperf_kws_dscnn": kws_dscnn,
    "mlperf_vww_mobilenet_0.25": vww_mobilenet,
    "mlperf_ic_resnet8": resnet8,
    "mlperf_ad_autoencoder": ad_autoencoder,
    "digits_cnn": digits_cnn,
    "har_cnn": har_cnn,
    "mobilenet_v2_1.0_160_unstructured80": unstructured(_apps("MobileNetV2", alpha=1.0, input_shape=(160, 160, 3))),
    "mobilenet_v2_1.0_160": _apps("MobileNetV2", alpha=1.0, input_shape=(160, 160, 3)),
    "resnet8_unstructured80": unstructured(resnet8),
    "resnet8_thin_half": lambda: resnet8(8),
    "kws_dscnn_thin_half": lambda: kws_dscnn(32),
    "mobilenet_v2_thin_half_160": _apps("MobileNetV2", alpha=0.5, input_shape=(160, 160, 3)),
}
QUICK = ["mlperf_kws_dscnn", "mlperf_ic_resnet8", "mlperf_ad_autoencoder", "digits_cnn", "har_cnn"]
