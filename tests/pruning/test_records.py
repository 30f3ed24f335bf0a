"""TFRecord shards of tf.train.Example and Parquet sensor recordings: checked against the spec, converted."""

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from contract.errors import PruningError
from pruning.convert import check
from pruning.datasets import load_npz

SPEC = {
    "image": {"dtype": "string", "shape": [8, 8, 3], "decode": "image"},
    "label": {"dtype": "int64", "shape": []},
}


def _png(rng: np.random.Generator, size: tuple[int, int] = (10, 12)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def example(**features: Any) -> bytes:
    """A serialized tf.train.Example, written by TensorFlow itself (the checker parses it without TF)."""
    import tensorflow as tf

    def feature(value: Any) -> Any:
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        a = np.asarray(value).reshape(-1)
        if a.dtype.kind == "f":
            return tf.train.Feature(float_list=tf.train.FloatList(value=a.tolist()))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=a.tolist()))

    message = tf.train.Example(features=tf.train.Features(feature={k: feature(v) for k, v in features.items()}))
    return bytes(message.SerializeToString())


def write_records(path: Path, examples: list[bytes], gzip: bool = False) -> Path:
    import tensorflow as tf

    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(str(path), options) as w:
        for e in examples:
            w.write(e)
    return path


def image_shards(folder: Path, per_split: int = 8, bad: int = 0) -> Path:
    """A zip of train and val shards of PNG images with int64 labels; `bad` train records lack the image."""
    rng = np.random.default_rng(0)
    out = folder / "shards.zip"
    with zipfile.ZipFile(out, "w") as z:
        for split in ("train", "val"):
            records = [example(image=_png(rng), label=i % 2) for i in range(per_split)]
            if split == "train":
                records += [example(label=1, other=[1.0, 2.0]) for _ in range(bad)]
            path = write_records(folder / f"set-{split}.tfrecord-00000-of-00001", records)
            z.write(path, f"set/{path.name}")
    return out


def test_tfrecord_shards_are_checked_against_the_spec_and_memory_mapped(tmp_path: Path) -> None:
    out = tmp_path / "out.npz"
    summary = check(image_shards(tmp_path, bad=1), out, {"features": SPEC, "max_bad_fraction": 0.1})
    assert summary["format"] == "tfrecord"
    assert summary["samples"] == {"train": 8, "val": 8}
    assert summary["classes"] == 2
    assert summary["shape"] == [8, 8, 3]
    assert summary["dtype"] == "uint8"
    assert summary["skipped"]["count"] == 1
    assert "set-train.tfrecord-00000-of-00001#8" in summary["skipped"]["first"][0]
    assert "no feature 'image'" in summary["skipped"]["first"][0]
    data = load_npz(out)
    assert data.x_train[np.array([0, 1])].max() <= 1
    assert data.y_val.tolist() == [0, 1] * 4


def test_float_features_and_regression_targets_from_one_gzip_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    records = [example(x=rng.normal(size=6).astype(np.float32), y=np.float32(i / 10)) for i in range(40)]
    path = write_records(tmp_path / "data.tfrecord.gz", records, gzip=True)
    spec = {"x": {"dtype": "float32", "shape": [3, 2]}, "y": {"dtype": "float32", "shape": []}}
    summary = check(path, tmp_path / "out.npz", {"features": spec, "label": "y", "seed": 2})
    assert summary["task"] == "regression"
    assert sum(summary["samples"].values()) == 40
    data = load_npz(tmp_path / "out.npz")
    assert data.x_train.shape[1:] == (3, 2)
    assert data.y_train.dtype == np.float32


@pytest.mark.parametrize(
    ("records", "options", "needle"),
    [
        ([example(x=[1.0, 2.0], label=0)] * 4, {"features": {"x": {"dtype": "float32", "shape": [3]}}}, "not in"),
        (
            [example(x=[1, 2, 3], label=0)] * 4,
            {"features": {"x": {"dtype": "float32", "shape": [3]}, "label": {"dtype": "int64"}}},
            "4 of 4 entries are unusable (over 5%); first: record 0: 'x' is int64, the spec says float32",
        ),
        (
            [example(x=[1.0, 2.0], label=0)] * 4,
            {"features": {"x": {"dtype": "float32", "shape": [3]}, "label": {"dtype": "int64"}}},
            "'x' has 2 values, shape [3] needs 3",
        ),
        ([example(x=[1.0], label=0)] * 4, {}, "needs options.features"),
    ],
    ids=["label-not-declared", "wrong-dtype", "wrong-length", "no-spec"],
)
def test_records_that_do_not_match_the_spec_are_refused_naming_the_first(
    tmp_path: Path, records: list[bytes], options: dict[str, Any], needle: str
) -> None:
    path = write_records(tmp_path / "d.tfrecord", records)
    with pytest.raises(PruningError) as info:
        check(path, tmp_path / "out.npz", {"format": "tfrecord", **options})
    assert needle in info.value.message


def test_a_cut_tfrecord_file_is_refused(tmp_path: Path) -> None:
    path = write_records(tmp_path / "d.tfrecord", [example(x=[1.0], label=0)] * 5)
    path.write_bytes(path.read_bytes()[:-7])
    spec = {"x": {"dtype": "float32", "shape": [1]}, "label": {"dtype": "int64"}}
    with pytest.raises(PruningError) as info:
        check(path, tmp_path / "out.npz", {"features": spec})
    assert "record 4: the file ends inside the record" in info.value.message


def test_crc32c_in_c_agrees_with_the_python_fallback() -> None:
    from contract.formats import CRC32C_IMPLEMENTATION, _crc32c_python, crc32c

    assert CRC32C_IMPLEMENTATION == "google-crc32c (c)"
    data = np.random.default_rng(0).bytes(1000)
    assert crc32c(b"123456789") == _crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert crc32c(data) == _crc32c_python(data)


