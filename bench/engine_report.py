"""The docs section of the engine benchmark: the table, the verdicts against the targets, and the
text around them (what the focused runs showed, the reading of the last full run)."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import keras
import numpy as np

from bench.common import write_section
from bench.engine_harness import (
    BLOCK,
    CHANNEL,
    FINETUNE,
    LATENCY_ROUNDS,
    LATENCY_RUNS,
    ROOT,
    SCORES,
    UNSTRUCTURED,
)
from bench.engine_latency import MICRO_ROUNDS, MICRO_RUNS
from bench.engine_reading import FOCUSED, READING, TFMOT_ANCHOR

SECTION = "## Engine (issue 3)"


def _drop(r: dict[str, Any], split: str) -> str:
    value = r[f"{split}_drop"]
    if r["metric"] == "accuracy":
        return f"{100 * value:+.1f}"
    return f"{value:+.4f}"


def _kb(n: int) -> str:
    return f"{n / 1024:.1f}"


def table(results: list[dict[str, Any]]) -> str:
    head = (
        "| model | row | score | dense val | pruned val | drop val / test (pts) | MACs kept | "
        "host ms dense -> pruned (interleaved) | speedup interleaved / engine | "
        "host ms with 1 channel per group (most any cut could give) | "
        "TFLite Micro ms dense -> pruned (speedup) | gzip KB dense -> pruned | "
        "smaller (gzip) | wall s |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for m in results:
        for r in m["rows"]:
            pct = "{:.1%}" if r["metric"] == "accuracy" else "MAE {:.4f}"
            row = "channel 50%" if r["granularity"] == "channel" else f"unstructured 80% {r['scope']}"
            if r["quantization"] != "none":
                row += f", {r['quantization']}"
            if r.get("block", 1) > 1:
                row += f", runs of {r['block']}"
            macs = r["macs"]["after"] / r["macs"]["before"]
            if "interleaved" in r:
                lat = f"{r['interleaved']['dense_ms']:.4f} -> {r['interleaved']['pruned_ms']:.4f}"
                speed = f"**{r['interleaved']['speedup']:.2f}x** / {r['engine_speedup']:.2f}x"
            else:
                lat, speed = "", f"({r['engine_speedup']:.2f}x)"
            inter = r.get("interleaved", {})
            floor = f"{inter['floor_ms']:.4f} ({inter['max_speedup']:.2f}x)" if "floor_ms" in inter else ""
            micro = r.get("micro")
            mcu = f"{micro['dense_ms']:.3f} -> {micro['pruned_ms']:.3f} ({micro['speedup']:.2f}x)" if micro else ""
            ratio = r["gzip_dense"] / r["gzip_pruned"]
            if r["quantization"] == "none":
                smaller = f"{ratio:.2f}x"
                gz = f"{_kb(r['gzip_dense'])} -> {_kb(r['gzip_pruned'])}"
            else:
                vs_float = r["gzip_dense_float"] / r["gzip_pruned"]
                smaller = f"**{vs_float:.1f}x** vs float dense, {ratio:.2f}x vs int8 dense"
                gz = f"{_kb(r['gzip_dense_float'])} (int8 {_kb(r['gzip_dense'])}) -> {_kb(r['gzip_pruned'])}"
            if r["granularity"] == "unstructured":
                smaller = smaller if "**" in smaller else f"**{smaller}**"
            lines.append(
                f"| {m['model']} | {row} | {r['method']} | {pct.format(r['val_before'])} | "
                f"{pct.format(r['val_after'])} | {_drop(r, 'val')} / {_drop(r, 'test')} | {macs:.0%} | {lat} | "
                f"{speed} | {floor} | {mcu} | {gz} | {smaller} | {r['wall_s']:.1f} |"
            )
    return "\n".join(lines)


def _ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One line per target, over the classification models, for the default (magnitude) score."""
    cls = [m for m in results if m["task"] == "classification"]

    main = UNSTRUCTURED["scope"]

    def pick(
        m: dict[str, Any],
        granularity: str,
        method: str = "magnitude",
        quant: str = "none",
        scope: Any = main,
        block: int = 1,
    ) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in m["rows"]
                if r["granularity"] == granularity
                and r["method"] == method
                and r["quantization"] == quant
                and r["scope"] in (None, scope)
                and r.get("block", 1) == block
            ),
            None,
        )

    out = []
    parts, all_ok = [], True
    for m in cls:
        r = pick(m, "channel")
        if r is None:
            continue
        ok = r["interleaved"]["speedup"] >= 2 and r["val_drop"] <= 0.01
        all_ok &= ok
        micro = f", TFLite Micro {r['micro']['speedup']:.2f}x" if r.get("micro") else ""
        most = r["interleaved"].get("max_speedup")
        bound = f" (1 channel per group: {most:.2f}x)" if most else ""
        parts.append(
            f"{m['model']} {r['interleaved']['speedup']:.2f}x{bound} / {100 * r['val_drop']:+.1f} pts {_ok(ok)}{micro}"
        )
    if parts:
        out.append(
            f"- **channel 50%: >= 2x faster (LiteRT/XNNPACK on the host), <= 1 point lost** ({_ok(all_ok)} "
            "overall): " + "; ".join(parts) + "."
        )
    for scope in (main, "per_layer" if main == "global" else "global"):
        parts, all_ok = [], True
        for m in cls:
            r = pick(m, "unstructured", scope=scope)
            if r is None:
                continue
            ratio = r["gzip_dense"] / r["gzip_pruned"]
            ok = r["val_drop"] <= 0.01 and ratio >= 3
            all_ok &= ok
            parts.append(f"{m['model']} {100 * r['val_drop']:+.1f} pts, {ratio:.2f}x {_ok(ok)}")
        if not parts:
            continue
        out.append(
            f"- **unstructured 80% float, {scope} threshold, on every classifier: <= 1 point lost, >= 3x smaller "
            "gzipped** "
            f"({_ok(all_ok)} overall): " + "; ".join(parts) + "."
        )
    for block in (1, BLOCK):
        parts, all_ok = [], True
        for m in cls:
            r = pick(m, "unstructured", quant="int8", block=block)
            if r is None:
                continue
            ratio = r["gzip_dense_float"] / r["gzip_pruned"]
            ok = r["val_drop"] <= 0.01 and ratio >= 10
            all_ok &= ok
            parts.append(
                f"{m['model']} {100 * r['val_drop']:+.1f} pts, {ratio:.1f}x vs float dense "
                f"({r['gzip_dense'] / r['gzip_pruned']:.2f}x vs int8 dense) {_ok(ok)}"
            )
        if parts:
            runs = "" if block == 1 else f", in runs of {block}"
            out.append(
                f"- **unstructured 80% int8{runs}, {main} threshold, on every classifier: <= 1 point lost, >= 10x "
                f"smaller gzipped than float dense** ({_ok(all_ok)} overall): " + "; ".join(parts) + "."
            )
    anchor = next((m for m in cls if m["model"] == "digits16_cnn"), None)
    if anchor:
        figures = []
        for scope in (main, "per_layer" if main == "global" else "global"):
            r = pick(anchor, "unstructured", scope=scope)
            if r is None:
                continue
            figures.append(
                f"{scope} {100 * r['val_drop']:+.1f} pts val ({100 * r['test_drop']:+.1f} test), "
                f"{r['gzip_dense'] / r['gzip_pruned']:.2f}x smaller gzipped"
            )
        out.append(
            "- **against the TFMOT anchor** (digits 16x16, 80%, 5 epochs: about -5 pts, 3.4x): Shears magnitude "
            + "; ".join(figures)
            + "."
        )
        flt = pick(anchor, "unstructured")
        q8 = [q for q in (pick(anchor, "unstructured", quant="int8", block=b) for b in (1, BLOCK)) if q]
        if flt and q8:
            best = max(q8, key=lambda q: q["gzip_dense_float"] / q["gzip_pruned"] if q["val_drop"] <= 0.01 else 0)
            ok_float = flt["val_drop"] <= 0.01 and flt["gzip_dense"] / flt["gzip_pruned"] >= 3
            ok_int8 = best["val_drop"] <= 0.01 and best["gzip_dense_float"] / best["gzip_pruned"] >= 10
            runs = f" in runs of {best['block']}" if best.get("block", 1) > 1 else ""
            out.append(
                "- **the unstructured target, on the anchor's model and budget** (<= 1 point lost, >= 3x smaller "
                f"gzipped in float, >= 10x with int8; {_ok(ok_float and ok_int8)}): float "
                f"{100 * flt['val_drop']:+.1f} pts, {flt['gzip_dense'] / flt['gzip_pruned']:.2f}x {_ok(ok_float)}; "
                f"int8{runs} {100 * best['val_drop']:+.1f} pts, "
                f"{best['gzip_dense_float'] / best['gzip_pruned']:.1f}x vs float dense {_ok(ok_int8)}."
            )
    for task in ("classification", "regression"):
        full = [m for m in results if m["task"] == task and len({r["method"] for r in m["rows"]}) == len(SCORES)]
        same = [r for m in full for r in m["rows"] if r["scope"] in (None, main)]
        if not full:
            continue
        unit = "pts" if task == "classification" else "MAE"
        scale = 100.0 if task == "classification" else 1.0
        for granularity in ("channel", "unstructured"):
            best: dict[str, int] = {}
            drops: dict[str, list[float]] = {meth: [] for meth in SCORES}
            for m in full:
                rows = [
                    r
                    for r in m["rows"]
                    if r in same and r["granularity"] == granularity and r["quantization"] == "none"
                ]
                if not rows:
                    continue
                low = min(r["val_drop"] for r in rows)
                for r in rows:
                    drops[r["method"]].append(scale * r["val_drop"])
                    if r["val_drop"] == low:
                        best[r["method"]] = best.get(r["method"], 0) + 1
            fmt = "{:+.1f}" if task == "classification" else "{:+.4f}"
            out.append(
                f"- **scores, {granularity} ({', '.join(m['model'] for m in full)})**: best or tied-best val "
                + ", ".join(f"{k} {best.get(k, 0)}/{len(full)}" for k in SCORES)
                + f"; mean drop ({unit}) "
                + ", ".join(f"{k} {fmt.format(float(np.mean(v)))}" for k, v in drops.items())
                + "."
            )
    return out


