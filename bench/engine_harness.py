"""The shared harness of the engine benchmarks (bench/engine.py, bench/engine_variants.py,
bench/heldout.py): the TF environment, the row settings chosen up front, the data and the dense models
trained here with fixed seeds."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# TF 2.21's oneDNN CPU kernels corrupt the heap (free(): invalid pointer / segfault) when training a
# 1x1 stride-2 Conv2D whose input has 8 channels: exactly what 50% channel removal makes of ResNet-8's
# shortcut. With oneDNN's custom ops off, the same models train normally.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pruning import architectures, examples  # noqa: E402
from pruning.datasets import Data, digits, har  # noqa: E402

SEED = 0
L = keras.layers

# The settings of each row kind (chosen once up front; see the module docstring).
CHANNEL = {"granularity": "channel", "sparsity": 0.5, "schedule": "one_shot", "steps": 1, "epochs": 15}
UNSTRUCTURED = {
    "granularity": "unstructured",
    "sparsity": 0.8,
    "scope": "global",
    "schedule": "polynomial",
    "steps": 5,
    "epochs": 5,
}
FINETUNE = {"learning_rate": 3e-3, "batch_size": 64, "seed": SEED}
SCORES = ("magnitude", "gradient", "activation")


ROW_KINDS = ("channel", "unstructured", "other_scope", "int8", "int8_blocks")
BLOCK = 4  # the int8_blocks rows keep or drop runs of 4 consecutive input weights together


def rows_for(
    methods: tuple[str, ...], kinds: tuple[str, ...] = ROW_KINDS
) -> list[tuple[str, str, str, str | None, int]]:
    """(granularity, score, quantization, scope) of each row: every score in float; magnitude also in
    int8 (plain, and in runs of BLOCK weights), and with the other unstructured threshold scope, so
    both scopes are on the table.
    `kinds` picks which of those rows to run (for a focused re-run of some rows)."""
    scope = str(UNSTRUCTURED["scope"])
    other = "per_layer" if scope == "global" else "global"
    return [
        *[("channel", m, "none", None, 1) for m in methods if "channel" in kinds],
        *[("unstructured", m, "none", scope, 1) for m in methods if "unstructured" in kinds],
        *([("unstructured", "magnitude", "none", other, 1)] if "other_scope" in kinds else []),
        *([("unstructured", "magnitude", "int8", scope, 1)] if "int8" in kinds else []),
        *([("unstructured", "magnitude", "int8", scope, BLOCK)] if "int8_blocks" in kinds else []),
    ]


LATENCY_ROUNDS, LATENCY_RUNS = 5, 200


# ---------------------------------------------------------------------------------------------
# Data


def upsample(data: Data, factor: int, channels: int = 1, name: str = "") -> Data:
    """Nearest-neighbour upsampling (np.kron) of image splits by `factor`, channels repeated."""

    def up(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        big = np.kron(x, np.ones((1, factor, factor, 1), np.float32)).astype(np.float32)
        return np.repeat(big, channels, axis=-1) if channels > 1 else big

    return Data(
        up(data.x_train), data.y_train, up(data.x_val), data.y_val, up(data.x_test), data.y_test, name=name or data.name
    )


def har_frames(data: Data, frame: int = 32, hop: int = 2) -> Data:
    """HAR windows (128 x 3) as a 49 x 10 x 1 'spectrogram', the KWS DS-CNN's input shape.

    Per frame of 32 samples (hop 2, 49 frames): the mean of each axis (gravity direction, which
    tells sitting from standing) and the log magnitude of the 1st..7th FFT bins of the
    Hann-windowed acceleration norm (1.6 - 11 Hz: the gait and its harmonics).
    """

    def feats(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        starts = range(0, x.shape[1] - frame + 1, hop)
        frames = np.stack([x[:, s : s + frame, :] for s in starts], axis=1)  # (n, 49, 32, 3)
        means = frames.mean(axis=2)
        norm = np.linalg.norm(frames, axis=-1)
        norm = norm - norm.mean(axis=-1, keepdims=True)
        spec = np.log1p(np.abs(np.fft.rfft(norm * np.hanning(frame), axis=-1))[..., 1:8])
        return np.concatenate([means, spec], axis=-1)[..., None].astype(np.float32)

    return Data(
        feats(data.x_train),
        data.y_train,
        feats(data.x_val),
        data.y_val,
        feats(data.x_test),
        data.y_test,
        name="builtin:har as 49x10 frames",
    )


def flat_reconstruction(data: Data) -> Data:
    """Digits flattened to 64 values, target = input: a reconstruction (regression) task."""

    def flat(x: np.ndarray | None) -> np.ndarray | None:
        return None if x is None else x.reshape(len(x), -1).astype(np.float32)

    xs = [flat(a) for a in (data.x_train, data.x_val, data.x_test)]
    return Data(xs[0], xs[0], xs[1], xs[1], xs[2], xs[2], name="builtin:digits flattened, reconstruct")


# ---------------------------------------------------------------------------------------------
# Dense models (trained here, briefly, Adam 3e-3, fixed seeds)


def _train(model: keras.Model, data: Data, epochs: int, loss: str = "sparse_categorical_crossentropy") -> keras.Model:
    # With the default BatchNorm momentum (0.99) a few hundred steps leave the moving statistics
    # near their initial values and inference-mode accuracy near chance; 0.9 tracks them.
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, shuffle=True, verbose=0)
    return model


def small_cnn16() -> keras.Model:
    """A small CNN for 16x16 digits (the TFMOT anchor's setting)."""
    return keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            L.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            L.MaxPooling2D(name="pool1"),
            L.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            L.MaxPooling2D(name="pool2"),
            L.Flatten(name="flatten"),
            L.Dense(64, activation="relu", name="fc"),
            L.Dense(10, activation="softmax", name="classes"),
        ],
        name="digits16_cnn",
    )


