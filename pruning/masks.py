"""Masks: which weights are kept. Thresholding scores is separate from holding masks on a model."""

from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

# Kernels whose zeros matter for size and, on sparse runtimes, for speed. Biases and
# normalisation weights are tiny and are not pruned.
PRUNABLE_WEIGHTS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def prunable_variables(model: keras.Model, depthwise: bool = True) -> list[keras.Variable]:
    """Kernels of Dense and convolution layers; `depthwise=False` leaves depthwise kernels out."""
    out = []
    for layer in model.layers:
        if not depthwise and isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
            continue
        for attr in PRUNABLE_WEIGHTS:
            if not depthwise and attr == "depthwise_kernel":
                continue
            var = getattr(layer, attr, None)
            if isinstance(var, keras.Variable) and var.trainable:
                out.append(var)
    return out


def threshold_mask(scores: NDArray[Any], sparsity: float) -> NDArray[Any]:
    """Keep all but the `sparsity` share of lowest scores: exactly round(sparsity * n) zeros."""
    n_prune = int(round(sparsity * scores.size))
    mask = np.ones(scores.size, dtype=np.float32)
    if n_prune:
        # A stable sort makes ties (e.g. weights already zero) fall the same way every run.
        mask[np.argsort(scores.ravel(), kind="stable")[:n_prune]] = 0.0
    return mask.reshape(scores.shape)


class MaskConstraint:
    """Keeps masked weights at exactly zero after every optimizer step."""

    def __init__(self, mask: NDArray[Any]) -> None:
        self.mask = keras.ops.convert_to_tensor(mask)

    def __call__(self, w: keras.Variable) -> object:
        return w * keras.ops.cast(self.mask, w.dtype)


def per_layer_masks(scores: dict[str, NDArray[Any]], sparsity: float) -> dict[str, NDArray[Any]]:
    """Per-layer threshold: every prunable kernel gets the same sparsity."""
    return {path: threshold_mask(s, sparsity) for path, s in scores.items()}


def lamp(scores: NDArray[Any]) -> NDArray[Any]:
    """LAMP (Lee et al. 2021): a weight's squared score over the sum of the squared scores of the
    weights of its layer that are not below it, so scores of different layers can be compared.

    Every layer's best weight scores 1, so one threshold below 1 never empties a layer.
    """
    flat = scores.astype(np.float64).ravel() ** 2
    order = np.argsort(flat, kind="stable")
    tail = np.cumsum(flat[order][::-1])[::-1]
    out = np.empty_like(flat)
    out[order] = flat[order] / np.maximum(tail, 1e-300)
    return out.reshape(scores.shape)


# How `global_masks` makes the scores of different layers comparable before its one threshold.
GLOBAL_NORMALISATION = "lamp"


def global_masks(scores: dict[str, NDArray[Any]], sparsity: float) -> dict[str, NDArray[Any]]:
    """One threshold over all kernels, on per-layer normalised (LAMP) scores: layers whose weights
    matter less lose more, and none is emptied."""
    paths = list(scores)
    norm = {p: lamp(scores[p]) for p in paths} if GLOBAL_NORMALISATION == "lamp" else scores
    flat = threshold_mask(np.concatenate([norm[p].ravel() for p in paths]), sparsity)
    out, start = {}, 0
    for p in paths:
        size = scores[p].size
        out[p] = flat[start : start + size].reshape(scores[p].shape)
        start += size
    return out


def _blocks(array: NDArray[Any], block: int) -> NDArray[Any]:
    """Sums over runs of `block` consecutive entries along axis -2 (a kernel's input axis, which is
    contiguous in the TFLite file): shape (..., out, ceil(in / block))."""
    moved = np.moveaxis(array, -2, -1)
    pad = (-moved.shape[-1]) % block
    padded = np.pad(moved, [(0, 0)] * (moved.ndim - 1) + [(0, pad)])
    sums: NDArray[Any] = padded.reshape(*moved.shape[:-1], -1, block).sum(-1)
    return sums


def block_masks(
    scores: dict[str, NDArray[Any]], sparsity: float, block: int, scope: str = "per_layer"
) -> dict[str, NDArray[Any]]:
    """Masks that keep or drop runs of `block` consecutive weights along the input axis together,
    ranked by their mean score; gzip compresses such runs of zeros far better than scattered ones."""
    means = {p: _blocks(s, block) / _blocks(np.ones_like(s), block) for p, s in scores.items()}
    picked = global_masks(means, sparsity) if scope == "global" else per_layer_masks(means, sparsity)
    out = {}
    for p, s in scores.items():
        width = s.shape[-2]
        full = np.repeat(picked[p], block, axis=-1)[..., :width]
        out[p] = np.moveaxis(full, -1, -2).astype(np.float32)
    return out


def n_of_m_mask(scores: NDArray[Any], n: int, m: int) -> NDArray[Any]:
    """Keep the `n` best of every `m` consecutive weights along the input axis (-2) of a kernel.

    A trailing block shorter than `m` keeps the same share, rounded up.
    """
    moved = np.moveaxis(scores, -2, -1)  # (..., out, in)
    width = moved.shape[-1]
    mask = np.zeros_like(moved, dtype=np.float32)
    for start in range(0, width, m):
        block = moved[..., start : start + m]
        keep = n if block.shape[-1] == m else -(-n * block.shape[-1] // m)
        order = np.argsort(-block, axis=-1, kind="stable")[..., :keep]
        np.put_along_axis(mask[..., start : start + m], order, 1.0, axis=-1)
    return np.moveaxis(mask, -1, -2)


def attach(variables: list[keras.Variable], masks: dict[str, NDArray[Any]]) -> None:
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


def masked_nonzero(variables: list[keras.Variable], masks: dict[str, NDArray[Any]]) -> int:
    """How many masked-out weights are not zero (0 when masks hold)."""
    return sum(int(np.count_nonzero(np.asarray(v)[masks[v.path] == 0])) for v in variables if v.path in masks)
