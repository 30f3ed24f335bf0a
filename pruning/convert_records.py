"""TFRecord shards of `tf.train.Example` with a declared feature spec, converted like the other formats.

Options: `features` maps each feature to `{"dtype": "float32" | "int64" | "string", "shape": [...]}`
(the names `tf.io.FixedLenFeature` takes); a `string` feature also says how it is decoded:
`"decode": "image"` (JPEG/PNG, resized to the shape, kept as uint8) or `"raw_uint8"`, `"raw_int16"`,
`"raw_float32"` (`tf.io.decode_raw`). One feature is the label (`label`, default "label": int64
class ids, or float32 targets for regression), exactly one other is the model's input.
The upload is one TFRecord file (optionally GZIP-compressed) or a .zip/.tar of shards; a shard
whose name says train, val(idation) or test is that split, the other records get a seeded split.
A record that does not match the spec is counted as bad (the first few named: shard, record
index, what differs); past `max_bad_fraction` the upload is refused.
"""

import re
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from pruning.dataformats import SHOW_BAD, SPLITS, Archive, BadEntries, Sink, decode_image, fail
from pruning.tfrecord import BadRecord, RecordError, parse_example, records

DTYPES = ("float32", "int64", "string")
DECODE = {"image": np.uint8, "raw_uint8": np.uint8, "raw_int16": np.int16, "raw_float32": np.float32}
SPLIT_WORD = re.compile(r"(?:^|[^a-z])(train|training|val|valid|validation|test)(?:[^a-z]|$)")
SPLIT_OF = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def feature_spec(options: dict[str, Any]) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """(input name, its spec, label name, its spec) from the options, or a 4xx naming what is wrong."""
    features, label = options.get("features"), str(options.get("label", "label"))
    if not isinstance(features, dict) or not features:
        raise fail('a TFRecord dataset needs options.features: {"name": {"dtype": ..., "shape": [...]}, ...}')
    for name, spec in features.items():
        if not isinstance(spec, dict) or spec.get("dtype") not in DTYPES:
            raise fail(f"features.{name}: give dtype one of {', '.join(DTYPES)}")
        shape = spec.get("shape", [])
        if not isinstance(shape, list) or not all(isinstance(d, int) and d > 0 for d in shape):
            raise fail(f"features.{name}: shape must be a list of positive integers, e.g. [28, 28, 1]")
        if spec["dtype"] == "string" and spec.get("decode") not in DECODE:
            raise fail(f"features.{name}: a string feature needs decode one of {', '.join(DECODE)}")
        if spec.get("decode") == "image" and (len(shape) != 3 or shape[2] not in (1, 3)):
            raise fail(f"features.{name}: an image's shape is [height, width, channels (1 or 3)]")
        unknown = sorted(set(spec) - {"dtype", "shape", "decode"})
        if unknown:
            raise fail(f"features.{name}: unknown keys {', '.join(unknown)} (known: dtype, shape, decode)")
    if label not in features:
        raise fail(f"the label feature {label!r} is not in options.features (set options.label)")
    if features[label]["dtype"] == "string":
        raise fail(f"the label feature {label!r} must be int64 (class ids) or float32 (regression targets)")
    inputs = [n for n in features if n != label]
    if len(inputs) != 1:
        raise fail(f"declare exactly one input feature besides the label; got {inputs or 'none'}")
    return inputs[0], features[inputs[0]], label, features[label]


def _value(record: dict[str, tuple[str, Any]], name: str, spec: dict[str, Any]) -> NDArray[Any]:
    """The feature as the spec says, or ValueError saying how it differs."""
    if name not in record:
        raise ValueError(f"no feature {name!r} (has {', '.join(sorted(record)[:5]) or 'none'})")
    kind, values = record[name]
    if kind != spec["dtype"]:
        raise ValueError(f"{name!r} is {kind}, the spec says {spec['dtype']}")
    shape = tuple(spec.get("shape", []))
    if kind == "string":
        if len(values) != 1:
            raise ValueError(f"{name!r} has {len(values)} byte strings, expected 1")
        if spec["decode"] == "image":
            image: NDArray[Any] = decode_image(bytes(values[0]), (shape[0], shape[1]), shape[2])
            return image
        dtype = np.dtype(DECODE[spec["decode"]]).newbyteorder("<")
        if len(values[0]) != int(np.prod(shape)) * dtype.itemsize:
            raise ValueError(
                f"{name!r} has {len(values[0])} bytes, shape {list(shape)} as {dtype.name} needs "
                f"{int(np.prod(shape)) * dtype.itemsize}"
            )
        return np.frombuffer(values[0], dtype).reshape(shape)
    if values.size != int(np.prod(shape)):
        raise ValueError(f"{name!r} has {values.size} values, shape {list(shape)} needs {int(np.prod(shape))}")
    if kind == "float32" and not np.all(np.isfinite(values)):
        raise ValueError(f"{name!r} has NaN or infinite values")
    reshaped: NDArray[Any] = values.reshape(shape)
    return reshaped


