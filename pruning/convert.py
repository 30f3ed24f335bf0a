"""Checking an uploaded dataset and converting it (run by `pruning.check_dataset`, confined).

`check(IN, OUT, options)` writes OUT, an uncompressed `.npz` the engine memory-maps (or nothing, when IN is an `.npz` to
keep as it is), and prints the summary: `format`, `samples`, `classes`, `shape`, `dtype`, `bytes`,
`skipped`, `scale`, `offset` (and `frontend` for audio), or raises `PruningError`.
"""

import io
import json
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from contract.formats import looks_like_tfrecord
from pruning import convert_records, convert_sensor, frontend, noise
from pruning.dataformats import (
    IMAGE_SUFFIXES,
    SHOW_BAD,
    Archive,
    BadEntries,
    Sink,
    assign_splits,
    decode_image,
    fail,
    folder_entries,
    read_wav,
)
from pruning.datasets import describe_npz, infer_task

FORMATS = ("npz", "images", "audio", "csv", "parquet", "tfrecord")
COMMON = {"format", "seed", "val_fraction", "test_fraction", "max_bad_fraction", "scale", "offset"}
KNOWN = {
    "npz": COMMON,
    "images": COMMON | {"image_size", "channels"},
    "audio": COMMON | {"frontend"},
    "csv": COMMON | {"label", "channels", "window", "stride", "split_column", "group"},
    "tfrecord": COMMON | {"features", "label"},
}
KNOWN["parquet"] = KNOWN["csv"]


def detect(path: Path, options: dict[str, Any]) -> str:
    fmt = options.get("format")
    if fmt:
        if fmt not in FORMATS:
            raise fail(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
        return str(fmt)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith(".npy") for n in names):
            return "npz"
        if any("tfrec" in n.lower() for n in names):
            return "tfrecord"
        return "audio" if any(n.lower().endswith(".wav") for n in names) else "images"
    import tarfile

    if tarfile.is_tarfile(path):
        names = [name for name, _, _ in Archive(path).members()]
        if any("tfrec" in n.lower() for n in names):
            return "tfrecord"
        return "audio" if any(n.lower().endswith(".wav") for n in names) else "images"
    with path.open("rb") as f:
        head = f.read(12)
    if head.startswith(convert_sensor.PARQUET_MAGIC):
        return "parquet"
    if head.startswith(b"\x1f\x8b"):
        import gzip

        try:
            with gzip.open(path) as g:
                head = g.read(12)
        except (OSError, EOFError):
            return "csv"
    return "tfrecord" if looks_like_tfrecord(head) else "csv"


def _common(options: dict[str, Any]) -> tuple[int, float, float, float]:
    try:
        return (
            int(options.get("seed", 0)),
            float(options.get("val_fraction", 0.15)),
            float(options.get("test_fraction", 0.15)),
            float(options.get("max_bad_fraction", 0.05)),
        )
    except (TypeError, ValueError) as exc:
        raise fail(f"seed, val_fraction, test_fraction and max_bad_fraction must be numbers: {exc}") from exc


