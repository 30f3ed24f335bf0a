"""Uploaded dataset formats turned into one uncompressed `.npz` the engine memory-maps.

Image folders (.zip/.tar), audio folders (WAV, Speech Commands layout) and sensor CSV are read
entry by entry and written row by row into `.npy` files on disk (never the whole set in memory),
then packed, uncompressed, with a `meta` member (JSON as uint8: format, classes, scale, offset,
front end). Bad entries are skipped and counted up to `max_bad_fraction`, beyond that the upload
is refused naming the first ones. Run inside the confined checker (`pruning.check_dataset`).
"""

import io
import json
import tarfile
import wave
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError

SPLITS = ("train", "val", "test")
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_MEMBER_BYTES = 64 << 20
SHOW_BAD = 5


def fail(message: str) -> PruningError:
    return PruningError("invalid_dataset", message)


class Archive:
    """The regular files of a .zip or .tar (any compression), read in archive order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.is_zip = zipfile.is_zipfile(path)
        if not self.is_zip and not tarfile.is_tarfile(path):
            raise PruningError("invalid_dataset", "expected a .zip or .tar archive of class folders")

    def members(self) -> Iterator[tuple[str, int, Any]]:
        """(name, size, handle) of each regular file; refuses unsafe paths and links."""
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                for info in zf.infolist():
                    _check_name(info.filename)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise PruningError("unsafe_archive", f"archive member is a link: {info.filename!r}")
                    if not info.is_dir():
                        yield info.filename, info.file_size, info
            return
        try:
            with tarfile.open(self.path) as tf:
                for member in tf:
                    _check_name(member.name)
                    if member.issym() or member.islnk() or member.isdev():
                        raise PruningError("unsafe_archive", f"archive member is a link or device: {member.name!r}")
                    if member.isfile():
                        yield member.name, member.size, member
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise PruningError("corrupt_archive", f"the archive is damaged or truncated: {exc}") from exc

    def read_all(self) -> Iterator[tuple[str, bytes | None]]:
        """(name, bytes) in archive order; bytes None when the member is too big to be a sample."""
        if self.is_zip:
            with zipfile.ZipFile(self.path) as zf:
                for name, size, info in self.members():
                    try:
                        yield name, (zf.read(info) if size <= MAX_MEMBER_BYTES else None)
                    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
                        yield name, b""
            return
        with tarfile.open(self.path) as tf:
            for member in tf:
                if member.isfile():
                    f = tf.extractfile(member) if member.size <= MAX_MEMBER_BYTES else None
                    yield member.name, (f.read() if f is not None else None)


def _check_name(name: str) -> None:
    if name.startswith(("/", "\\")) or ".." in PurePosixPath(name).parts or ":" in name:
        raise PruningError("unsafe_archive", f"archive member with an unsafe path: {name!r}")


@dataclass
class Sink:
    """Per split: x rows appended to an `.npy` on disk as they come (written, never mapped: memory stays flat
    however big the set), labels in memory; packed at the end."""

    folder: Path
    shape: tuple[int, ...]
    dtype: Any
    capacity: dict[str, int]
    label_dtype: Any = np.int64
    rows: dict[str, int] = field(default_factory=dict)
    labels: dict[str, list[Any]] = field(default_factory=dict)
    _x: dict[str, BinaryIO] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._row = np.zeros(self.shape, self.dtype)  # casts and broadcasts each sample as an assignment would
        header = {"descr": np.lib.format.dtype_to_descr(self._row.dtype), "fortran_order": False}
        for split, n in self.capacity.items():
            if n:
                self._x[split] = (self.folder / f"x_{split}.npy").open("wb")
                np.lib.format.write_array_header_2_0(self._x[split], header | {"shape": (n, *self.shape)})
                self.rows[split], self.labels[split] = 0, []

    def add(self, split: str, x: NDArray[Any], label: Any) -> None:
        if self.rows[split] >= self.capacity[split]:
            raise IndexError(f"more {split} samples than the {self.capacity[split]} counted")
        self._row[...] = x
        self._x[split].write(self._row.tobytes())
        self.rows[split] += 1
        self.labels[split].append(label)

    def pack(self, out: Path, meta: dict[str, Any]) -> dict[str, int]:
        for f in self._x.values():
            f.close()
        for split in ("train", "val"):
            if not self.rows.get(split):
                raise fail(f"no usable samples in the {split} split")
        arrays: dict[str, int] = {}
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for split in self._x:
                n = self.rows[split]
                if not n:
                    continue
                _write_rows(zf, f"x_{split}.npy", self.folder / f"x_{split}.npy", self._row[None], n)
                _write_array(zf, f"y_{split}.npy", np.asarray(self.labels[split], self.label_dtype))
                arrays[split] = n
            _write_array(zf, "meta.npy", np.frombuffer(json.dumps(meta).encode(), np.uint8))
        self._x.clear()
        return arrays


def _write_array(zf: zipfile.ZipFile, name: str, a: NDArray[Any]) -> None:
    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array(f, a, allow_pickle=False)


def _write_rows(zf: zipfile.ZipFile, name: str, source: Path, x: NDArray[Any], n: int) -> None:
    """The first `n` rows of the `.npy` at `source` (rows like `x`'s), streamed into a member with its own header."""
    header = {"descr": np.lib.format.dtype_to_descr(x.dtype), "fortran_order": False, "shape": (n, *x.shape[1:])}
    with zf.open(name, "w", force_zip64=True) as f, source.open("rb") as src:
        np.lib.format.write_array_header_2_0(f, header)
        version = np.lib.format.read_magic(src)
        np.lib.format._read_array_header(src, version)  # type: ignore[attr-defined]
        left = n * x[0].nbytes
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                break
            f.write(chunk)
            left -= len(chunk)


class BadEntries:
    """Counts skipped entries; refuses the dataset when there are too many."""

    def __init__(self, total: int, max_fraction: float) -> None:
        self.total, self.max_fraction, self.count = total, max_fraction, 0
        self.first: list[str] = []

    def add(self, name: str, reason: str) -> None:
        self.count += 1
        if len(self.first) < SHOW_BAD:
            self.first.append(f"{name}: {reason}")

    def check(self) -> None:
        if self.count and self.count > self.max_fraction * max(self.total, 1):
            raise fail(
                f"{self.count} of {self.total} entries are unusable (over {self.max_fraction:.0%}); "
                f"first: {'; '.join(self.first)}"
            )

    def summary(self) -> dict[str, Any]:
        return {"count": self.count, "first": self.first}


def folder_entries(names: list[str], suffixes: tuple[str, ...]) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """(name, class, split or None) of each sample file; and the files that are in no class folder."""
    found = [(n, PurePosixPath(n).parts) for n in names if not _hidden(n) and n.lower().endswith(suffixes)]
    # One wrapping folder around everything (`cifar10/cat/1.png`) is not a class.
    while found and len({p[0] for _, p in found}) == 1 and all(len(p) > 2 for _, p in found):
        found = [(n, p[1:]) for n, p in found]
    entries, loose = [], []
    for name, p in found:
        split = SPLIT_NAMES.get(p[0].lower()) if len(p) > 2 else None
        rest = p[1:] if split else p
        if len(rest) < 2:
            loose.append(name)
        else:
            entries.append((name, rest[0], split))
    return entries, loose


def _hidden(name: str) -> bool:
    return any(part.startswith((".", "__MACOSX")) for part in PurePosixPath(name).parts)


def assign_splits(
    entries: list[tuple[str, str, str | None]], seed: int, val: float, test: float, fixed: dict[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """name -> split (given by folders or lists, else a seeded split within each class); the classes."""
    fixed = fixed or {}
    given = {name: split for name, _, split in entries if split} | fixed
    classes = sorted({label for name, label, _ in entries if given.get(name, "train") == "train"})
    absent = sorted({label for _, label, _ in entries} - set(classes))
    if absent:
        raise fail(f"classes with no training samples: {', '.join(absent[:SHOW_BAD])}")
    rng = np.random.default_rng(seed)
    out = dict(given)
    by_class: dict[str, list[str]] = {}
    for name, label, _ in entries:
        if name not in given and fixed:  # the lists name val and test; the rest is train
            out[name] = "train"
        elif name not in given:
            by_class.setdefault(label, []).append(name)
    for label in sorted(by_class):
        names = [by_class[label][i] for i in rng.permutation(len(by_class[label]))]
        n_val, n_test = round(val * len(names)), round(test * len(names))
        n_train = max(1, len(names) - n_val - n_test)
        for i, name in enumerate(names):
            out[name] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return out, classes


def decode_image(data: bytes, size: tuple[int, int] | None, channels: int) -> NDArray[Any]:
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = 64_000_000
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as opened:
            img = opened.convert("L" if channels == 1 else "RGB")
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            a = np.asarray(img, np.uint8)
    return a[..., None] if channels == 1 else a


def read_wav(data: bytes, rate: int) -> NDArray[Any]:
    """PCM WAV as float samples in [-1, 1] (first channel); refuses another sample rate."""
    with wave.open(io.BytesIO(data)) as w:
        if w.getframerate() != rate:
            raise ValueError(f"sample rate {w.getframerate()} Hz, the front end expects {rate} Hz")
        width, channels, n = w.getsampwidth(), w.getnchannels(), w.getnframes()
        raw = w.readframes(n)
    if width == 1:
        pcm = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        pcm = np.frombuffer(raw, dtype).astype(np.float32) / float(np.iinfo(dtype).max)
    else:
        raise ValueError(f"{8 * width}-bit samples are not supported (use 8, 16 or 32-bit PCM)")
    return pcm[::channels]