def write_docs(results: list[dict[str, Any]], cmd: str, total_s: float, load: tuple[float, float]) -> None:
    models = "\n".join(f"- `{m['model']}`: {m['what']}; trained in {m['train_s']:.0f} s." for m in results)
    text = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{cmd}` — run {datetime.date.today().isoformat()} at commit {_commit()} (with the "
            "working tree's uncommitted changes) on this machine "
            f"({os.cpu_count()} cores, no GPU, {platform.machine()}, Python {platform.python_version()}, "
            f"TF {_version('tensorflow')}, Keras {keras.__version__}, LiteRT {_version('ai_edge_litert')}); "
            f"total {total_s / 60:.1f} min (1-min load average {load[0]:.1f} at start, {load[1]:.1f} at end: "
            "other benchmarks may share the 2 cores).",
            "",
            "Every row is one `pruning.run.run()` against its dense model, in the same run, seed 0. Dense models "
            "(Adam 3e-3, batch 64):",
            "",
            models,
            "",
            "Settings: `channel` removes 50% of the channels of every prunable group in one shot, then "
            f"{CHANNEL['epochs']} epochs of fine-tuning (5 in the previous run of this table). `unstructured` "
            "zeroes 80% of the kernels' weights with one "
            f"{UNSTRUCTURED['scope']} threshold over a 5-round polynomial (cubic) schedule with 1 epoch of "
            "fine-tuning per round (5 epochs in all, the anchor's budget); the per-layer row is beside it. "
            f"Fine-tuning: Adam {FINETUNE['learning_rate']:g}, batch 64. The engine, since the previous run of "
            "this table: a global threshold ranks LAMP scores (each weight's squared score over the sum of "
            "the squared scores not below it in its layer; Lee et al. 2021), so layers are comparable and none "
            "is emptied; magnitude scores see each kernel through the BatchNorm that follows it (times "
            "|gamma|/sqrt(var+eps), the factor the export folds in); BatchNorm moving statistics are "
            "re-estimated (a plain average over 2,048 training samples, whatever the momentum) after each cut "
            "and after each round of fine-tuning. "
            "The bench's fine-tuning rate went from 1e-3 to 3e-3 (the rate the dense models were trained at). "
            f"{FOCUSED} "
            "Drops are in accuracy points on the validation split (the engine's headline; about 270 samples, "
            "so 1 sample = 0.37 pts) and on the held-out test split (about 270 digits, 450 HAR windows); for "
            "the autoencoder they are the increase in reconstruction MAE. The int8 rows' accuracies are those "
            "of the int8 `.tflite` itself. Latency: LiteRT (XNNPACK) on the host, 1 thread; 'interleaved' is "
            f"our re-measurement, {LATENCY_ROUNDS} rounds of {LATENCY_RUNS} runs, dense and pruned alternating, "
            "median of the medians; the engine's own figure (median of 50 runs each) is beside it, and in "
            "brackets for unstructured rows, which a dense runtime does not speed up. 'TFLite Micro' times the "
            "same two files with TFLite Micro's interpreter (LiteRT for Microcontrollers, its reference kernels, "
            f"the runtime of the watch- and band-class targets) on the host, {MICRO_ROUNDS} rounds of "
            f"{MICRO_RUNS} runs, alternating, median of the medians, in a child process. Every export "
            "rewrites EXPAND_DIMS as RESHAPE (`pruning.export.expand_dims_as_reshape`): XNNPACK does not take "
            "EXPAND_DIMS, so each 1D layer split the graph into another delegate partition with a builtin op "
            "between them (dense and pruned are exported the same way). Sizes are the gzipped "
            "`.tflite` (level 9); the int8 rows compare against the float dense model and the int8 dense model. "
            "Wall time is the whole `run()` (scoring, pruning, fine-tuning, evaluation, two exports, two latency "
            "measurements). The three scores are compared on the three small classifiers; the MLPerf Tiny "
            "models run magnitude only, to keep the run near 20 minutes.",
            "",
            "Caveats. The bench sets `TF_ENABLE_ONEDNN_OPTS=0`: with TF 2.21's oneDNN ops on, training a "
            "1x1 stride-2 `Conv2D` on an 8-channel input corrupts the heap (`free(): invalid pointer`, then "
            "abort or segfault) on this CPU, which is what 50% channel removal makes of ResNet-8's shortcut, so "
            "the engine's fine-tuning of that model killed the process (`pruning/__init__.py` now sets the same "
            "default on import). The bench-trained models with "
            "BatchNorm use momentum 0.9, since with 0.99 a few hundred training steps leave the moving "
            "statistics near their initial values (ResNet-8 30%, DS-CNN 18% validation accuracy). The HAR data "
            "is synthetic. MobileNetV1 runs at 32x32, not 96x96 (at 48x48 one unstructured row took up to "
            "150 s), on digits as a 10-class task, not person detection. The dense models are trained briefly, "
            "so the fine-tuning after pruning is extra training: negative drops (gains), as on the DS-CNN, say "
            "the dense model was under-trained, not that pruning helps. The previous run's global threshold "
            "compared raw kernel magnitudes across layers; on the DS-CNN its 80% cut kept 1 of the 2,560 "
            "weights of the first convolution and 0-6 of the 576 of each depthwise kernel, which is why its "
            "global rows fell to chance; LAMP scores keep every layer's best weights. The `runs of 4` int8 "
            "rows keep or drop 4 consecutive input weights of a kernel together (`block: 4` in the job spec, "
            "`shears prune --block 4`): in TFLite's layout those are adjacent bytes, and gzip compresses "
            "runs of zeros far better than scattered ones (80% scattered zeros cost about 0.6 bit per weight "
            "for their positions, and DEFLATE does worse than that).",
            "",
            table(results),
            "",
            "Verdicts (magnitude score, the default; classification models):",
            "",
            *verdicts(results),
            "",
            f"Anchor: {TFMOT_ANCHOR}.",
            "",
            *([READING, ""] if READING else []),
        ]
    )
    write_section(SECTION, text)


def _commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module.replace("_", "-"))
    except PackageNotFoundError:
        return "?"
