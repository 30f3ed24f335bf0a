"""Small trained models to try Shears on, built and trained here in seconds (no downloads)."""

from pathlib import Path

import keras

from pruning.datasets import digits, har


def digits_cnn(seed: int = 0, epochs: int = 30) -> keras.Model:
    """A small CNN for the built-in 8x8 digits (about 97% validation accuracy)."""
    keras.utils.set_random_seed(seed)
    data = digits()
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc"),
            keras.layers.Dense(10, activation="softmax", name="classes"),
        ],
        name="digits_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


def har_cnn(seed: int = 0, epochs: int = 10) -> keras.Model:
    """A small 1D CNN for the built-in (synthetic) accelerometer windows."""
    keras.utils.set_random_seed(seed)
    data = har(seed=seed)
    model = keras.Sequential(
        [
            keras.Input((128, 3)),
            keras.layers.Conv1D(16, 5, strides=2, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv1D(32, 5, strides=2, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling1D(name="pool"),
            keras.layers.Dense(32, activation="relu", name="fc"),
            keras.layers.Dense(6, activation="softmax", name="classes"),
        ],
        name="har_cnn",
    )
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


EXAMPLES = {"digits-cnn": digits_cnn, "har-cnn": har_cnn}


def save_example(name: str, out: Path) -> Path:
    model = EXAMPLES[name]()
    model.save(out)
    return out
