"""Reference architectures, built in Keras 3 with random weights (nothing is downloaded).

The four MLPerf Tiny v1.1 models, as described in shared/reference/mlperf-tiny-models.md.
"""

import keras


def _conv_bn_relu(
    x: keras.KerasTensor, filters: int, kernel: int | tuple[int, int], strides: int = 1
) -> keras.KerasTensor:
    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def _dw_bn_relu(x: keras.KerasTensor, strides: int = 1) -> keras.KerasTensor:
    x = keras.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    return keras.layers.ReLU()(x)


def kws_dscnn(classes: int = 12) -> keras.Model:
    """Keyword spotting DS-CNN: 49x10 MFCC input."""
    inputs = keras.Input((49, 10, 1))
    x = _conv_bn_relu(inputs, 64, (10, 4), strides=2)
    for _ in range(4):
        x = _dw_bn_relu(x)
        x = _conv_bn_relu(x, 64, 1)
    x = keras.layers.AveragePooling2D(pool_size=(25, 5))(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="kws_dscnn")


def vww_mobilenet_v1(alpha: float = 0.25, size: int = 96, classes: int = 2) -> keras.Model:
    """Visual wake words: MobileNetV1 at width 0.25, 96x96 RGB."""
    inputs = keras.Input((size, size, 3))
    x = _conv_bn_relu(inputs, int(32 * alpha), 3, strides=2)
    for filters, strides in (
        [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]
    ):
        x = _dw_bn_relu(x, strides)
        x = _conv_bn_relu(x, int(filters * alpha), 1)
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="vww_mobilenet_v1")


def ic_resnet8(classes: int = 10, size: int = 32) -> keras.Model:
    """Image classification ResNet-8 for 32x32 RGB (CIFAR-10 shaped)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Conv2D(16, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    for filters, strides in [(16, 1), (32, 2), (64, 2)]:
        y = keras.layers.Conv2D(filters, 3, strides=strides, padding="same")(x)
        y = keras.layers.BatchNormalization()(y)
        y = keras.layers.ReLU()(y)
        y = keras.layers.Conv2D(filters, 3, padding="same")(y)
        y = keras.layers.BatchNormalization()(y)
        if strides != 1:
            x = keras.layers.Conv2D(filters, 1, strides=strides, padding="same")(x)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
    x = keras.layers.AveragePooling2D(pool_size=x.shape[1:3])(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="ic_resnet8")


def ad_autoencoder(inputs_dim: int = 640) -> keras.Model:
    """Anomaly detection: fully connected autoencoder over 5 frames x 128 mel bins."""
    inputs = keras.Input((inputs_dim,))
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = keras.layers.Dense(units)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.ReLU()(x)
    outputs = keras.layers.Dense(inputs_dim)(x)
    return keras.Model(inputs, outputs, name="ad_autoencoder")


MLPERF_TINY = {
    "kws_dscnn": kws_dscnn,
    "vww_mobilenet_v1": vww_mobilenet_v1,
    "ic_resnet8": ic_resnet8,
    "ad_autoencoder": ad_autoencoder,
}
