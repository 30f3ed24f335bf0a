"""Datasets: `.npz` uploads (never unpickled) and the two built-in sets. NumPy only."""

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.datasets import BUILTIN
from contract.errors import PruningError

REQUIRED = ("x_train", "y_train", "x_val", "y_val")
OPTIONAL = ("x_test", "y_test")


@dataclass
class Data:
    x_train: NDArray[Any]
    y_train: NDArray[Any]
    x_val: NDArray[Any]
    y_val: NDArray[Any]
    x_test: NDArray[Any] | None = None
    y_test: NDArray[Any] | None = None
    name: str = "uploaded"
    meta: dict[str, Any] | None = None
    """How the stored arrays were made (format, classes, scale, offset, audio front end), if declared."""

    @property
    def task(self) -> str:
        return infer_task(self.y_train)

    def split(self, name: str) -> tuple[NDArray[Any], NDArray[Any]] | None:
        x, y = getattr(self, f"x_{name}"), getattr(self, f"y_{name}")
        return None if x is None else (x, y)


def infer_task(y: NDArray[Any]) -> str:
    """`classification` for class ids or one-hot rows, `regression` for float targets."""
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return "classification"
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)) and np.all(y.sum(1) == 1):
        return "classification"
    return "regression"


def describe_npz(path: Path) -> dict[str, Any]:
    """Shapes and dtypes of an `.npz` from its `.npy` headers, without loading the arrays."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PruningError("invalid_dataset", f"not an .npz archive: {exc}") from exc
    arrays: dict[str, Any] = {}
    with archive:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if name not in REQUIRED + OPTIONAL:
                continue
            with archive.open(info) as f:
                try:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = np.lib.format._read_array_header(f, version)  # type: ignore[attr-defined]
                except ValueError as exc:
                    raise PruningError("invalid_dataset", f"{name}: not a .npy array ({exc})") from exc
            if dtype.hasobject:
                raise PruningError("invalid_dataset", f"{name}: object arrays are refused (no pickle)")
            if dtype.kind not in "biuf":
                raise PruningError("invalid_dataset", f"{name}: dtype {dtype} is not numeric")
            arrays[name] = {"shape": list(shape), "dtype": str(dtype)}
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise PruningError("invalid_dataset", f"missing arrays: {', '.join(missing)} (need {', '.join(REQUIRED)})")
    for split in ("train", "val", "test"):
        if f"x_{split}" in arrays or f"y_{split}" in arrays:
            x, y = arrays.get(f"x_{split}"), arrays.get(f"y_{split}")
            if x is None or y is None:
                raise PruningError("invalid_dataset", f"x_{split} and y_{split} must come together")
            if not x["shape"] or not y["shape"] or x["shape"][0] != y["shape"][0]:
                raise PruningError("invalid_dataset", f"x_{split} and y_{split} differ in length")
            if x["shape"][0] == 0:
                raise PruningError("invalid_dataset", f"x_{split} is empty")
    if arrays["x_train"]["shape"][1:] != arrays["x_val"]["shape"][1:]:
        raise PruningError("invalid_dataset", "x_train and x_val have different sample shapes")
    return arrays


def load_npz(path: Path, name: str = "uploaded") -> Data:
    """The arrays of an `.npz`: integer x arrays stored uncompressed are memory-mapped and scaled
    per slice (`ScaledArray`), everything else is read into memory (x as float32)."""
    from pruning.mapped import ScaledArray, mapped_members

    describe_npz(path)
    mapped = mapped_members(path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["meta"].tobytes()) if "meta" in npz.files else None
        scale, offset = float((meta or {}).get("scale", 1.0)), float((meta or {}).get("offset", 0.0))
        arrays: dict[str, Any] = {}
        for key in REQUIRED + OPTIONAL:
            if key not in npz.files:
                continue
            if key.startswith("x_") and key in mapped and (meta or mapped[key].dtype.kind in "iu"):
                arrays[key] = ScaledArray(mapped[key], scale, offset)
                continue
            arrays[key] = npz[key]
            if key.startswith("x_"):
                arrays[key] = arrays[key].astype(np.float32)
                if (scale, offset) != (1.0, 0.0):
                    arrays[key] = arrays[key] * np.float32(scale) + np.float32(offset)
            if np.issubdtype(arrays[key].dtype, np.floating) and not np.isfinite(arrays[key]).all():
                raise PruningError("invalid_dataset", f"{key} has NaN or infinite values")
    if "x_train" in arrays:
        from pruning.noise import attach

        attach(arrays["x_train"], mapped, meta)
    return Data(**arrays, name=name, meta=meta)


def load_builtin(name: str, seed: int = 0) -> Data:
    if name == "builtin:digits":
        return digits()
    if name == "builtin:har":
        return har(seed=seed)
    raise PruningError("unknown_dataset", f"no built-in dataset {name!r}; choose from {', '.join(BUILTIN)}")


def _split(x: NDArray[Any], y: NDArray[Any], name: str, seed: int) -> Data:
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
    a, b = n_train, n_train + n_val
    return Data(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], name=name)


def digits() -> Data:
    """8x8 digits from scikit-learn's package data (no download), 70/15/15 split, fixed order."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    return _split(x, bunch.target.astype(np.int64), "builtin:digits", seed=0)


HAR_ACTIVITIES = ("walking", "jogging", "upstairs", "downstairs", "sitting", "standing")


def har(n: int = 3000, window: int = 128, rate_hz: float = 50.0, seed: int = 0) -> Data:
    """Synthetic wrist accelerometer windows (in g): gravity, gait harmonics, noise. Not real data."""
    rng = np.random.default_rng(seed)
    t = np.arange(window) / rate_hz
    # Per activity: step frequency (Hz), gait amplitude (g), gravity direction in the sensor frame.
    params = {
        "walking": (1.9, 0.35, (0.1, -0.95, 0.2)),
        "jogging": (2.7, 0.9, (0.15, -0.9, 0.3)),
        "upstairs": (1.6, 0.45, (0.3, -0.9, 0.1)),
        "downstairs": (2.1, 0.55, (-0.2, -0.95, 0.15)),
        "sitting": (0.0, 0.02, (0.7, -0.3, 0.6)),
        "standing": (0.0, 0.03, (0.05, -1.0, 0.05)),
    }
    y = rng.integers(0, len(HAR_ACTIVITIES), size=n)
    x = np.empty((n, window, 3), np.float32)
    for i, label in enumerate(y):
        freq, amp, grav = params[HAR_ACTIVITIES[label]]
        g = np.asarray(grav) + rng.normal(0, 0.12, 3)
        g = g / np.linalg.norm(g)
        f = freq * rng.uniform(0.85, 1.15)
        a = amp * rng.uniform(0.7, 1.3)
        phase = rng.uniform(0, 2 * np.pi, 3)
        axis_gain = rng.uniform(0.3, 1.0, 3)
        gait = (
            a
            * axis_gain[None, :]
            * (np.sin(2 * np.pi * f * t[:, None] + phase) + 0.4 * np.sin(4 * np.pi * f * t[:, None] + 2 * phase))
        )
        x[i] = g[None, :] + gait + rng.normal(0, 0.08, (window, 3))
    return _split(x, y.astype(np.int64), "builtin:har", seed=seed)