def _convert_folders(path: Path, out: Path, options: dict[str, Any], audio: bool) -> dict[str, Any]:
    seed, val, test, max_bad = _common(options)
    archive = Archive(path)
    names = [name for name, _, _ in archive.members()]
    fixed: dict[str, str] = {}
    noise_names: set[str] = set()
    if audio:  # Speech Commands: validation_list.txt / testing_list.txt name the val and test clips
        lists = {n.rsplit("/", 1)[-1]: n for n in names if n.endswith(("validation_list.txt", "testing_list.txt"))}
        if lists:
            for name, data in archive.read_all():
                for list_name, split in (("validation_list.txt", "val"), ("testing_list.txt", "test")):
                    if name == lists.get(list_name) and data:
                        root = name[: -len(list_name)]
                        fixed |= {root + line.strip(): split for line in data.decode().splitlines() if line.strip()}
        noise_names = {n for n in names if noise.is_noise(n) and n.lower().endswith(".wav")}
        names = [n for n in names if not noise.is_noise(n)]
    entries, loose = folder_entries(names, (".wav",) if audio else IMAGE_SUFFIXES)
    if not entries:
        kind = "WAV clips" if audio else "JPEG/PNG images"
        first = "; ".join(loose[:SHOW_BAD]) or "; ".join(names[:SHOW_BAD]) or "the archive is empty"
        raise fail(f"no class folders with {kind} (put each class in its own folder, e.g. cat/001.png); first: {first}")
    split_of, classes = assign_splits(entries, seed, val, test, fixed)
    label_of = {name: classes.index(label) for name, label, _ in entries}
    bad = BadEntries(len(entries) + len(loose) + len(noise_names), max_bad)
    for name in loose:
        bad.add(name, "not in a class folder")
    capacity = {s: sum(1 for n in label_of if split_of[n] == s) for s in ("train", "val", "test")}
    meta: dict[str, Any] = {"classes": classes}
    if audio:
        fe = frontend.resolve(options.get("frontend"))
        extract = frontend.FrontEnd(fe)
        shape: tuple[int, ...] = frontend.output_shape(fe)
        dtype: Any = np.float32
        meta |= {"format": "audio", "frontend": fe, "scale": float(options.get("scale", 1.0))}
    else:
        channels = int(options.get("channels", 3))
        size = options.get("image_size")
        if size is None:  # the first decodable image's size
            for name, data in archive.read_all():
                if name in label_of and data:
                    try:
                        size = list(decode_image(data, None, channels).shape[:2])
                        break
                    except Exception:  # noqa: BLE001 - a bad first image is counted below
                        continue
        if not size or len(size) != 2 or channels not in (1, 3):
            raise fail("could not decode any image; give image_size [height, width] and channels 1 or 3")
        shape, dtype = (int(size[0]), int(size[1]), channels), np.uint8
        meta |= {"format": "images", "scale": float(options.get("scale", 1 / 255))}
    meta["offset"] = float(options.get("offset", 0.0))
    with tempfile.TemporaryDirectory(dir=out.parent) as folder:
        sink = Sink(Path(folder), shape, dtype, capacity)
        waves = noise.Waveforms(Path(folder), capacity["train"], fe["clip_samples"]) if noise_names else None
        for name, data in archive.read_all():
            if name not in label_of and name not in noise_names:
                continue
            try:
                if data is None:
                    raise ValueError("over 64 MiB")
                if name in noise_names and waves is not None:
                    waves.add_noise(read_wav(data, fe["sample_rate"]))
                    continue
                pcm = read_wav(data, fe["sample_rate"]) if audio else None
                x = extract(pcm) if pcm is not None else decode_image(data, (shape[0], shape[1]), shape[2])
            except Exception as exc:  # noqa: BLE001 - decoders raise many kinds for a bad file
                bad.add(name, str(exc)[:120] or type(exc).__name__)
                continue
            sink.add(split_of[name], x, label_of[name])
            if waves is not None and pcm is not None and split_of[name] == "train":
                waves.add(pcm)
        bad.check()
        samples = sink.pack(out, meta)
        if waves is not None and waves.noise:
            meta["background_noise"] = waves.append_to(out)
    return {**meta, "samples": samples, "shape": list(shape), "dtype": np.dtype(dtype).name, "skipped": bad.summary()}


def _convert_npz(path: Path, out: Path, options: dict[str, Any], max_total: int) -> dict[str, Any]:
    from contract.safety import check_archive

    with check_archive(path, max_total=max_total):
        pass
    arrays = describe_npz(path)
    with np.load(path, allow_pickle=False) as npz:
        task = infer_task(npz["y_train"])
        classes = int(np.max(npz["y_train"])) + 1 if task == "classification" and npz["y_train"].ndim == 1 else None
    meta = {"format": "npz", "scale": float(options.get("scale", 1.0)), "offset": float(options.get("offset", 0.0))}
    if "scale" in options or "offset" in options:  # rewritten uncompressed with the scale beside it
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as dst:
            for info in src.infolist():
                if info.filename.removesuffix(".npy") in arrays:
                    with src.open(info) as f, dst.open(info.filename, "w", force_zip64=True) as g:
                        while chunk := f.read(8 << 20):
                            g.write(chunk)
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.frombuffer(json.dumps(meta).encode(), np.uint8))
            dst.writestr("meta.npy", buf.getvalue())
    samples = {s: arrays[f"x_{s}"]["shape"][0] for s in ("train", "val", "test") if f"x_{s}" in arrays}
    return {
        **meta,
        "arrays": arrays,
        "task": task,
        "samples": samples,
        "classes": classes,
        "shape": arrays["x_train"]["shape"][1:],
        "dtype": arrays["x_train"]["dtype"],
        "skipped": {"count": 0, "first": []},
    }


def check(path: Path, out: Path, options: dict[str, Any], max_total: int = 8 << 30) -> dict[str, Any]:
    if not isinstance(options, dict):
        raise fail("dataset options must be a JSON object")
    fmt = detect(path, options)
    unknown = sorted(set(options) - KNOWN[fmt])
    if unknown:
        raise fail(f"unknown options for {fmt}: {', '.join(unknown)} (known: {', '.join(sorted(KNOWN[fmt]))})")
    if fmt == "npz":
        summary = _convert_npz(path, out, options, max_total)
    elif fmt in ("csv", "parquet"):
        summary = convert_sensor.convert(path, out, options, _common(options), fmt)
    elif fmt == "tfrecord":
        summary = convert_records.convert(path, out, options, _common(options))
    else:
        summary = _convert_folders(path, out, options, audio=fmt == "audio")
    summary["format"] = fmt
    summary.setdefault("task", "classification")
    summary["converted"] = out.exists()
    summary["bytes"] = (out if out.exists() else path).stat().st_size
    if not summary.get("arrays"):
        summary["arrays"] = describe_npz(out)
    if isinstance(summary.get("classes"), list):
        summary["class_names"], summary["classes"] = summary["classes"], len(summary["classes"])
    return summary
