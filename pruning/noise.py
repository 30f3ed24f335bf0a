"""Background-noise mixing for audio (the Speech Commands `_background_noise_` folder), in the waveform.

At upload, when the archive has a `_background_noise_` folder of WAV files, the checker keeps the
training clips' waveforms (`w_train`, int16, one row per `x_train` row) and the noise cut into
clip-long segments (`noise`, int16, half a clip apart) beside the features. A job that sets
`finetune.augment.background_noise: v` then rebuilds each training batch from the waveforms: a
random noise segment mixed in at a volume drawn from [0, v] (clipped to [-1, 1], as TensorFlow's
speech-commands recipe does), through the dataset's own front end, then any SpecAugment masks.
Without that folder the features alone are kept (16x smaller) and such a job fails at the start.
"""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from pruning.frontend import FrontEnd
from pruning.mapped import ScaledArray

NOISE_FOLDER = "_background_noise_"


def is_noise(name: str) -> bool:
    return f"/{NOISE_FOLDER}/" in f"/{name}"


def pcm16(clip: NDArray[Any], n: int) -> NDArray[Any]:
    """A float clip in [-1, 1] as int16, padded or cut to `n` samples (as the front end does)."""
    clip = np.pad(clip[:n], (0, max(0, n - len(clip))))
    return np.round(np.clip(clip, -1, 1) * 32767).astype(np.int16)


def segments(clip: NDArray[Any], n: int) -> list[NDArray[Any]]:
    """Clip-long pieces of a noise recording, half a clip apart (one padded piece if it is short)."""
    if len(clip) <= n:
        return [pcm16(clip, n)]
    return [pcm16(clip[s : s + n], n) for s in range(0, len(clip) - n + 1, max(1, n // 2))]


class Waveforms:
    """Writes `w_train` rows alongside the train split, and the noise segments; appends both to the `.npz`."""

    def __init__(self, folder: Path, rows: int, samples: int) -> None:
        self.samples, self.n = samples, 0
        self.path = folder / "w_train.npy"
        self.w = np.lib.format.open_memmap(self.path, "w+", np.int16, (max(rows, 1), samples))
        self.noise: list[NDArray[Any]] = []

    def add(self, clip: NDArray[Any]) -> None:
        self.w[self.n] = pcm16(clip, self.samples)
        self.n += 1

    def add_noise(self, clip: NDArray[Any]) -> None:
        self.noise += segments(clip, self.samples)

    def append_to(self, out: Path) -> dict[str, int]:
        from pruning.dataformats import _write_array, _write_rows

        self.w.flush()
        with zipfile.ZipFile(out, "a", zipfile.ZIP_STORED, allowZip64=True) as zf:
            _write_rows(zf, "w_train.npy", self.path, self.w, self.n)
            _write_array(zf, "noise.npy", np.stack(self.noise))
        return {"segments": len(self.noise), "clips": self.n}


class NoisyAudio:
    """Training batches of features rebuilt from the stored waveforms with background noise mixed in."""

    def __init__(self, waves: NDArray[Any], noise: NDArray[Any], fe: dict[str, Any], features: ScaledArray) -> None:
        self.waves, self.noise, self.extract, self.features = waves, noise, FrontEnd(fe), features

    def batch(self, rows: NDArray[Any], rng: np.random.Generator, volume: float) -> NDArray[Any]:
        clips = np.asarray(self.waves[rows], np.float32) / 32767.0
        picks = rng.integers(0, len(self.noise), len(rows))
        gains = rng.uniform(0, volume, (len(rows), 1)).astype(np.float32)
        mixed = np.clip(clips + gains * (np.asarray(self.noise[picks], np.float32) / 32767.0), -1, 1)
        x = np.stack([self.extract(clip) for clip in mixed])
        if self.features.scale != 1:
            x *= self.features.scale
        if self.features.offset != 0:
            x += self.features.offset
        return x.astype(np.float32, copy=False)


def attach(x_train: Any, mapped: dict[str, NDArray[Any]], meta: dict[str, Any] | None) -> None:
    """Give the memory-mapped training features their waveforms and noise, when the dataset kept them."""
    if not meta or "frontend" not in meta or not isinstance(x_train, ScaledArray):
        return
    waves, noise = mapped.get("w_train"), mapped.get("noise")
    if waves is not None and noise is not None and len(waves) == len(x_train) and len(noise):
        x_train.audio = NoisyAudio(waves, noise, meta["frontend"], x_train)  # type: ignore[attr-defined]
