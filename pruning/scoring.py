"""Importance scores: higher means more important. Only the math, no Keras wrappers."""

import numpy as np

METHODS = ("magnitude",)


def magnitude(weights: np.ndarray) -> np.ndarray:
    """|w|: the classic score, per weight."""
    return np.abs(weights)
