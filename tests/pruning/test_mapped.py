"""A memory-mapped dataset read through: its resident pages stay bounded, not the set's size."""

from pathlib import Path

import numpy as np

from pruning import mapped
from pruning.datasets import load_npz
from pruning.stream import Batches


def _resident_bytes_of(path: Path) -> int:
    """Resident memory of this process's mappings of `path` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and fields[0][0] in "0123456789abcdef":  # a mapping's header
            inside = len(fields) >= 6 and fields[5] == str(path)
        elif inside and fields[0] == "Rss:":
            total += int(fields[1]) * 1024
    return total


def test_an_epoch_over_a_mapped_set_keeps_resident_memory_bounded(tmp_path: Path) -> None:
    rows, shape = 6000, (96, 96, 3)  # 166 MB of uint8, read twice as an epoch of shuffled batches
    x = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.uint8, (rows, *shape))
    x[:] = np.arange(rows, dtype=np.uint8)[:, None, None, None]
    x.flush()
    del x
    path = tmp_path / "set.npz"
    y = np.arange(rows) % 10
    stored = np.load(tmp_path / "x.npy", mmap_mode="r")
    np.savez(path, x_train=stored, y_train=y, x_val=np.zeros((2, *shape), np.uint8), y_val=y[:2])
    del stored
    (tmp_path / "x.npy").unlink()
    data = load_npz(path)
    stream = Batches(data.x_train, data.y_train, batch_size=64, seed=0)
    read, peak = 0, 0
    for _epoch in range(2):
        for i in range(len(stream)):
            xb, yb = stream[i]
            assert xb.dtype == np.float32
            assert len(xb) == len(yb)
            read += len(xb)
            if i % 4 == 0:
                peak = max(peak, _resident_bytes_of(path))
        stream.on_epoch_end()
    assert read == 2 * rows
    # 166 MB read twice in shuffled batches: kept, every page read (and the folios around) stays resident
    assert peak < mapped.DROP_EVERY_BYTES, (peak, rows * int(np.prod(shape)))
