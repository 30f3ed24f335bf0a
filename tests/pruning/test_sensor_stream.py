"""Sensor CSV/Parquet converted as a stream: the same windows as before, in memory that does not grow with the file."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pruning import convert_sensor
from pruning.convert import check
from pruning.datasets import load_npz

CASES: dict[str, dict[str, Any]] = {
    "csv-seeded-split": {"window": 7, "stride": 3, "group": "group", "seed": 3, "val_fraction": 0.2},
    "csv-split-column": {"window": 5, "stride": 5, "split_column": "split", "group": "group"},
    "csv-stride-over-window": {"window": 4, "stride": 6, "channels": ["az", "ax"], "test_fraction": 0},
    "parquet-seeded-split": {"window": 7, "stride": 3, "group": "group", "seed": 3, "val_fraction": 0.2},
}
BAD_VALUES = ["", "abc", "nan", "inf", "-inf", " "]


def recording(rows: int = 3000, seed: int = 0) -> list[list[str]]:
    """time, ax, ay, az, label, group, split: label runs of 1-40 rows, a bad value or a short row here and there."""
    rng = np.random.default_rng(seed)
    table, label, split = [], "walk", "train"
    for i in range(rows):
        if rng.random() < 1 / 20:
            label = str(rng.choice(["walk", "sit", "run", "jump"]))
        if i % 97 == 0:
            split = str(rng.choice(["train", "Train", "train", "val", "validation", "TEST"]))
        values = [f"{v:.4f}" for v in rng.normal(size=3)]
        row = [str(i), *values, f" {label} ", f"g{i // 400}", split]
        if rng.random() < 0.03:
            row[int(rng.integers(1, 5))] = str(rng.choice(BAD_VALUES))
        if rng.random() < 0.005:
            row = row[:3]
        table.append(row)
    return table


def write_case(folder: Path, name: str) -> tuple[Path, dict[str, Any]]:
    header = ["time", "ax", "ay", "az", "label", "group", "split"]
    table = recording()
    options = {"max_bad_fraction": 0.2, **CASES[name]}
    if "split_column" not in options:  # a seeded split: no split column in the file
        header, table = header[:-1], [r[:6] for r in table]
    if name.startswith("parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        full = [r + [None] * (len(header) - len(r)) for r in table]
        columns = {h: [r[j] or None for r in full] for j, h in enumerate(header)}
        path = folder / "rec.parquet"
        pq.write_table(pa.table(columns), path, row_group_size=250)
        return path, {"format": "parquet", **options}
    path = folder / "rec.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *table]) + "\n")
    return path, {"format": "csv", **options}


def digest(out: Path, summary: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(summary, sort_keys=True).encode())
    with np.load(out) as npz:
        for name in sorted(npz.files):
            a = npz[name]
            h.update(f"{name} {a.dtype.str} {a.shape}".encode())
            h.update(a.tobytes())
    return h.hexdigest()


# What the converter made of each case before it streamed (it held the file's rows in memory): same arrays, summary.
BEFORE = {
    "csv-seeded-split": "9e530b4c9280d7d217d35d97e6cea457293db6a914b06dc9aca7d804cd1520b9",
    "csv-split-column": "49aa87903b2e1925cbc1976d5978d68766bc2566a385ba4d108e05b095189c21",
    "csv-stride-over-window": "6b8b56f7362f0d58c667c6db3385d1667869c0b97dee1fc8106d9f67cf7aa881",
    "parquet-seeded-split": "c947cb5218ca2bdb7986adf303008d468d608d241566f472b095e4b5565bcea9",
}


@pytest.mark.parametrize("name", list(CASES))
def test_streamed_conversion_gives_what_the_in_memory_one_gave(tmp_path: Path, name: str) -> None:
    if name.startswith("parquet"):
        pytest.importorskip("pyarrow")
    path, options = write_case(tmp_path, name)
    summary = check(path, tmp_path / "out.npz", options)
    assert digest(tmp_path / "out.npz", summary) == BEFORE[name]


@pytest.mark.parametrize("block", [2, 3, 4096])
def test_windows_are_cut_within_runs_across_write_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(convert_sensor, "BLOCK_ROWS", block)
    rows = [(i, "a", "train") for i in range(10)] + [("x", "a", "train")]  # the bad row ends the run
    rows += [(i, "a", "train") for i in range(11, 16)] + [(i, "b", "train") for i in range(16, 24)]
    rows += [(i, "a", "val") for i in range(24, 30)] + [(i, "b", "val") for i in range(30, 36)]
    path = tmp_path / "s.csv"
    path.write_text("v,label,split\n" + "".join(f"{v},{c},{s}\n" for v, c, s in rows))
    summary = check(path, tmp_path / "out.npz", {"window": 4, "stride": 3, "max_bad_fraction": 0.1})
    assert summary["skipped"] == {"count": 1, "first": ["line 12: missing or non-numeric value"]}
    data = load_npz(tmp_path / "out.npz")

    def windows(x: Any, y: Any) -> list[tuple[list[float], int]]:
        return sorted((np.asarray(x[i]).reshape(-1).tolist(), int(y[i])) for i in range(len(y)))

    expected_train = [
        (list(map(float, range(b, b + 4))), c) for b, c in [(0, 0), (3, 0), (6, 0), (11, 0), (16, 1), (19, 1)]
    ]
    assert windows(data.x_train, data.y_train) == sorted(expected_train)
    assert windows(data.x_val, data.y_val) == [([24.0, 25.0, 26.0, 27.0], 0), ([30.0, 31.0, 32.0, 33.0], 1)]


CHILD = """
import resource, sys
from pathlib import Path
from pruning.convert import check
summary = check(Path(sys.argv[1]), Path(sys.argv[2]), {"format": "csv", "window": 128, "stride": 64})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, sum(summary["samples"].values()))
"""


def _peak_rss(path: Path, out: Path) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(out)], capture_output=True, text=True, timeout=120, check=True
    )
    peak, windows = done.stdout.split()
    return int(peak), int(windows)


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss is in KiB on Linux only")
def test_memory_does_not_grow_with_the_recording(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    block = "".join(
        f"{a:.4f},{b:.4f},{c:.4f},{'walk' if i // 500 % 2 else 'sit'}\n"
        for i, (a, b, c) in enumerate(rng.normal(size=(20_000, 3)))
    )
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text("ax,ay,az,label\n" + block)
    big.write_text("ax,ay,az,label\n" + block * 100)  # 2 million rows, 51 MB
    base, _ = _peak_rss(small, tmp_path / "small.npz")
    peak, windows = _peak_rss(big, tmp_path / "big.npz")
    size = big.stat().st_size
    assert windows == 24_000  # 6 per run of 500 rows
    # the rows alone are 24 MB as float32; held as Python lists (before this converter streamed) they took 450 MB
    assert peak - base < size / 8, f"peak RSS grew {(peak - base) >> 20} MiB converting {size >> 20} MB"
