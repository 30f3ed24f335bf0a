"""Task metrics from predictions: classification and regression."""

from typing import Any

import numpy as np
from numpy.typing import NDArray


def class_ids(y: NDArray[Any]) -> NDArray[Any]:
    return y.argmax(-1) if y.ndim == 2 and y.shape[1] > 1 else y.reshape(-1).astype(np.int64)


def classification(pred: NDArray[Any], y: NDArray[Any]) -> dict[str, Any]:
    p, t = pred.argmax(-1), class_ids(y)
    classes = np.unique(t)
    precision = [float(np.mean(t[p == c] == c)) if np.any(p == c) else 0.0 for c in classes]
    recall = [float(np.mean(p[t == c] == c)) for c in classes]
    return {
        "accuracy": float(np.mean(p == t)),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "samples": int(len(t)),
    }


def regression(pred: NDArray[Any], y: NDArray[Any]) -> dict[str, Any]:
    err = pred.reshape(len(y), -1) - y.reshape(len(y), -1)
    return {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err**2))), "samples": int(len(y))}


def evaluate(pred: NDArray[Any], y: NDArray[Any], task: str) -> dict[str, Any]:
    return classification(pred, y) if task == "classification" else regression(pred, y)


def headline(task: str) -> str:
    """The metric the accuracy guard and the report's `accuracy` block use."""
    return "accuracy" if task == "classification" else "mae"


def drop(before: dict[str, Any], after: dict[str, Any], task: str) -> float:
    """How much worse `after` is than `before` on the validation split, in the headline metric's units
    (positive = worse); both are `{"val": metrics}`."""
    key = headline(task)
    diff = before["val"][key] - after["val"][key]
    return float(diff if task == "classification" else -diff)
