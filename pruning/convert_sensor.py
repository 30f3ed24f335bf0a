"""Sensor recordings (CSV or Parquet) with a label column, windowed by `window` and `stride` rows.

Rows are read in file order; a run of rows with the same label (and `split_column`, `group`) is cut
into windows of `window` rows every `stride` rows (a bad row ends the run: no window spans it).

The file is read as a stream and never held whole: CSV line by line, Parquet batch by batch
(`iter_batches`). Each good row's channels go to a float32 scratch file on disk as they are read,
and only the runs (label, split, group, first row) stay in memory. Then each window is a start
row: per split, in the seeded order, each is read back from the scratch file (`pread`) and
appended to the split's `.npy` (`Sink`), so memory stays flat however long the recording.
Parquet is read with pyarrow, an optional extra (`pip install 'shears[parquet]'`, about 150 MB
installed): a server without it refuses Parquet uploads with a 4xx that says so.
"""

import csv
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import NDArray

from pruning.dataformats import SHOW_BAD, SPLITS, BadEntries, Sink, fail

PARQUET_MAGIC = b"PAR1"
BLOCK_ROWS = 4096  # good rows converted to float32 and written to disk at a time


def _text(value: Any) -> str:
    if value is None:
        raise ValueError("missing value")
    return str(value).strip()


def _rows(path: Path, fmt: str) -> tuple[list[str], Iterator[tuple[str, Sequence[Any]]]]:
    """The column names and (where, row) of each row, read as a stream."""
    if fmt == "parquet":
        return _parquet_rows(path)
    f = path.open(newline="", encoding="utf-8", errors="replace")
    reader = csv.reader(f)
    header = [h.strip() for h in next(reader, [])]

    def rows() -> Iterator[tuple[str, Sequence[Any]]]:
        with f:
            for line, row in enumerate(reader, start=2):
                yield f"line {line}", row

    return header, rows()


