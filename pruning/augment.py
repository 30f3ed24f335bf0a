"""Seeded augmentation of a float32 batch (N, H, W, C), chosen in the job spec's `finetune.augment`.

Images: `flip` (left-right), `crop` (random shift by up to that many pixels, edges repeated),
`rotation_deg` (small rotations, nearest neighbour), `brightness` and `contrast` (relative jitter).
Audio features (N, frames, bins, 1): `time_shift` (fraction of the frames, zero filled) and
SpecAugment masks `time_mask` / `freq_mask` (widest mask in frames / bins); `background_noise` (the
loudest mix, applied to the waveforms before the front end by `pruning.noise`). Off unless asked.
"""

from typing import Any

import numpy as np
from numpy.typing import NDArray

KNOWN = (
    "flip",
    "crop",
    "rotation_deg",
    "brightness",
    "contrast",
    "time_shift",
    "time_mask",
    "freq_mask",
    "background_noise",
)


def check(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The augmentation options, or ValueError naming what is wrong."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(KNOWN))
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; choose from {', '.join(KNOWN)}")
    for key, value in spec.items():
        if key == "flip":
            if not isinstance(value, bool):
                raise ValueError("augment.flip must be true or false")
        elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"augment.{key} must be a number >= 0")
    return {k: v for k, v in spec.items() if v}


def apply(x: NDArray[Any], spec: dict[str, Any], rng: np.random.Generator) -> NDArray[Any]:
    if x.ndim != 4:
        return x
    x = x.copy()
    n, h, w, _ = x.shape
    if spec.get("flip"):
        flip = rng.random(n) < 0.5
        x[flip] = x[flip, :, ::-1]
    if spec.get("crop"):
        pad = int(spec["crop"])
        padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
        dy, dx = rng.integers(0, 2 * pad + 1, n), rng.integers(0, 2 * pad + 1, n)
        x = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if spec.get("rotation_deg"):
        x = _rotate(x, np.deg2rad(rng.uniform(-1, 1, n) * float(spec["rotation_deg"])))
    if spec.get("brightness") or spec.get("contrast"):
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        c = 1 + rng.uniform(-1, 1, (n, 1, 1, 1)) * float(spec.get("contrast", 0))
        b = 1 + rng.uniform(-1, 1, (n, 1, 1, 1)) * float(spec.get("brightness", 0))
        x = ((x - mean) * c + mean) * b
    if spec.get("time_shift"):
        most = int(float(spec["time_shift"]) * h)
        for i, s in enumerate(rng.integers(-most, most + 1, n)):
            x[i] = np.roll(x[i], s, axis=0)
            if s > 0:
                x[i, :s] = 0
            elif s < 0:
                x[i, s:] = 0
    for key, axis in (("time_mask", 1), ("freq_mask", 2)):
        if spec.get(key):
            size = x.shape[axis]
            for i in range(n):
                width = int(rng.integers(0, min(int(spec[key]), size) + 1))
                start = int(rng.integers(0, size - width + 1))
                if axis == 1:
                    x[i, start : start + width] = 0
                else:
                    x[i, :, start : start + width] = 0
    return x.astype(np.float32, copy=False)


def _rotate(x: NDArray[Any], angles: NDArray[Any]) -> NDArray[Any]:
    n, h, w, _ = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    out = np.empty_like(x)
    for i, a in enumerate(angles):
        cos, sin = np.cos(a), np.sin(a)
        sy = np.clip(np.rint(cy + (yy - cy) * cos - (xx - cx) * sin), 0, h - 1).astype(int)
        sx = np.clip(np.rint(cx + (yy - cy) * sin + (xx - cx) * cos), 0, w - 1).astype(int)
        out[i] = x[i, sy, sx]
    return out
