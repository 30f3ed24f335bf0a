"""Array-likes over memory-mapped `.npz` members, and batched training input and prediction over them.

`load_npz` wraps an uncompressed integer (or declared) x array in a `ScaledArray`: `len`, `shape`,
`dtype`, slicing and fancy indexing work, each returning float32 `base[idx] * scale + offset`,
so only the rows asked for are read. Fine-tuning reads it through `Batches` (a seeded, shuffled
`keras.utils.PyDataset`, optionally augmented); whole-split prediction goes through `predict`.
"""

import time
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError
from pruning import augment as augmentation
from pruning.mapped import ScaledArray, mapped_members

__all__ = ["Batches", "ScaledArray", "fit_input", "mapped_members", "predict", "take_input_time"]

_input_s = [0.0]


def take_input_time() -> float:
    """Seconds the training input spent reading (and augmenting) batches since the last call."""
    spent, _input_s[0] = _input_s[0], 0.0
    return round(spent, 3)


class Batches(keras.utils.PyDataset):
    """(x, y) batches in a seeded order reshuffled every epoch; rows read sorted (memory-map friendly)."""

    def __init__(
        self, x: Any, y: NDArray[Any], batch_size: int, seed: int, augment: dict[str, Any] | None = None
    ) -> None:
        super().__init__(workers=2, max_queue_size=4)  # two reader threads keep a few batches ready
        self.x, self.y, self.batch_size, self.seed = x, y, max(1, batch_size), seed
        self.augment = augment or {}
        self.epoch = 0
        self.order = np.random.default_rng(seed).permutation(len(y))

    def __len__(self) -> int:
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[NDArray[Any], NDArray[Any]]:
        start = time.perf_counter()
        rows = np.sort(self.order[index * self.batch_size : (index + 1) * self.batch_size])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        audio, volume = getattr(self.x, "audio", None), float(self.augment.get("background_noise", 0))
        if audio is not None and volume > 0:  # rebuilt from the waveforms with noise mixed in (pruning.noise)
            xb = audio.batch(rows, rng, volume)
        else:
            xb = np.asarray(self.x[rows], np.float32)
        yb = self.y[rows]
        if self.augment:
            xb = augmentation.apply(xb, self.augment, rng)
        _input_s[0] += time.perf_counter() - start
        return xb, yb

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))


def fit_input(x: Any, y: NDArray[Any], batch_size: int, augment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The input arguments of `model.fit`: the arrays themselves when in memory and not augmented,
    else a `Batches` stream seeded from Keras's global seed."""
    if isinstance(x, np.ndarray) and not augment:
        return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}
    if (augment or {}).get("background_noise") and getattr(x, "audio", None) is None:
        raise PruningError(
            "invalid_spec",
            "augment.background_noise needs an audio dataset uploaded with a _background_noise_ folder of WAV files",
        )
    seed = int(np.random.randint(0, 2**31 - 1))  # seeded by keras.utils.set_random_seed
    return {"x": Batches(x, y, batch_size, seed, augment)}


def predict(model: keras.Model, x: Any, batch_size: int = 256) -> NDArray[Any]:
    """`model.predict` over an array or an array-like, one batch in memory at a time."""
    if isinstance(x, np.ndarray):
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    parts = [
        np.asarray(model.predict_on_batch(x[start : start + batch_size])) for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(parts) if parts else np.asarray(model.predict(x[:0], verbose=0))