def _parquet_rows(path: Path) -> tuple[list[str], Iterator[tuple[str, Sequence[Any]]]]:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError as exc:
        raise fail(
            "this server cannot read Parquet: pyarrow, an optional extra, is not installed (pip install "
            "'shears[parquet]'); upload the same columns as a CSV instead"
        ) from exc
    with path.open("rb") as f:
        if f.read(4) != PARQUET_MAGIC:
            raise fail("not a Parquet file (it does not start with PAR1)")
    try:
        source = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises its own kinds for a damaged footer
        raise fail(f"the Parquet file is damaged or truncated: {str(exc)[:200]}") from exc
    header = [str(n) for n in source.schema_arrow.names]

    def rows() -> Iterator[tuple[str, Sequence[Any]]]:
        n = 0
        try:
            # about 65,536 values a batch as Python objects, however wide the file is
            for batch in source.iter_batches(batch_size=max(64, 65536 // max(1, len(header)))):
                columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
                for row in zip(*columns, strict=True):
                    n += 1
                    yield f"row {n}", row
        except OSError as exc:  # pyarrow's ArrowInvalid / ArrowIOError derive from it or ValueError
            raise fail(f"the Parquet file is damaged after row {n}: {str(exc)[:200]}") from exc

    return header, rows()


def convert(
    path: Path, out: Path, options: dict[str, Any], common: tuple[int, float, float, float], fmt: str = "csv"
) -> dict[str, Any]:
    """Windows of `window` rows every `stride` rows within each run of one label (and split, group)."""
    seed, val, test, max_bad = common
    label = str(options.get("label", "label"))
    try:
        window = int(options.get("window", 128))
        stride = int(options.get("stride", max(1, window // 2)))
    except (TypeError, ValueError) as exc:
        raise fail(f"window and stride must be integers: {exc}") from exc
    if window < 1 or stride < 1:
        raise fail("window and stride must be at least 1")
    header, reader = _rows(path, fmt)
    if label not in header:
        raise fail(f"no label column {label!r} in the {fmt} columns {header[:10]} (set options.label)")
    split_col = options.get("split_column", "split" if "split" in header else None)
    group_col = options.get("group")
    skip = {label, split_col, group_col, "time", "timestamp"}
    channels = list(options.get("channels") or [h for h in header if h not in skip])
    missing = [c for c in channels if c not in header]
    if missing or not channels:
        raise fail(f"channel columns not in the header: {missing or 'none left'}")
    idx = [header.index(c) for c in channels]
    keys = [header.index(c) for c in (label, split_col, group_col) if c]
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:
        source = Path(folder) / "rows.f32"
        with source.open("wb") as f:
            runs, n, bad = _store_rows(reader, idx, keys, f, max_bad)
        bad.check()
        starts, names = _window_starts(runs, n, window, stride, str(split_col) if split_col else None, (val, test))
        classes = sorted({names[i] for i in np.unique(starts["train"][1])})
        absent = sorted({names[i] for s in ("val", "test") for i in np.unique(starts[s][1])} - set(classes))
        if absent:
            raise fail(f"labels absent from train: {', '.join(absent[:SHOW_BAD])}")
        class_of = np.asarray([classes.index(c) if c in classes else -1 for c in names], np.int64)
        rng = np.random.default_rng(seed)
        shape = (window, len(channels))
        sink = Sink(Path(folder), shape, np.float32, {s: len(v[0]) for s, v in starts.items()})
        nbytes = window * len(channels) * 4
        with source.open("rb") as f:
            for split, (begins, ids) in starts.items():
                for i in rng.permutation(len(begins)):
                    x = np.frombuffer(os.pread(f.fileno(), nbytes, int(begins[i]) * len(channels) * 4), np.float32)
                    sink.add(split, x.reshape(shape), int(class_of[ids[i]]))
        meta = {"format": fmt, "classes": classes, "channels": channels, "window": window, "stride": stride}
        meta |= {"scale": float(options.get("scale", 1.0)), "offset": float(options.get("offset", 0.0))}
        samples = sink.pack(out, meta)
    return {**meta, "samples": samples, "shape": list(shape), "dtype": "float32", "skipped": bad.summary()}


Run = tuple[tuple[str, ...], int]  # (label, split, group) and the index of its first good row


def _store_rows(
    reader: Iterator[tuple[str, Sequence[Any]]], idx: list[int], keys: list[int], f: BinaryIO, max_bad: float
) -> tuple[list[Run], int, BadEntries]:
    """Writes each good row's channels to `f` as float32 as it is read; the runs, the good rows, the bad ones."""
    runs: list[Run] = []
    bad, n, broken = BadEntries(0, max_bad), 0, True
    block: list[list[float]] = []
    for where, row in reader:
        bad.total += 1
        try:
            key = tuple(_text(row[k]) for k in keys)
            vals = [float(row[i]) for i in idx]
            if not key[0] or not all(map(math.isfinite, vals)):
                raise ValueError("missing or non-finite value")
        except (ValueError, IndexError, TypeError):
            bad.add(where, "missing or non-numeric value")
            broken = True  # a bad row ends the run
            continue
        if broken or runs[-1][0] != key:
            runs.append((key, n))
        broken = False
        block.append(vals)
        n += 1
        if len(block) == BLOCK_ROWS:
            f.write(np.asarray(block, np.float32).tobytes())
            block.clear()
    if block:
        f.write(np.asarray(block, np.float32).tobytes())
    return runs, n, bad


def _window_starts(
    runs: list[Run], n: int, window: int, stride: int, split_col: str | None, fractions: tuple[float, float]
) -> tuple[dict[str, tuple[NDArray[np.int64], NDArray[np.int64]]], list[str]]:
    """Per split, in file order, the first row of each window and its label's id; the labels by id."""
    ids: dict[str, int] = {}
    parts: dict[str, list[tuple[NDArray[np.int64], int]]] = {s: [] for s in SPLITS}
    ends = [r[1] for r in runs[1:]] + [n]
    for (key, begin), end in zip(runs, ends, strict=True):
        windows = np.arange(begin, end - window + 1, stride, dtype=np.int64)
        label = ids.setdefault(key[0], len(ids))
        if split_col:
            split = {"train": "train", "val": "val", "validation": "val", "test": "test"}.get(key[1].lower())
            if split is None:
                raise fail(f"split column {split_col!r} has {key[1]!r}; use train, val or test")
            parts[split].append((windows, label))
            continue
        # contiguous blocks per run, so overlapping windows rarely straddle two splits
        n_val, n_test = round(fractions[0] * len(windows)), round(fractions[1] * len(windows))
        n_train = len(windows) - n_val - n_test  # as index tests i < n_train, i < n_train + n_val would cut
        cut = np.clip([n_train, max(n_train, n_train + n_val)], 0, len(windows))
        for split, part in zip(SPLITS, np.split(windows, cut), strict=True):
            parts[split].append((part, label))
    starts = {}
    for split, found in parts.items():
        begins = np.concatenate([w for w, _ in found] or [np.zeros(0, np.int64)])
        labels = np.concatenate([np.full(len(w), c, np.int64) for w, c in found] or [np.zeros(0, np.int64)])
        starts[split] = (begins, labels)
    return starts, list(ids)
