"""Keras builders of the MCUNet-zoo networks whose TFLite Micro + CMSIS-NN latency on an STM32H743 (Cortex-M7,
480 MHz) TinyEngine's README publishes (bench/device_mcu.py checks them). Random weights, architecture only.

Each network is a ProxylessNAS-style chain of inverted-residual blocks, written here as
(depthwise kernel, expanded channels or 0 for none, output channels, stride); a block has the identity shortcut
when its stride is 1 and its input and output widths agree. Where the layers come from:

- mcunet-in0..in3, proxyless-w0.3-r176, mbv2-w0.3: the net configs of mit-han-lab/tinyml at
  e899b1bec08604910098ab6aab57bb30735dbb31, mcunet/assets/configs/{mcunet-10fps, mcunet-5fps, mcunet-256kb-1mb,
  mcunet-320kb-1mb, proxyless-w0.3-r176, mbv2-w0.3-r80}_imagenet.json (their MACs agree with mit-han-lab/mcunet's
  model list: 6.4M, 12.8M, 67.3M, 81.8M, 38.3M; mbv2-w0.3 is the r80 config at 64 px, the README's r64 row).
- mcunet-vww1: the layers of mit-han-lab/tinyengine's assets/vww.tflite (80x80 input, 11.58M MACs, 0.42M weights:
  the zoo's mcunet-vww1, 11.6M MACs, 0.43M parameters, resolution 80).
- mcunet-vww2: the Wake Vision Challenge's Keras MCUNet-VWW2 (data_centric_track.py, e.g. in
  github.com/kais-bedioui/Wake_Vision_Challenge_Data_Centric_Track; 144x144, 55.77M MACs against the zoo's 55.8M).

The zoo's converter writes an explicit PAD before each stride-2 layer and 'same' padding at stride 1 (as in
assets/vww.tflite); the builders do the same. Head: global average pool and a dense classifier.
"""

from __future__ import annotations

from typing import Any

Block = tuple[int, int, int, int]

