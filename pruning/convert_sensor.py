"""Sensor recordings (CSV or Parquet) with a label column, windowed by `window` and `stride` rows.

Rows are read in file order; a run of rows with the same label (and `split_column`, `group`) is cut
into windows of `window` rows every `stride` rows (a bad row ends the run: no window spans it).
Parquet is read with pyarrow, an optional extra (`pip install 'shears[parquet]'`, about 150 MB
installed): a server without it refuses Parquet uploads with a 4xx that says so.
"""

import csv
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pruning.dataformats import SHOW_BAD, BadEntries, Sink, fail

PARQUET_MAGIC = b"PAR1"


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
            for batch in source.iter_batches(batch_size=65536):
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
    rows, bad = 0, BadEntries(0, max_bad)
    values: list[list[float]] = []
    runs: list[tuple[tuple[str, ...], int] | None] = []
    for where, row in reader:
        rows += 1
        try:
            key = tuple(_text(row[k]) for k in keys)
            vals = [float(row[i]) for i in idx]
            if not key[0] or not np.all(np.isfinite(vals)):
                raise ValueError("missing or non-finite value")
        except (ValueError, IndexError, TypeError):
            bad.add(where, "missing or non-numeric value")
            runs.append(None)  # a bad row ends the run
            continue
        if not runs or runs[-1] is None or runs[-1][0] != key:
            runs.append((key, len(values)))
        values.append(vals)
    bad.total = rows
    bad.check()
    x_all = np.asarray(values, np.float32)
    starts: dict[str, list[tuple[int, str]]] = {s: [] for s in ("train", "val", "test")}
    spans = [r for r in runs if r is not None]
    ends = [s[1] for s in spans[1:]] + [len(values)]
    for (key, begin), end in zip(spans, ends, strict=True):
        windows = list(range(begin, end - window + 1, stride))
        if split_col:
            split = {"train": "train", "val": "val", "validation": "val", "test": "test"}.get(key[1].lower())
            if split is None:
                raise fail(f"split column {split_col!r} has {key[1]!r}; use train, val or test")
            starts[split] += [(w, key[0]) for w in windows]
        else:  # contiguous blocks per run, so overlapping windows rarely straddle two splits
            n_val, n_test = round(val * len(windows)), round(test * len(windows))
            n_train = len(windows) - n_val - n_test
            for i, w in enumerate(windows):
                starts["train" if i < n_train else "val" if i < n_train + n_val else "test"].append((w, key[0]))
    classes = sorted({c for _, c in starts["train"]})
    absent = sorted({c for s in ("val", "test") for _, c in starts[s]} - set(classes))
    if absent:
        raise fail(f"labels absent from train: {', '.join(absent[:SHOW_BAD])}")
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:
        sink = Sink(Path(folder), (window, len(channels)), np.float32, {s: len(v) for s, v in starts.items()})
        for split, items in starts.items():
            for i in rng.permutation(len(items)):
                w, c = items[i]
                sink.add(split, x_all[w : w + window], classes.index(c))
        meta = {"format": fmt, "classes": classes, "channels": channels, "window": window, "stride": stride}
        meta |= {"scale": float(options.get("scale", 1.0)), "offset": float(options.get("offset", 0.0))}
        samples = sink.pack(out, meta)
    shape = [window, len(channels)]
    return {**meta, "samples": samples, "shape": shape, "dtype": "float32", "skipped": bad.summary()}