def _digits_cnn() -> tuple[keras.Model, Data, str]:
    return examples.digits_cnn(seed=SEED), digits(), "pruning.examples.digits_cnn (30 epochs), digits 8x8"


def _har_cnn() -> tuple[keras.Model, Data, str]:
    return examples.har_cnn(seed=SEED), har(seed=SEED), "pruning.examples.har_cnn (10 epochs), HAR 128x3 (synthetic)"


def _digits16_cnn() -> tuple[keras.Model, Data, str]:
    keras.utils.set_random_seed(SEED)
    data = upsample(digits(), 2, name="builtin:digits 16x16")
    return _train(small_cnn16(), data, 15), data, "small CNN (15 epochs), digits upsampled to 16x16"


def _ic_resnet8() -> tuple[keras.Model, Data, str]:
    keras.utils.set_random_seed(SEED)
    data = upsample(digits(), 4, channels=3, name="builtin:digits 32x32x3")
    model = architectures.ic_resnet8(classes=10, size=32)
    return _train(model, data, 8), data, "MLPerf Tiny ResNet-8 (8 epochs), digits upsampled to 32x32x3"


def _vww_mobilenet() -> tuple[keras.Model, Data, str]:
    keras.utils.set_random_seed(SEED)
    data = upsample(digits(), 4, channels=3, name="builtin:digits 32x32x3")
    model = architectures.vww_mobilenet_v1(alpha=0.25, size=32, classes=10)
    what = "MLPerf Tiny MobileNetV1 0.25 at 32x32 (not 96x96), 10 classes (10 epochs), digits upsampled to 32x32x3"
    return _train(model, data, 10), data, what


def _ir_mobilenetv2() -> tuple[keras.Model, Data, str]:
    """Inverted residuals (the tuning set had none before 2026-12-07, stop 28): MobileNetV2 alpha 0.5, flat (not
    nested), on the grey, clean digits. The held-out nested MobileNetV2 (bench/heldout.py) is alpha 0.35, nested,
    on tinted, noisy digits; a default chosen here is checked there."""
    keras.utils.set_random_seed(SEED)
    data = upsample(digits(), 4, channels=3, name="builtin:digits 32x32x3")
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.5, include_top=False, weights=None)
    head = L.Dense(10, activation="softmax", name="classes")(L.GlobalAveragePooling2D(name="pool")(base.output))
    model = keras.Model(base.input, head, name="ir_mobilenetv2")
    what = (
        "keras.applications.MobileNetV2 alpha 0.5 at 32x32 (flat), 10 classes (10 epochs), digits upsampled to 32x32x3"
    )
    return _train(model, data, 10), data, what


def _kws_dscnn() -> tuple[keras.Model, Data, str]:
    keras.utils.set_random_seed(SEED)
    data = har_frames(har(seed=SEED))
    model = architectures.kws_dscnn(classes=6)
    return _train(model, data, 8), data, "MLPerf Tiny DS-CNN (8 epochs), HAR as 49 frames x 10 features"


def _ad_autoencoder() -> tuple[keras.Model, Data, str]:
    keras.utils.set_random_seed(SEED)
    data = flat_reconstruction(digits())
    model = architectures.ad_autoencoder(inputs_dim=64)
    return _train(model, data, 30, loss="mse"), data, "MLPerf Tiny AD autoencoder, 64 inputs (30 epochs), digits"


# name -> (builder, the scores compared): the MLPerf Tiny models run magnitude only, to stay in time.
MODELS: dict[str, tuple[Callable[[], tuple[keras.Model, Data, str]], tuple[str, ...]]] = {
    "digits_cnn": (_digits_cnn, SCORES),
    "har_cnn": (_har_cnn, SCORES),
    "digits16_cnn": (_digits16_cnn, SCORES),
    "ic_resnet8": (_ic_resnet8, ("magnitude",)),
    "vww_mobilenet_v1": (_vww_mobilenet, ("magnitude",)),
    "kws_dscnn": (_kws_dscnn, ("magnitude",)),
    "ir_mobilenetv2": (_ir_mobilenetv2, ("magnitude",)),
    "ad_autoencoder": (_ad_autoencoder, ("magnitude",)),
}
