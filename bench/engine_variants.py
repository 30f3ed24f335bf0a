"""Focused runs of a few rows of bench/engine.py with the engine's switches flipped, one at a time.

    .venv/bin/python bench/engine_variants.py har_cnn:unstructured:global:lamp:3e-3 har_cnn:unstructured:global:raw
    .venv/bin/python bench/engine_variants.py vww_mobilenet_v1:channel:-:engine:3e-3:polynomial

Each argument is MODEL:GRANULARITY:SCOPE:VARIANT[:LR[:SCHEDULE[:BLOCK[:QUANTIZATION[:EPOCHS]]]]] (magnitude
score, bench/engine.py's settings otherwise; SCHEDULE `polynomial` is 5 rounds, `one_shot` one). Variants:
`engine` (as shipped), `raw` (global threshold on raw scores, no BatchNorm folding, no recalibration: the
engine before issue 3's tuning), `lamp` (LAMP only), `fold` (LAMP + folding, no recalibration), `nofold`
(LAMP + recalibration); a `+kd` suffix fine-tunes on the dense model's soft targets mixed 50/50 with the
labels (distillation; not part of the engine). One JSON line per row. The cosine learning-rate figures in
docs/benchmarks.md came from a version of pruning/finetune.py that had it (since dropped).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import engine as be  # bench/engine.py: sets the TF environment, builds and trains the dense models
import numpy as np

import pruning.run as pruning_run
from pruning import export, masks, scoring, strategies
from pruning import finetune as ft
from pruning.loading import load_model
from pruning.run import run
from pruning.spec import PruneSpec

VARIANTS = {
    "engine": {"norm": "lamp", "fold": True, "recal": True},
    "raw": {"norm": None, "fold": False, "recal": False},
    "lamp": {"norm": "lamp", "fold": False, "recal": False},
    "fold": {"norm": "lamp", "fold": True, "recal": False},
    "nofold": {"norm": "lamp", "fold": False, "recal": True},
}
TEACHER: dict[str, Any] = {}
_finetune = ft.finetune


def _distilled(model: Any, x: np.ndarray, y: np.ndarray, *, loss: Any, **kw: Any) -> list[float]:
    soft = TEACHER.get("probs")
    if soft is None:
        return _finetune(model, x, y, loss=loss, **kw)
    onehot = np.eye(soft.shape[1], dtype=np.float32)[y.astype(int)]
    return _finetune(model, x, 0.5 * onehot + 0.5 * soft, loss="categorical_crossentropy", **kw)


def switch(variant: dict[str, Any]) -> None:
    masks.GLOBAL_NORMALISATION = variant["norm"]
    scoring.FOLD_BATCHNORM = variant["fold"]
    ft.RECALIBRATE = strategies.RECALIBRATE_AFTER_PRUNE = variant["recal"]


def main() -> int:
    pruning_run.finetune = _distilled  # type: ignore[assignment]
    dense: dict[str, tuple[Path, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="shears-variants-") as tmp:
        for arg in sys.argv[1:]:
            name, granularity, scope, variant, *rest = arg.split(":")
            lr = float(rest[0]) if rest else be.FINETUNE["learning_rate"]
            if name not in dense:
                model, data, _ = be.MODELS[name][0]()
                path = Path(tmp) / f"{name}.keras"
                model.save(path)
                dense[name] = (path, data)
            path, data = dense[name]
            switch(VARIANTS[variant.removesuffix("+kd")])
            teacher = load_model(path).predict(data.x_train, verbose=0) if variant.endswith("+kd") else None
            TEACHER["probs"] = teacher
            settings = dict(be.CHANNEL if granularity == "channel" else {**be.UNSTRUCTURED, "scope": scope})
            if len(rest) > 1 and rest[1]:
                settings.update(schedule=rest[1], steps=5 if rest[1] == "polynomial" else 1)
            if len(rest) > 2 and int(rest[2]) > 1:
                settings["block"] = int(rest[2])
            quant = rest[3] if len(rest) > 3 else "none"
            if len(rest) > 4:
                settings["epochs"] = int(rest[4])
            spec = PruneSpec(method="magnitude", quantization=quant, **{**settings, **be.FINETUNE, "learning_rate": lr})
            start = time.perf_counter()
            result = run(path, data, spec, Path(tmp) / arg.replace(":", "-"))
            rep = result.report
            before, after = rep["metrics"]["before"], rep["metrics"]["after"]
            line: dict[str, Any] = {
                "row": arg,
                "val_drop_pts": 100 * (before["val"]["accuracy"] - after["val"]["accuracy"]),
                "test_drop_pts": 100 * (before["test"]["accuracy"] - after["test"]["accuracy"]),
                "tflite_val": rep["accuracy"]["tflite_after"],
                "gzip_vs_dense_float": export.gzip_bytes(export.to_tflite(load_model(path)))
                / rep["size"]["tflite_gzip_bytes"],
                "macs_kept": rep["macs"]["after"] / rep["macs"]["before"],
                "wall_s": time.perf_counter() - start,
            }
            if granularity == "channel":
                dense_tflite = export.to_tflite(load_model(path))
                line["speedup"] = be.interleaved_latency(dense_tflite, result.tflite_path.read_bytes())["speedup"]
            print(json.dumps(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
