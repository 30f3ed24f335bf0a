"""Loading a Keras 3 model from an untrusted file, and what can be read off it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras.src.models.functional import Functional  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from contract.errors import PruningError  # noqa: E402
from contract.safety import check_model_file  # noqa: E402

KERAS_FORMATS = ("keras", "h5")


def load_model(path: Path) -> keras.Model:
    """Load with Keras `safe_mode` on (no Lambda bytecode); a readable error when it fails."""
    suffix = path.suffix.lstrip(".")
    if suffix == "tflite":
        raise PruningError(
            "unsupported_model", "a .tflite model cannot be pruned: upload the Keras model (.keras or .h5)"
        )
    if suffix not in KERAS_FORMATS:
        raise PruningError("unsupported_model", f"unknown model format {suffix!r}")
    check_model_file(path, suffix)
    try:
        model = keras.saving.load_model(path, compile=True, safe_mode=True)
    except Exception as exc:  # Keras raises many kinds for a bad file; all mean the same to the user.
        raise PruningError("model_load_failed", f"the model could not be loaded: {_first_line(exc)}") from exc
    if not isinstance(model, keras.Model):
        raise PruningError("model_load_failed", f"the file holds a {type(model).__name__}, not a Keras model")
    if not isinstance(model, keras.Sequential | Functional):
        raise PruningError(
            "unsupported_model",
            f"{type(model).__name__} is a subclassed model; Shears needs a Sequential or functional model",
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise PruningError("unsupported_model", "only models with one input and one output are supported")
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def input_shape(model: keras.Model) -> list[int | None]:
    return list(model.inputs[0].shape)


def output_shape(model: keras.Model) -> list[int | None]:
    return list(model.outputs[0].shape)


def describe(model: keras.Model) -> dict[str, Any]:
    return {
        "params": int(model.count_params()),
        "input_shape": input_shape(model),
        "output_shape": output_shape(model),
        "layers": len(model.layers),
    }


def resolve_loss(model: keras.Model, y: NDArray[Any], task: str, sample_output: NDArray[Any]) -> tuple[Any, str, str]:
    """The model's compiled loss, or one inferred from the labels. Returns (loss, name, source)."""
    loss = getattr(model, "loss", None)
    if loss is not None:
        name = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
        return loss, str(name), "model"
    if task == "regression":
        return keras.losses.MeanSquaredError(), "mean_squared_error", "inferred"
    # Probabilities (softmax output) or logits: decide from what the model actually emits.
    probs = bool(
        np.all(sample_output >= 0) and np.all(sample_output <= 1) and np.allclose(sample_output.sum(-1), 1, atol=1e-3)
    )
    if y.ndim == 2 and y.shape[1] > 1:
        return (
            keras.losses.CategoricalCrossentropy(from_logits=not probs),
            "categorical_crossentropy" + ("" if probs else " (from logits)"),
            "inferred",
        )
    return (
        keras.losses.SparseCategoricalCrossentropy(from_logits=not probs),
        "sparse_categorical_crossentropy" + ("" if probs else " (from logits)"),
        "inferred",
    )
