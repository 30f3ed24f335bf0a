"""Image folders, WAV folders, sensor CSV and uint8 .npz: checked, converted, memory-mapped, streamed."""

import io
import json
import tarfile
import wave
import zipfile
from pathlib import Path

import numpy as np
import pytest

from contract.errors import PruningError
from pruning import frontend
from pruning.convert import check
from pruning.datasets import load_npz
from pruning.mapped import ScaledArray


def _png(rng: np.random.Generator, size: tuple[int, int], fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


def image_zip(path: Path, per_class: int = 10, corrupt: int = 0, splits: bool = False) -> Path:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as z:
        for c in ("cat", "dog"):
            for i in range(per_class):
                top = ("train/" if i < per_class - 3 else "val/") if splits else ""
                size = (12, 12) if i % 2 else (16, 20)  # mixed sizes are resized
                z.writestr(f"set/{top}{c}/{i}.png", _png(rng, size))
        for i in range(corrupt):
            z.writestr(f"set/cat/bad{i}.jpg", b"\xff\xd8\xff\xe0 not really a jpeg")
    return path


def test_image_folders_are_resized_to_uint8_and_memory_mapped(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    summary = check(image_zip(tmp_path / "img.zip", corrupt=1), out, {"image_size": [8, 8], "seed": 3})
    assert summary["format"] == "images"
    assert summary["classes"] == 2
    assert summary["class_names"] == ["cat", "dog"]
    assert summary["shape"] == [8, 8, 3]
    assert summary["dtype"] == "uint8"
    assert sum(summary["samples"].values()) == 20
    assert summary["skipped"]["count"] == 1
    assert "bad0.jpg" in summary["skipped"]["first"][0]
    assert summary["bytes"] == out.stat().st_size
    data = load_npz(out)
    assert isinstance(data.x_train, ScaledArray)
    assert isinstance(data.x_train.base, np.memmap)
    rows = data.x_train[np.array([0, 2, 3])]
    assert rows.dtype == np.float32
    assert rows.shape == (3, 8, 8, 3)
    assert 0 <= rows.min()
    assert rows.max() <= 1
    assert data.meta is not None
    assert data.meta["classes"] == ["cat", "dog"]
    assert set(np.unique(data.y_train)) == {0, 1}


def test_train_val_folders_are_honoured(tmp_path: Path) -> None:
    summary = check(image_zip(tmp_path / "img.zip", splits=True), tmp_path / "out.npz", {})
    assert summary["samples"] == {"train": 14, "val": 6}
    assert summary["shape"] == [16, 20, 3]  # the first image's size


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda z: z.writestr("loose.png", b"x"), "no class folders"),
        (lambda z: [z.writestr(f"a/{i}.jpg", b"junk") for i in range(4)], "4 of 4 entries are unusable"),
    ],
    ids=["no-class-folders", "all-corrupt"],
)
def test_bad_image_archives_name_the_first_bad_entries(tmp_path: Path, make: object, needle: str) -> None:
    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        make(z)  # type: ignore[operator]
    with pytest.raises(PruningError, match=needle):
        check(path, tmp_path / "out.npz", {"image_size": [8, 8]})