# name: (resolution, first conv width, blocks, feature-mix width or 0, classes)
SPECS: dict[str, tuple[int, int, list[Block], int, int]] = {
    "mcunet-in0": (48, 24, [(3, 0, 16, 1), (5, 64, 16, 2), (3, 48, 16, 1), (3, 64, 16, 1), (7, 80, 24, 2),
        (5, 96, 24, 1), (5, 120, 24, 1), (7, 120, 48, 2), (5, 192, 48, 1), (3, 240, 56, 1), (5, 224, 56, 1),
        (3, 280, 56, 1), (3, 336, 112, 2), (5, 448, 112, 1), (3, 672, 192, 1)], 0, 1000),
    "mcunet-in1": (96, 16, [(3, 0, 8, 1), (3, 32, 16, 2), (3, 48, 16, 1), (7, 48, 24, 2), (3, 120, 24, 1),
        (3, 120, 40, 2), (7, 160, 40, 1), (5, 160, 48, 1), (3, 144, 48, 1), (3, 192, 48, 1), (7, 240, 96, 2),
        (5, 384, 96, 1), (5, 384, 96, 1), (3, 576, 160, 1)], 0, 1000),
    "mcunet-in2": (160, 16, [(3, 0, 8, 1), (5, 24, 16, 2), (7, 96, 16, 1), (3, 80, 16, 1), (5, 80, 16, 1),
        (3, 80, 24, 2), (7, 144, 24, 1), (5, 144, 24, 1), (7, 96, 40, 2), (5, 200, 40, 1), (3, 200, 48, 1),
        (5, 240, 48, 1), (3, 192, 48, 1), (5, 288, 96, 2), (5, 384, 96, 1), (5, 288, 96, 1), (3, 384, 96, 1),
        (5, 480, 160, 1)], 0, 1000),
    "mcunet-in3": (176, 16, [(3, 0, 8, 1), (7, 24, 16, 2), (3, 80, 16, 1), (7, 80, 16, 1), (5, 64, 16, 1),
        (5, 80, 24, 2), (5, 120, 24, 1), (5, 120, 24, 1), (3, 120, 40, 2), (7, 240, 40, 1), (5, 160, 40, 1),
        (5, 200, 48, 1), (7, 240, 48, 1), (3, 240, 48, 1), (3, 288, 96, 2), (7, 480, 96, 1), (3, 384, 96, 1),
        (7, 480, 160, 1)], 0, 1000),
    "proxyless-w0.3-r176": (176, 16, [(3, 0, 8, 1), (5, 24, 16, 2), (3, 48, 16, 1), (7, 48, 16, 2),
        (3, 48, 16, 1), (5, 48, 16, 1), (5, 48, 16, 1), (7, 96, 24, 2), (5, 72, 24, 1), (5, 72, 24, 1),
        (5, 72, 24, 1), (5, 144, 32, 1), (5, 96, 32, 1), (5, 96, 32, 1), (5, 96, 32, 1), (7, 192, 64, 2),
        (7, 384, 64, 1), (7, 192, 64, 1), (7, 192, 64, 1), (7, 384, 96, 1)], 384, 1000),
    "mbv2-w0.3-r64": (64, 16, [(3, 0, 8, 1), (3, 48, 8, 2), (3, 48, 8, 1), (3, 48, 16, 2), (3, 96, 16, 1),
        (3, 96, 16, 1), (3, 96, 24, 2), (3, 144, 24, 1), (3, 144, 24, 1), (3, 144, 24, 1), (3, 144, 32, 1),
        (3, 192, 32, 1), (3, 192, 32, 1), (3, 192, 48, 2), (3, 288, 48, 1), (3, 288, 48, 1), (3, 288, 96, 1)],
        384, 1000),
    "mcunet-vww1": (80, 16, [(3, 0, 8, 1), (3, 48, 16, 2), (3, 48, 16, 1), (3, 48, 16, 1), (7, 48, 24, 2),
        (3, 144, 24, 1), (5, 120, 24, 1), (7, 144, 40, 2), (7, 240, 40, 1), (3, 240, 48, 1), (3, 192, 48, 1),
        (5, 240, 96, 2), (3, 480, 96, 1), (3, 384, 96, 1), (7, 288, 160, 1)], 0, 2),
    "mcunet-vww2": (144, 16, [(3, 0, 8, 1), (3, 24, 16, 2), (3, 80, 16, 1), (5, 96, 16, 1), (3, 48, 16, 1),
        (7, 80, 24, 2), (5, 96, 24, 1), (3, 96, 24, 1), (7, 144, 24, 1), (3, 144, 40, 2), (7, 240, 40, 1),
        (5, 160, 40, 1), (3, 200, 40, 1), (5, 200, 48, 1), (5, 144, 48, 1), (3, 192, 48, 1), (5, 144, 48, 1),
        (3, 192, 96, 2), (5, 480, 96, 1), (5, 384, 96, 1), (3, 384, 96, 1), (3, 480, 160, 1)], 0, 2),
}  # fmt: skip


def _conv(L: Any, x: Any, filters: int, kernel: int, stride: int, depthwise: bool, act: bool) -> Any:
    if stride == 2:  # the zoo's explicit PAD, then a valid convolution
        x = L.ZeroPadding2D(kernel // 2)(x)
    pad = "valid" if stride == 2 else "same"
    if depthwise:
        x = L.DepthwiseConv2D(kernel, strides=stride, padding=pad, use_bias=False)(x)
    else:
        x = L.Conv2D(filters, kernel, strides=stride, padding=pad, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    return L.ReLU(6.0)(x) if act else x


def mcunet(name: str) -> Any:
    """The network `name` of SPECS as a Keras model (ReLU6 everywhere but the linear projections)."""
    import keras  # here, so that SPECS can be read without TensorFlow

    L = keras.layers
    res, first, blocks, mix, classes = SPECS[name]
    x = inp = keras.Input((res, res, 3))
    x = _conv(L, x, first, 3, 2, False, True)
    width = first
    for kernel, mid, out, stride in blocks:
        y = _conv(L, x, mid, 1, 1, False, True) if mid else x
        y = _conv(L, y, 0, kernel, stride, True, True)
        y = _conv(L, y, out, 1, 1, False, False)
        x = L.Add()([x, y]) if stride == 1 and width == out else y
        width = out
    if mix:
        x = _conv(L, x, mix, 1, 1, False, True)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(classes)(x), name=name.replace(".", "_"))


MCUNET_MODELS: dict[str, tuple[Any, str]] = {n: ((lambda n=n: mcunet(n)), n.replace(".", "_")) for n in SPECS}
