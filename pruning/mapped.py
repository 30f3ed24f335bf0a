"""Memory-mapped members of an uncompressed `.npz`, and a scaled float32 view of them. NumPy only."""

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray


class ScaledArray:
    """float32 view of a stored (often uint8/int16, memory-mapped) array: `base * scale + offset`."""

    def __init__(self, base: NDArray[Any], scale: float = 1.0, offset: float = 0.0) -> None:
        self.base, self.scale, self.offset = base, np.float32(scale), np.float32(offset)
        self.shape: tuple[int, ...] = tuple(base.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> NDArray[Any]:
        rows = np.asarray(self.base[index], dtype=np.float32)
        if self.scale != 1:
            rows *= self.scale
        if self.offset != 0:
            rows += self.offset
        return rows

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def astype(self, dtype: Any) -> NDArray[Any]:
        return np.asarray(self, dtype)


def mapped_members(path: Path) -> dict[str, NDArray[Any]]:
    """Read-only memory maps of the `.npy` members of `path` that are stored uncompressed."""
    out: dict[str, NDArray[Any]] = {}
    with zipfile.ZipFile(path) as zf, path.open("rb") as f:
        for info in zf.infolist():
            if info.compress_type != zipfile.ZIP_STORED or not info.filename.endswith(".npy"):
                continue
            f.seek(info.header_offset + 26)
            name_len, extra_len = np.frombuffer(f.read(4), "<u2")
            f.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
            version = np.lib.format.read_magic(f)
            shape, fortran, dtype = np.lib.format._read_array_header(f, version)  # type: ignore[attr-defined]
            if fortran or dtype.hasobject or not shape:
                continue
            out[info.filename.removesuffix(".npy")] = np.memmap(path, dtype, "r", offset=f.tell(), shape=shape)
    return out
