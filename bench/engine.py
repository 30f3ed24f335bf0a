"""Engine benchmark (issue 3): channel removal speed, unstructured size, the three scores, wall time.

    .venv/bin/python bench/engine.py                       # every model, writes docs/benchmarks.md's section
    .venv/bin/python bench/engine.py --models digits_cnn --no-docs

Every row is one `pruning.run.run()` on a dense model trained here (fixed seeds), measured against
that dense model in the same run:

(a) `channel`, 50% of the channels of every prunable group, one shot, then 5 epochs of fine-tuning:
    LiteRT host latency speedup (dense / pruned) from the engine's report, and our own interleaved
    re-measurement (pruning.host.measure_latency, 200 runs, dense and pruned alternating, median of
    the medians), because microsecond timings are noisy. Target: >= 2x faster, <= 1 point lost.
(b) `unstructured`, 80% of every kernel's weights, polynomial (Zhu & Gupta) schedule over 5 rounds,
    5 epochs of fine-tuning in total: accuracy drop and gzipped TFLite size against dense, in float
    and with full int8. Targets: <= 1 point lost, >= 3x smaller gzipped in float, >= 10x with int8
    (int8 pruned against float dense; also stated against int8 dense).
(c) magnitude, gradient and activation scores side by side for both (a) and (b), on the small models.
(d) the engine's wall time for each row.

Accuracy is the validation split (the engine's headline, which these settings were chosen on); the
held-out test split is reported beside it. `--json PATH` keeps the raw results.

The shared harness (settings, data, dense models) is bench/engine_harness.py, the latency measurements
bench/engine_latency.py, the docs section bench/engine_report.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before Keras loads; see bench/engine_harness.py
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from bench.engine_harness import (  # noqa: E402
    CHANNEL,
    FINETUNE,
    MODELS,
    ROW_KINDS,
    UNSTRUCTURED,
    rows_for,
)
from bench.engine_latency import floor_model, interleaved_latency, latency_only, micro_latency  # noqa: E402
from bench.engine_report import table, verdicts, write_docs  # noqa: E402
from pruning import export, metrics  # noqa: E402
from pruning.loading import load_model  # noqa: E402
from pruning.run import run  # noqa: E402
from pruning.spec import PruneSpec  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"


def bench_model(name: str, workdir: Path, kinds: tuple[str, ...] = ROW_KINDS) -> dict[str, Any]:
    keras.backend.clear_session()
    gc.collect()
    build, methods = MODELS[name]
    t0 = time.perf_counter()
    model, data, what = build()
    train_s = time.perf_counter() - t0
    path = workdir / f"{name}.keras"
    model.save(path)
    dense_float = export.to_tflite(load_model(path), "none")
    floor = floor_model(path, data) if "channel" in kinds else None
    task = data.task
    print(f"\n== {name}: {what} (trained in {train_s:.0f} s, task {task})", flush=True)
    rows = []
    for granularity, method, quant, scope, block in rows_for(methods, kinds):
        settings = CHANNEL if granularity == "channel" else {**UNSTRUCTURED, "scope": scope, "block": block}
        spec = PruneSpec(method=method, quantization=quant, **settings, **FINETUNE)  # type: ignore[arg-type]
        out = workdir / f"{name}-{granularity}-{method}-{quant}-{scope}-{block}"
        start = time.perf_counter()
        result = run(path, data, spec, out)
        wall = time.perf_counter() - start
        rep = result.report
        key = rep["accuracy"]["metric"]
        before, after = rep["metrics"]["before"], rep["metrics"]["after"]
        sign = 1.0 if task == "classification" else -1.0
        row: dict[str, Any] = {
            "model": name,
            "granularity": granularity,
            "scope": scope,
            "block": block,
            "method": method,
            "quantization": quant,
            "metric": key,
            "val_before": before["val"][key],
            "val_after": after["val"][key],
            "val_drop": sign * (before["val"][key] - after["val"][key]),
            "test_before": before["test"][key],
            "test_after": after["test"][key],
            "test_drop": sign * (before["test"][key] - after["test"][key]),
            "tflite_val_after": rep["accuracy"]["tflite_after"],
            "params": rep["params"],
            "macs": rep["macs"],
            "sparsity": rep["sparsity"]["overall"],
            "gzip_dense": rep["baseline"]["size"]["tflite_gzip_bytes"],
            "gzip_pruned": rep["size"]["tflite_gzip_bytes"],
            "gzip_dense_float": export.gzip_bytes(dense_float),
            "engine_latency_dense_ms": rep["baseline"]["latency"][0]["measured_ms"],
            "engine_latency_pruned_ms": rep["latency"][0]["measured_ms"],
            "engine_speedup": rep["baseline"]["latency"][0]["measured_ms"] / rep["latency"][0]["measured_ms"],
            "guard": rep["guard"]["met"],
            "timings_s": rep["timings_s"],
            "wall_s": wall,
        }
        if quant != "none":
            # The int8 row's accuracy is the int8 .tflite model's own, against the float dense model.
            pruned = result.tflite_path.read_bytes()
            row["keras_val_after"], row["keras_test_after"] = row["val_after"], row["test_after"]
            row["val_after"] = rep["accuracy"]["tflite_after"]
            row["test_after"] = metrics.evaluate(export.predict(pruned, data.x_test), data.y_test, task)[key]
            row["val_drop"] = sign * (row["val_before"] - row["val_after"])
            row["test_drop"] = sign * (row["test_before"] - row["test_after"])
        if granularity == "channel":
            row["interleaved"] = interleaved_latency(dense_float, result.tflite_path.read_bytes(), floor)
            row["micro"] = micro_latency(dense_float, result.tflite_path.read_bytes())
        rows.append(row)
        print("  " + _line(row), flush=True)
    return {"model": name, "what": what, "task": task, "train_s": train_s, "rows": rows}


def _line(r: dict[str, Any]) -> str:
    extra = ""
    if "interleaved" in r:
        extra = f" speedup engine {r['engine_speedup']:.2f}x interleaved {r['interleaved']['speedup']:.2f}x"
        if r.get("micro"):
            extra += f" tflite-micro {r['micro']['speedup']:.2f}x"
    return (
        f"{r['granularity']:12s} {r['scope'] or '':9s} {r['method']:10s} {r['quantization']:5s} {r['metric']} "
        f"{r['val_before']:.4f}->{r['val_after']:.4f} (test {r['test_before']:.4f}->{r['test_after']:.4f}) "
        f"gzip {r['gzip_dense']}->{r['gzip_pruned']}{extra} wall {r['wall_s']:.1f}s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--no-docs", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--scope", choices=["per_layer", "global"], default=UNSTRUCTURED["scope"])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--latency-only", action="store_true", help="only re-measure the channel rows' speedup")
    parser.add_argument("--render", type=Path, help="only rewrite the docs section from a --json file of a run")
    parser.add_argument(
        "--rows", nargs="+", choices=ROW_KINDS, default=list(ROW_KINDS), help="which kinds of rows to run"
    )
    args = parser.parse_args()
    UNSTRUCTURED["scope"] = args.scope
    if args.latency_only:
        latency_only(args.models)
        return 0
    if args.render:
        saved = json.loads(args.render.read_text())
        write_docs(saved["models"], saved["cmd"], saved["total_s"], tuple(saved["load"]))  # type: ignore[arg-type]
        print(f"wrote {DOCS.relative_to(ROOT)} from {args.render}")
        return 0
    cmd = ".venv/bin/python " + " ".join(shlex.quote(a) for a in ["bench/engine.py", *sys.argv[1:]])
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="shears-bench-engine-") as tmp:
        for name in args.models:
            results.append(bench_model(name, Path(tmp), tuple(args.rows)))
    total = time.perf_counter() - t0
    load = (load0, os.getloadavg()[0])
    if args.json:
        saved = {"cmd": cmd, "total_s": total, "load": load, "models": results}
        args.json.write_text(json.dumps(saved, indent=2, default=float))
    print()
    print(table(results))
    print()
    print("\n".join(verdicts(results)))
    print(f"\ndone in {total:.0f} s")
    if not args.no_docs:
        write_docs(results, cmd, total, load)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
