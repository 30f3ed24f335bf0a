"""Memory-mapped members of an uncompressed `.npz`, and a scaled float32 view of them. NumPy only."""

import mmap
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DROP_EVERY_BYTES = 64 << 20
"""A memory-mapped array gives its read pages back to the kernel once about this much may be mapped."""
FAULT_BYTES = 2 << 20
"""What reading one row may map: a page fault maps the whole cached folio around it, up to 2 MiB (measured:
64 shuffled 27 KB rows of a cached file left 73 MB resident)."""


class ScaledArray:
    """float32 view of a stored (often uint8/int16, memory-mapped) array: `base * scale + offset`.

    Pages of a memory map stay in the process's resident set once read, so an epoch over a 2 GB set
    would end with 2 GB resident (file-backed and reclaimable, but counted in the worker's RSS, which
    is what hosts and container limits watch), and shuffled rows map their neighbours too. Once about
    `DROP_EVERY_BYTES` may have been mapped (with batches of 32 rows or more: after every batch), the
    map's pages are dropped from this process (`madvise(MADV_DONTNEED)`; they stay in the page cache):
    resident memory stays bounded whatever the dataset's size."""

    def __init__(self, base: NDArray[Any], scale: float = 1.0, offset: float = 0.0) -> None:
        self.base, self.scale, self.offset = base, np.float32(scale), np.float32(offset)
        self.shape: tuple[int, ...] = tuple(base.shape)
        self.dtype = np.dtype(np.float32)
        self.ndim = len(self.shape)
        self._map = getattr(base, "_mmap", None) if isinstance(base, np.memmap) else None
        self._read, self._lock = 0, threading.Lock()

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: Any) -> NDArray[Any]:
        stored = np.asarray(self.base[index])
        if self._map is not None:  # each row read may map up to FAULT_BYTES around it
            rows_read = stored.shape[0] if stored.ndim == len(self.shape) else 1
            self._forget(max(stored.nbytes, rows_read * FAULT_BYTES))
        rows = np.asarray(stored, dtype=np.float32)
        if self.scale != 1:
            rows *= self.scale
        if self.offset != 0:
            rows += self.offset
        return rows

    def _forget(self, nbytes: int) -> None:
        with self._lock:
            self._read += nbytes
            if self._read < DROP_EVERY_BYTES:
                return
            self._read = 0
        try:  # read-only and file-backed: dropped pages are read again from the page cache when needed
            self._map.madvise(mmap.MADV_DONTNEED)  # type: ignore[union-attr]
        except (AttributeError, OSError, ValueError):  # no madvise on this platform, or the map is closed
            self._map = None

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
