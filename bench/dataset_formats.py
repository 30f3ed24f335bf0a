"""The same images as a folder .zip and as TFRecord shards, the same sensor rows as CSV and as Parquet:
time of the check + conversion (`pruning.convert.check`, in this process, unconfined), median of runs.

Nothing is tuned on these figures; they say what the TFRecord reader (pure Python, no TensorFlow in the
checker) and the Parquet reader cost against the formats that were there before.

    .venv/bin/python bench/dataset_formats.py [--images 2000] [--rows 200000] [--runs 3]
"""

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pruning.convert import check  # noqa: E402
from tests.pruning.test_records import example, write_records  # noqa: E402

SPEC = {
    "image": {"dtype": "string", "shape": [96, 96, 3], "decode": "image"},
    "label": {"dtype": "int64", "shape": []},
}


def _png(rng: np.random.Generator) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def images(folder: Path, n: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    pngs = [(_png(rng), i % 10) for i in range(n)]
    folder_zip = folder / "images.zip"
    with zipfile.ZipFile(folder_zip, "w", zipfile.ZIP_STORED) as z:
        for i, (data, label) in enumerate(pngs):
            z.writestr(f"set/c{label}/{i}.png", data)
    shards = folder / "shards.zip"
    with zipfile.ZipFile(shards, "w", zipfile.ZIP_STORED) as z:
        for s in range(4):
            part = pngs[s::4]
            path = write_records(folder / f"set-{s}.tfrecord", [example(image=d, label=y) for d, y in part])
            z.write(path, path.name)
            path.unlink()
    return folder_zip, shards


def sensors(folder: Path, rows: int) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    labels = np.where((np.arange(rows) // 1000) % 2, "walk", "sit")
    table = pa.table({"ax": x[:, 0], "ay": x[:, 1], "az": x[:, 2], "label": labels})
    parquet = folder / "rec.parquet"
    pq.write_table(table, parquet)
    csv = folder / "rec.csv"
    with csv.open("w") as f:
        f.write("ax,ay,az,label\n")
        for row, label in zip(x, labels, strict=True):
            f.write(f"{row[0]:.6f},{row[1]:.6f},{row[2]:.6f},{label}\n")
    return csv, parquet


def timed(run: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        folder_zip, shards = images(folder, args.images)
        csv, parquet = sensors(folder, args.rows)
        out = folder / "out.npz"
        cases = [
            ("images: class folders .zip", folder_zip, {"image_size": [96, 96]}),
            ("images: TFRecord shards .zip", shards, {"features": SPEC}),
            ("sensor rows: CSV", csv, {"window": 128, "stride": 64}),
            ("sensor rows: Parquet", parquet, {"window": 128, "stride": 64}),
        ]
        print(f"load before: {os.getloadavg()[0]:.1f} (1-min), {os.cpu_count()} cores; median of {args.runs}")
        print("| input | MiB | check + convert, s | MiB/s |")
        print("|---|---|---|---|")
        for name, path, options in cases:
            seconds = timed(lambda p=path, o=options: check(p, out, o), args.runs)  # type: ignore[misc]
            mib = path.stat().st_size / 2**20
            print(f"| {name} | {mib:.1f} | {seconds:.2f} | {mib / seconds:.1f} |")
        print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