def _wav(samples: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_speech_commands_layout_becomes_49x10_mfcc(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    path = tmp_path / "kws.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for label, freq in (("yes", 440.0), ("no", 1200.0)):
            for i in range(6):
                _add(tar, f"sc/{label}/{i}.wav", _wav(0.5 * np.sin(2 * np.pi * freq * t) + rng.normal(0, 0.05, len(t))))
        _add(tar, "sc/no/slow.wav", _wav(np.zeros(8000), rate=8000))  # another sample rate: counted, skipped
        _add(tar, "sc/_background_noise_/noise.wav", _wav(rng.normal(0, 0.1, 16000)))
        _add(tar, "sc/validation_list.txt", b"yes/0.wav\nno/0.wav\n")
        _add(tar, "sc/testing_list.txt", b"yes/1.wav\nno/1.wav\n")
    options = {"frontend": {"type": "mfcc", "frame_ms": 40, "stride_ms": 20, "bins": 10}, "max_bad_fraction": 0.2}
    summary = check(path, tmp_path / "out.npz", options)
    assert summary["shape"] == [49, 10, 1]
    assert summary["samples"] == {"train": 8, "val": 2, "test": 2}
    assert summary["skipped"]["count"] == 1
    assert "8000 Hz" in summary["skipped"]["first"][0]
    assert summary["frontend"]["frame_length"] == 640
    assert summary["frontend"]["frame_step"] == 320
    data = load_npz(tmp_path / "out.npz")
    assert data.meta is not None
    assert data.meta["frontend"]["type"] == "mfcc"
    assert frontend.output_shape(frontend.resolve(data.meta["frontend"])) == (49, 10, 1)


def _csv(rows: list[str]) -> bytes:
    return ("ax,ay,label,split\n" + "\n".join(rows) + "\n").encode()


def test_sensor_csv_is_windowed_and_bad_rows_are_counted(tmp_path: Path) -> None:
    rows = [f"{np.sin(i / 5):.3f},{i % 7},{'walk' if i < 200 else 'sit'},train" for i in range(400)]
    rows += [f"{i:.1f},1,walk,val" for i in range(40)] + [f"{i:.1f},1,sit,val" for i in range(40)]
    rows[100] = ",1,walk,train"  # a missing value: the row is skipped, its windows too
    path = tmp_path / "s.csv"
    path.write_bytes(_csv(rows))
    summary = check(path, tmp_path / "out.npz", {"format": "csv", "window": 20, "stride": 10})
    assert summary["shape"] == [20, 2]
    assert summary["class_names"] == ["sit", "walk"]
    assert summary["skipped"] == {"count": 1, "first": ["line 102: missing or non-numeric value"]}
    assert summary["samples"]["val"] == 6
    assert load_npz(tmp_path / "out.npz").x_train.shape[1:] == (20, 2)


def test_a_label_absent_from_train_is_refused(tmp_path: Path) -> None:
    rows = [f"{i},1,walk,train" for i in range(50)] + [f"{i},1,jump,val" for i in range(50)]
    path = tmp_path / "s.csv"
    path.write_bytes(_csv(rows))
    with pytest.raises(PruningError, match="absent from train: jump"):
        check(path, tmp_path / "out.npz", {"format": "csv", "window": 10})


def test_uint8_npz_is_kept_and_scaled(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 255, (30, 4, 4, 1), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=np.arange(30) % 3, x_val=x[:9], y_val=np.arange(9) % 3)
    summary = check(tmp_path / "d.npz", tmp_path / "out.npz", {"scale": 0.5, "offset": -1})
    assert summary["converted"]
    assert summary["dtype"] == "uint8"
    assert summary["classes"] == 3
    data = load_npz(tmp_path / "out.npz")
    assert isinstance(data.x_train, ScaledArray)
    np.testing.assert_allclose(data.x_train[5:7], x[5:7] * 0.5 - 1)
    assert json.loads(json.dumps(summary))  # the summary is plain JSON
    plain = check(tmp_path / "d.npz", tmp_path / "plain.npz", {})
    assert not plain["converted"]
    assert not (tmp_path / "plain.npz").exists()
    np.testing.assert_array_equal(np.asarray(load_npz(tmp_path / "d.npz").x_val), x[:9].astype(np.float32))


def test_batches_cover_every_row_once_per_epoch_in_a_seeded_order() -> None:
    from pruning.stream import Batches

    x = ScaledArray(np.arange(50, dtype=np.uint8).reshape(50, 1, 1, 1).repeat(4, 1).repeat(4, 2), 0.5, 1.0)
    y = np.arange(50)
    a, b = Batches(x, y, 8, seed=7), Batches(x, y, 8, seed=7, augment={"flip": True, "crop": 1})
    assert len(a) == 7
    rows = np.concatenate([a[i][1] for i in range(len(a))])
    assert sorted(rows) == list(range(50))
    xb, yb = a[0]
    np.testing.assert_allclose(xb[:, 0, 0, 0], yb * 0.5 + 1.0)
    np.testing.assert_array_equal(b[0][1], yb)  # the same order; augmentation only changes pixels
    again = Batches(x, y, 8, seed=7, augment={"flip": True, "crop": 1})
    np.testing.assert_array_equal(b[3][0], again[3][0])
    a.on_epoch_end()
    assert not np.array_equal(a[0][1], yb)


def test_augmentation_is_checked() -> None:
    from pruning.spec import PruneSpec

    with pytest.raises(ValueError, match="unknown augmentation"):
        PruneSpec.from_job_spec({"target": {"sparsity": 0.5}, "finetune": {"augment": {"mixup": 1}}})
    spec = PruneSpec.from_job_spec({"target": {"sparsity": 0.5}, "finetune": {"augment": {"flip": False, "crop": 2}}})
    assert spec.augment == {"crop": 2}