def _flip_data_byte(path: Path, record: int, value: bytes) -> None:
    """Flip one bit of `value` inside record `record`'s data (the records are all the same length)."""
    raw = bytearray(path.read_bytes())
    size = len(raw) // 10
    at = raw.index(value, record * size + 12, (record + 1) * size - 4)
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))


def test_a_record_whose_data_checksum_is_wrong_is_counted_as_bad(tmp_path: Path) -> None:
    # the flipped byte is inside a float: the record still parses and matches the spec, only its CRC tells
    path = write_records(tmp_path / "d.tfrecord", [example(x=[float(i) + 0.5], label=i % 2) for i in range(10)])
    _flip_data_byte(path, 3, np.float32(3.5).tobytes())
    spec = {"x": {"dtype": "float32", "shape": [1]}, "label": {"dtype": "int64"}}
    options = {"features": spec, "max_bad_fraction": 0.1, "val_fraction": 0.2, "test_fraction": 0}
    summary = check(path, tmp_path / "out.npz", options)
    reason = "the data checksum does not match (the record is damaged)"
    assert summary["skipped"] == {"count": 1, "first": [f"record 3: {reason}"]}
    assert sum(summary["samples"].values()) == 9
    data = load_npz(tmp_path / "out.npz")
    kept = np.concatenate([data.x_train, data.x_val]).reshape(-1)
    assert sorted(kept.tolist()) == [i + 0.5 for i in range(10) if i != 3]
    with pytest.raises(PruningError, match="record 3: the data checksum does not match"):
        check(path, tmp_path / "out2.npz", {"features": spec})  # one of ten is over the default 5%


def sensor_table(rows: int = 400, missing: int = 0) -> dict[str, list[Any]]:
    rng = np.random.default_rng(0)
    table: dict[str, list[Any]] = {"ax": [], "ay": [], "label": []}
    for i in range(rows):
        label = "walk" if (i // 100) % 2 else "sit"
        table["ax"].append(float(rng.normal()) if i >= missing else None)
        table["ay"].append(float(rng.normal()) + (label == "walk"))
        table["label"].append(label)
    return table


def test_parquet_recordings_are_windowed_like_csv(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "rec.parquet"
    pq.write_table(pa.table(sensor_table(missing=3)), path)
    summary = check(path, tmp_path / "out.npz", {"window": 20, "stride": 10, "max_bad_fraction": 0.05})
    assert summary["format"] == "parquet"
    assert summary["class_names"] == ["sit", "walk"]
    assert summary["shape"] == [20, 2]
    assert summary["skipped"] == {
        "count": 3,
        "first": [
            "row 1: missing or non-numeric value",
            "row 2: missing or non-numeric value",
            "row 3: missing or non-numeric value",
        ],
    }
    data = load_npz(tmp_path / "out.npz")
    assert data.x_train.shape[1:] == (20, 2)


def test_a_damaged_parquet_file_is_refused(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "rec.parquet"
    pq.write_table(pa.table(sensor_table()), path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(PruningError) as info:
        check(path, tmp_path / "out.npz", {"window": 20})
    assert "Parquet" in info.value.message


def test_raw_uint8_features_from_a_tar_of_shards_and_a_label_absent_from_train(tmp_path: Path) -> None:
    import tarfile

    rng = np.random.default_rng(3)
    spec = {"pixels": {"dtype": "string", "shape": [4, 4, 1], "decode": "raw_uint8"}, "y": {"dtype": "int64"}}
    train = write_records(tmp_path / "train.tfrecord", [example(pixels=rng.bytes(16), y=i % 2) for i in range(6)])
    val = write_records(tmp_path / "validation.tfrecord", [example(pixels=rng.bytes(16), y=i % 2) for i in range(4)])
    out = tmp_path / "shards.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(train, "d/train.tfrecord")
        tar.add(val, "d/validation.tfrecord")
    summary = check(out, tmp_path / "out.npz", {"features": spec, "label": "y"})
    assert summary["samples"] == {"train": 6, "val": 4}
    assert summary["dtype"] == "uint8"
    assert summary["scale"] == 1.0
    data = load_npz(tmp_path / "out.npz")
    assert data.x_train.shape == (6, 4, 4, 1)

    odd = write_records(tmp_path / "test.tfrecord", [example(pixels=rng.bytes(16), y=5)])
    with tarfile.open(out, "a") as tar:
        tar.add(odd, "d/test.tfrecord")
    with pytest.raises(PruningError, match="labels absent from train: 5"):
        check(out, tmp_path / "out2.npz", {"features": spec, "label": "y"})


def test_shards_that_are_all_val_or_test_leave_no_train_split(tmp_path: Path) -> None:
    path = write_records(tmp_path / "mnist-test.tfrecord", [example(x=[1.0], label=0)] * 3)
    out = tmp_path / "only.zip"
    with zipfile.ZipFile(out, "w") as z:
        z.write(path, path.name)
    spec = {"x": {"dtype": "float32", "shape": [1]}, "label": {"dtype": "int64"}}
    with pytest.raises(PruningError, match="no usable samples in the train split"):
        check(out, tmp_path / "out.npz", {"features": spec})


def test_parquet_without_pyarrow_is_refused_saying_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    path = tmp_path / "rec.parquet"
    path.write_bytes(b"PAR1" + bytes(64) + b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails as on a server without the extra
    with pytest.raises(PruningError, match=r"shears\[parquet\]"):
        check(path, tmp_path / "out.npz", {"window": 20})
