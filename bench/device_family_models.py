"""The host zoo split into architecture families (bench/device_families.py, issue 14 item 2).

Small inputs and two to four models per family (EfficientNetV2, ResNet50V2 and Xception itself were dropped:
their exports alone took minutes each on the loaded 2-core machine; mini_xception keeps its separable blocks).
keras.applications models are built with weights=None; the others are small hand-written members of the same
family. Random weights (latency does not depend on them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from bench.device_models import _apps, ad_autoencoder, efficientnet_lite, har_cnn, kws_dscnn, resnet8  # noqa: E402

L = keras.layers


def vgg_small(size: int = 64) -> keras.Model:
    """VGG-style: blocks of two 3x3 convs + max-pool (32, 64, 128 filters), then two dense layers."""
    x = inp = keras.Input((size, size, 3))
    for filters in (32, 64, 128):
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = L.MaxPooling2D(2)(x)
    x = L.Dense(128, activation="relu")(L.Flatten()(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name="vgg_small")


def plain_cnn(size: int = 32) -> keras.Model:
    """A plain CIFAR-style CNN: 3x3 conv + pool three times, no BatchNorm, global pool."""
    x = inp = keras.Input((size, size, 3))
    for filters in (24, 48, 96):
        x = L.MaxPooling2D(2)(L.Conv2D(filters, 3, padding="same", activation="relu")(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10)(x), name="plain_cnn")


def mini_inception(size: int = 48) -> keras.Model:
    """Inception blocks: 1x1 / 1x1-3x3 / 1x1-5x5 / pool-1x1 branches concatenated."""
    x = inp = keras.Input((size, size, 3))
    x = L.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    for width in (16, 24, 32):
        a = L.Conv2D(width, 1, activation="relu")(x)
        b = L.Conv2D(width, 3, padding="same", activation="relu")(L.Conv2D(width // 2, 1, activation="relu")(x))
        c = L.Conv2D(width // 2, 5, padding="same", activation="relu")(L.Conv2D(width // 4, 1, activation="relu")(x))
        d = L.Conv2D(width // 2, 1, activation="relu")(L.MaxPooling2D(3, 1, padding="same")(x))
        x = L.MaxPooling2D(2)(L.Concatenate()([a, b, c, d]))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(10)(x), name="mini_inception")


def mini_densenet(size: int = 32, growth: int = 12) -> keras.Model:
    """DenseNet-BC: dense blocks (BN-ReLU-1x1-BN-ReLU-3x3, concatenated) and transitions (1x1 + avg-pool)."""
    x = inp = keras.Input((size, size, 3))
    x = L.Conv2D(2 * growth, 3, padding="same")(x)
    for block in range(3):
        for _ in range(4):
            y = L.Conv2D(4 * growth, 1)(L.ReLU()(L.BatchNormalization()(x)))
            y = L.Conv2D(growth, 3, padding="same")(L.ReLU()(L.BatchNormalization()(y)))
            x = L.Concatenate()([x, y])
        if block < 2:
            x = L.AveragePooling2D(2)(L.Conv2D(int(x.shape[-1]) // 2, 1)(L.ReLU()(L.BatchNormalization()(x))))
    x = L.GlobalAveragePooling2D()(L.ReLU()(L.BatchNormalization()(x)))
    return keras.Model(inp, L.Dense(10)(x), name="mini_densenet")


def mini_xception(size: int = 48) -> keras.Model:
    """Xception-style: separable 3x3 convs in residual blocks with strided 1x1 shortcuts."""
    x = inp = keras.Input((size, size, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(32, 3, strides=2, padding="same")(x)))
    for filters in (64, 128, 192):
        y = L.ReLU()(L.BatchNormalization()(L.SeparableConv2D(filters, 3, padding="same")(x)))
        y = L.BatchNormalization()(L.SeparableConv2D(filters, 3, padding="same")(y))
        y = L.MaxPooling2D(3, 2, padding="same")(y)
        x = L.Add()([y, L.Conv2D(filters, 1, strides=2)(x)])
    x = L.GlobalAveragePooling2D()(L.ReLU()(x))
    return keras.Model(inp, L.Dense(10)(x), name="mini_xception")


def conv1d_net(steps: int = 256, channels: int = 6) -> keras.Model:
    """A 1D conv net over a multichannel time series (kernel 7, 5, 3; max-pool)."""
    x = inp = keras.Input((steps, channels))
    for filters, k in ((32, 7), (64, 5), (64, 3)):
        x = L.MaxPooling1D(2)(L.Conv1D(filters, k, padding="same", activation="relu")(x))
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(8)(x), name="conv1d_net")


def audio_conv1d(steps: int = 1000, channels: int = 1) -> keras.Model:
    """A raw-waveform 1D CNN: strided kernel-9 convs with BatchNorm."""
    x = inp = keras.Input((steps, channels))
    for filters, s in ((16, 4), (32, 2), (32, 2), (64, 2)):
        x = L.ReLU()(L.BatchNormalization()(L.Conv1D(filters, 9, strides=s, padding="same")(x)))
    x = L.GlobalMaxPooling1D()(x)
    return keras.Model(inp, L.Dense(12)(x), name="audio_conv1d")


def gru_net(steps: int = 24, features: int = 16, units: int = 48) -> keras.Model:
    x = inp = keras.Input((steps, features))
    x = L.GRU(units)(x)
    return keras.Model(inp, L.Dense(6)(x), name="gru_net")


def lstm_net(steps: int = 24, features: int = 16, units: int = 48) -> keras.Model:
    x = inp = keras.Input((steps, features))
    x = L.LSTM(units)(x)
    return keras.Model(inp, L.Dense(6)(x), name="lstm_net")


def mlp(sizes: tuple[int, ...] = (784, 512, 256, 10)) -> keras.Model:
    x = inp = keras.Input((sizes[0],))
    for units in sizes[1:-1]:
        x = L.Dense(units, activation="relu")(x)
    return keras.Model(inp, L.Dense(sizes[-1])(x), name="mlp")


def _encoder(x: Any, dim: int, heads: int, mlp_dim: int) -> Any:
    y = L.LayerNormalization()(x)
    y = L.MultiHeadAttention(heads, dim // heads)(y, y)
    x = L.Add()([x, y])
    y = L.LayerNormalization()(x)
    y = L.Dense(dim)(L.Dense(mlp_dim, activation="gelu")(y))
    return L.Add()([x, y])


def tiny_vit(size: int = 32, patch: int = 4, dim: int = 64, depth: int = 2) -> keras.Model:
    """ViT-lite: patch embedding (strided conv), `depth` pre-norm encoder blocks, mean over tokens."""
    x = inp = keras.Input((size, size, 3))
    x = L.Conv2D(dim, patch, strides=patch)(x)
    x = L.Reshape(((size // patch) ** 2, dim))(x)
    for _ in range(depth):
        x = _encoder(x, dim, 4, 2 * dim)
    x = L.GlobalAveragePooling1D()(L.LayerNormalization()(x))
    return keras.Model(inp, L.Dense(10)(x), name="tiny_vit")


def tiny_text_transformer(tokens: int = 32, dim: int = 64, depth: int = 2) -> keras.Model:
    """A sequence classifier over precomputed embeddings: `depth` encoder blocks, mean over tokens."""
    x = inp = keras.Input((tokens, dim))
    for _ in range(depth):
        x = _encoder(x, dim, 4, 4 * dim)
    x = L.GlobalAveragePooling1D()(x)
    return keras.Model(inp, L.Dense(4)(x), name="tiny_text_transformer")


FAMILIES: dict[str, dict[str, Any]] = {
    "depthwise (MobileNet)": {
        "mobilenet_v1_0.5_96": _apps("MobileNet", alpha=0.5, input_shape=(96, 96, 3)),
        "mobilenet_v2_0.5_96": _apps("MobileNetV2", alpha=0.5, input_shape=(96, 96, 3)),
        "mobilenet_v3_small_0.75_96": _apps("MobileNetV3Small", alpha=0.75, input_shape=(96, 96, 3)),
        "mlperf_kws_dscnn": kws_dscnn,
    },
    "EfficientNet": {
        "efficientnet_b0_96": _apps("EfficientNetB0", input_shape=(96, 96, 3)),
        "efficientnet_lite0_96": lambda: efficientnet_lite(0, 96),
    },
    "plain 3x3 (VGG)": {"vgg_small_64": vgg_small, "plain_cnn_32": plain_cnn},
    "residual (ResNet)": {
        "resnet50_64": _apps("ResNet50", input_shape=(64, 64, 3)),
        "mlperf_ic_resnet8": resnet8,
    },
    "Inception (concat)": {
        "inception_v3_96": _apps("InceptionV3", input_shape=(96, 96, 3)),
        "mini_inception_48": mini_inception,
    },  # fmt: skip
    "DenseNet": {"densenet121_64": _apps("DenseNet121", input_shape=(64, 64, 3)), "mini_densenet_32": mini_densenet},
    "Xception (separable)": {
        "mini_xception_48": mini_xception,
        "mini_xception_64": lambda: mini_xception(64),
    },  # fmt: skip
    "1D conv": {"har_cnn": har_cnn, "conv1d_net": conv1d_net, "audio_conv1d": audio_conv1d},
    "recurrent": {"gru_net": gru_net, "lstm_net": lstm_net},
    "MLP": {"mlperf_ad_autoencoder": ad_autoencoder, "mlp_784": mlp},
    "transformer-lite": {"tiny_vit_32": tiny_vit, "tiny_text_transformer": tiny_text_transformer},
}
QUICK_FAMILIES = {f: dict(list(m.items())[-1:]) for f, m in FAMILIES.items()}
