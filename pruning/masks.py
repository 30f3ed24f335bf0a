"""Masks: which weights are kept. Thresholding scores is separate from holding masks on a model."""

from collections.abc import Callable

import keras
import numpy as np

# Kernels whose zeros matter for size and, on sparse runtimes, for speed. Biases and
# normalisation weights are tiny and are not pruned.
PRUNABLE_WEIGHTS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def prunable_variables(model: keras.Model) -> list[keras.Variable]:
    out = []
    for layer in model.layers:
        for attr in PRUNABLE_WEIGHTS:
            var = getattr(layer, attr, None)
            if isinstance(var, keras.Variable) and var.trainable:
                out.append(var)
    return out


def threshold_mask(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep all but the `sparsity` share of lowest scores: exactly round(sparsity * n) zeros."""
    n_prune = int(round(sparsity * scores.size))
    mask = np.ones(scores.size, dtype=np.float32)
    if n_prune:
        # A stable sort makes ties (e.g. weights already zero) fall the same way every run.
        mask[np.argsort(scores.ravel(), kind="stable")[:n_prune]] = 0.0
    return mask.reshape(scores.shape)


class MaskConstraint:
    """Keeps masked weights at exactly zero after every optimizer step."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = keras.ops.convert_to_tensor(mask)

    def __call__(self, w: keras.Variable) -> object:
        return w * keras.ops.cast(self.mask, w.dtype)


def layer_masks(
    variables: list[keras.Variable], sparsity: float, score: Callable[[np.ndarray], np.ndarray]
) -> dict[str, np.ndarray]:
    """Per-layer threshold: every prunable kernel gets the same sparsity."""
    return {v.path: threshold_mask(score(np.asarray(v)), sparsity) for v in variables}


def attach(variables: list[keras.Variable], masks: dict[str, np.ndarray]) -> None:
    """Zero the masked weights now and keep them zero through training."""
    for v in variables:
        mask = masks.get(v.path)
        if mask is None:
            continue
        v.assign(np.asarray(v) * mask)
        v.constraint = MaskConstraint(mask)


def strip(variables: list[keras.Variable]) -> None:
    """Remove the mask constraints: a plain model that keeps its zeros."""
    for v in variables:
        if isinstance(v.constraint, MaskConstraint):
            v.constraint = None


def masked_nonzero(variables: list[keras.Variable], masks: dict[str, np.ndarray]) -> int:
    """How many masked-out weights are not zero (0 when masks hold)."""
    return sum(int(np.count_nonzero(np.asarray(v)[masks[v.path] == 0])) for v in variables if v.path in masks)