def _shards(path: Path) -> list[str]:
    if not (zipfile.is_zipfile(path) or _is_tar(path)):
        return [""]
    names = [n for n, _, _ in Archive(path).members() if not PurePosixPath(n).name.startswith((".", "__MACOSX"))]
    tagged = [n for n in names if "tfrec" in n.lower()]
    if not (tagged or names):
        raise fail("the archive has no TFRecord shards")
    return sorted(tagged or names)


def _is_tar(path: Path) -> bool:
    import tarfile

    return tarfile.is_tarfile(path)


@contextmanager
def _open(path: Path, shard: str) -> Iterator[IO[bytes]]:
    if not shard:
        with path.open("rb") as f:
            yield f
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf, zf.open(shard) as f:
            yield f
    else:
        import tarfile

        with tarfile.open(path) as tf:
            member = tf.extractfile(shard)
            if member is None:
                raise fail(f"{shard}: not a regular file")
            yield member


def _read(path: Path, shard: str) -> Iterator[bytes | BadRecord]:
    with _open(path, shard) as f:
        try:
            yield from records(f)
        except (RecordError, OSError, EOFError) as exc:
            raise fail(f"{shard or 'the file'}: {exc}") from exc


def convert(path: Path, out: Path, options: dict[str, Any], common: tuple[int, float, float, float]) -> dict[str, Any]:
    seed, val, test, max_bad = common
    x_name, x_spec, y_name, y_spec = feature_spec(options)
    shards = _shards(path)
    counts = {shard: sum(1 for _ in _read(path, shard)) for shard in shards}
    fixed = {s: SPLIT_OF[m.group(1)] for s in shards if (m := SPLIT_WORD.search(s.lower()))}
    free = sum(n for s, n in counts.items() if s not in fixed)
    order = np.random.default_rng(seed).permutation(free)
    n_val, n_test = round(val * free), round(test * free)
    code = np.zeros(free, np.int8)  # free record i goes to SPLITS[code[i]]
    code[order[free - n_val - n_test : free - n_test]], code[order[free - n_test :]] = 1, 2
    capacity = {s: sum(n for shard, n in counts.items() if fixed.get(shard) == s) for s in SPLITS}
    for i, split in enumerate(SPLITS):
        capacity[split] += int(np.sum(code == i))
    shape = tuple(x_spec.get("shape", []))
    dtype = DECODE[x_spec["decode"]] if x_spec["dtype"] == "string" else np.float32
    regression = y_spec["dtype"] == "float32"
    bad = BadEntries(sum(counts.values()), max_bad)
    labels: dict[str, set[int]] = {s: set() for s in SPLITS}
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:
        y_shape = tuple(y_spec.get("shape", []))
        sink = Sink(Path(folder), shape, dtype, capacity, label_dtype=np.float32 if regression else np.int64)
        free_i = 0
        for shard in shards:
            for index, data in enumerate(_read(path, shard)):
                split = fixed.get(shard) or SPLITS[code[free_i]]
                free_i += shard not in fixed
                where = f"{shard}#{index}" if shard else f"record {index}"
                try:
                    if isinstance(data, BadRecord):
                        raise ValueError(data.reason)
                    record = parse_example(data)
                    x, y = _value(record, x_name, x_spec), _value(record, y_name, y_spec)
                    if not regression and (y.size != 1 or y.reshape(-1)[0] < 0):
                        raise ValueError(f"label {y_name!r} must be one class id >= 0, got {y.tolist()}")
                except (ValueError, IndexError, UnicodeDecodeError, OSError) as exc:
                    bad.add(where, str(exc)[:160] or type(exc).__name__)
                    continue
                label = y.reshape(y_shape) if regression else int(y.reshape(-1)[0])
                sink.add(split, x, label)
                if not regression:
                    labels[split].add(int(label))
        bad.check()
        if not sink.rows.get("train"):
            raise fail("no usable samples in the train split (name the shards train/val/test, or leave them unnamed)")
        absent = sorted((labels["val"] | labels["test"]) - labels["train"])
        if absent:
            raise fail(f"labels absent from train: {', '.join(map(str, absent[:SHOW_BAD]))}")
        classes = None if regression else [str(c) for c in range(max(labels["train"]) + 1)]
        meta: dict[str, Any] = {"format": "tfrecord", "features": options["features"], "label": y_name}
        default_scale = 1 / 255 if x_spec.get("decode") == "image" else 1.0
        meta |= {"scale": float(options.get("scale", default_scale)), "offset": float(options.get("offset", 0.0))}
        if classes is not None:
            meta["classes"] = classes
        samples = sink.pack(out, meta)
    task = "regression" if regression else "classification"
    return {
        **meta,
        "task": task,
        "samples": samples,
        "shape": list(shape),
        "dtype": np.dtype(dtype).name,
        "skipped": bad.summary(),
        "shards": len([s for s in shards if s]) or 1,
    }
