"""Latency-budget search against a uniform channel cut at the same estimated latency (issue 7).

    .venv/bin/python bench/latency_search.py                    # both models, writes docs/benchmarks.md's section
    .venv/bin/python bench/latency_search.py --models har_cnn --no-docs

For each model (trained here, fixed seeds, the same builders as bench/engine.py), the budget is 50% of
the dense model's estimated latency on `cortex-a53-1200mhz` (estimated from its exported .tflite):

- **search**: `pruning.run.run()` with `target: {latency_ms, device}` (pruning/latency_search.py: NetAdapt-
  style rounds of per-group proposals, each fine-tuned on a few hundred samples and compared on a hold-out
  of the training split), then `EPOCHS` epochs of fine-tuning.
- **uniform**: the same fraction of every prunable channel group removed (magnitude scores, the engine's
  `channel` granularity), the fraction bisected until the per-layer estimate is within the budget, then
  `run()` with that sparsity and the same `EPOCHS` epochs of fine-tuning.

Both rows' latency is the estimate of the exported .tflite in the engine's report; accuracy is the
validation split (the report's headline) with the held-out test split beside it. The search also trains
during the search (its proposals' short fine-tunes); the table states how many samples that was.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import io
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402

from bench.common import markdown, write_section  # noqa: E402
from bench.engine_harness import MODELS  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import export  # noqa: E402
from pruning.estimate import estimate  # noqa: E402
from pruning.estimate.keras_model import estimate_keras_ms  # noqa: E402
from pruning.loading import load_model  # noqa: E402
from pruning.run import run  # noqa: E402
from pruning.spec import PruneSpec  # noqa: E402
from pruning.strategies import ChannelPruner  # noqa: E402

SECTION = "## Latency-budget search (issue 7)"
DEVICE = "cortex-a53-1200mhz"
BUDGET_SHARE = 0.5
EPOCHS = 3
SEARCH_SAMPLES = 384
COMMON = {"granularity": "channel", "method": "magnitude", "learning_rate": 1e-3, "batch_size": 64, "seed": 0}


def _quiet_export(model: keras.Model) -> bytes:
    with contextlib.redirect_stdout(io.StringIO()):
        return export.to_tflite(model, "none")


def uniform_fraction(model: keras.Model, data: Any, budget: float) -> tuple[float, float]:
    """The smallest per-group channel fraction whose cut is within `budget` (per-layer estimate)."""
    profile = get_profile(DEVICE)
    pruner = ChannelPruner(model, data, "sparse_categorical_crossentropy", "magnitude")

    def ms(fraction: float) -> float:
        return estimate_keras_ms(pruner.prune(model, fraction), profile)

    lo, hi = 0.0, 0.95
    if ms(hi) > budget:
        raise SystemExit(f"a uniform cut of {hi:.0%} does not reach {budget:.4f} ms")
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ms(mid) <= budget else (mid, hi)
    return hi, ms(hi)


def _row(name: str, method: str, rep: dict[str, Any], wall: float, extra: dict[str, Any]) -> dict[str, Any]:
    metrics = rep["metrics"]
    entry = next(e for e in rep["latency"] if e["device"] == DEVICE)
    return {
        "model": name,
        "method": method,
        "estimate_ms": entry["estimate_ms"],
        "dense_ms": next(e for e in rep["baseline"]["latency"] if e["device"] == DEVICE)["estimate_ms"],
        "val_before": metrics["before"]["val"]["accuracy"],
        "val_after": metrics["after"]["val"]["accuracy"],
        "test_before": metrics["before"]["test"]["accuracy"],
        "test_after": metrics["after"]["test"]["accuracy"],
        "macs_kept": rep["macs"]["after"] / rep["macs"]["before"],
        "params_kept": rep["params"]["after"] / rep["params"]["before"],
        "wall_s": wall,
        **extra,
    }


def bench_model(name: str, workdir: Path) -> dict[str, Any]:
    keras.backend.clear_session()
    gc.collect()
    t0 = time.perf_counter()
    model, data, what = MODELS[name][0]()
    train_s = time.perf_counter() - t0
    path = workdir / f"{name}.keras"
    model.save(path)
    dense_ms = estimate(_quiet_export(model), get_profile(DEVICE))["estimate_ms"]
    budget = round(BUDGET_SHARE * dense_ms, 4)
    print(f"\n== {name}: {what} (trained in {train_s:.0f} s); dense {dense_ms:.4f} ms, budget {budget} ms", flush=True)
    rows = []

    start = time.perf_counter()
    spec = PruneSpec(latency_ms=budget, device=DEVICE, epochs=EPOCHS, search_samples=SEARCH_SAMPLES, **COMMON)
    with contextlib.redirect_stdout(io.StringIO()):
        rep = run(path, data, spec, workdir / f"{name}-search", log=lambda m: print("  " + m, file=sys.stderr))
    found = rep.report["latency_search"]
    proposals = sum(r["proposals"] for r in found["rounds"])
    search_extra = {
        "met": found["met"],
        "rounds": len(found["rounds"]),
        "proposals": proposals,
        "search_samples": proposals * found["proposal_finetune_samples"],
        "search_s": found["wall_s"],
        "path": [f"{r['group']} -{r['channels_removed']}" for r in found["rounds"]],
        "note": found["note"],
    }
    rows.append(_row(name, "search", rep.report, time.perf_counter() - start, search_extra))
    print("  " + json.dumps({k: v for k, v in rows[-1].items() if k != "path"}), flush=True)

    start = time.perf_counter()
    fraction, _ = uniform_fraction(load_model(path), data, budget)
    # Then a control: the uniform cut given as much training as the search used in all (its proposals'
    # short fine-tunes included), so the comparison is not only "more training wins".
    matched = EPOCHS + math.ceil(search_extra["search_samples"] / len(data.x_train))
    for label, epochs, folder in (
        ("uniform", EPOCHS, "uniform"),
        ("uniform, matched training", matched, "uniform-matched"),
    ):
        spec = PruneSpec(sparsity=fraction, epochs=epochs, devices=("host", DEVICE), **COMMON)
        with contextlib.redirect_stdout(io.StringIO()):
            rep = run(path, data, spec, workdir / f"{name}-{folder}")
        extra = {"fraction": fraction, "met": None, "search_samples": 0, "epochs": epochs}
        rows.append(_row(name, label, rep.report, time.perf_counter() - start, extra))
        rows[-1]["met"] = rows[-1]["estimate_ms"] <= budget
        print("  " + json.dumps(rows[-1]), flush=True)
        start = time.perf_counter()
    return {"model": name, "what": what, "train_s": train_s, "dense_ms": dense_ms, "budget_ms": budget, "rows": rows}


def extra_training(r: dict[str, Any]) -> str:
    return f"{r['search_samples']} samples ({r['proposals']} proposals)" if r["search_samples"] else "-"


def table(results: list[dict[str, Any]]) -> str:
    header = [
        "model",
        "method",
        f"est. ms on {DEVICE} (budget)",
        "val acc before",
        "val acc after",
        "drop (pts)",
        "test acc after",
        "MACs kept",
        "extra training in the search",
        "wall s",
    ]
    rows = []
    for m in results:
        for r in m["rows"]:
            how = (
                f"search, {r['rounds']} rounds, {EPOCHS} epochs"
                if r["method"] == "search"
                else f"{r['method']}: {r['fraction']:.1%} of every group, {r.get('epochs', EPOCHS)} epochs"
            )
            rows.append(
                [
                    m["model"],
                    how,
                    f"{r['estimate_ms']:.4f} ({m['budget_ms']:.4f}){'' if r['met'] else ' MISSED'}",
                    f"{r['val_before']:.1%}",
                    f"{r['val_after']:.1%}",
                    f"{100 * (r['val_before'] - r['val_after']):+.1f}",
                    f"{r['test_after']:.1%}",
                    f"{r['macs_kept']:.0%}",
                    extra_training(r),
                    f"{r['wall_s']:.0f}",
                ]
            )
    return markdown(header, rows)


def document(results: list[dict[str, Any]], command: str, total_s: float) -> str:
    verdicts = []
    for m in results:
        s, u, *matched = m["rows"]
        gain = 100 * (s["val_after"] - u["val_after"])
        verdicts.append(
            f"- **{m['model']}**: search {s['val_after']:.1%} vs uniform {u['val_after']:.1%} on val "
            f"({gain:+.1f} pts; test {s['test_after']:.1%} vs {u['test_after']:.1%}) at {s['estimate_ms']:.4f} vs "
            f"{u['estimate_ms']:.4f} ms: target (search keeps more accuracy) "
            f"{'met' if s['val_after'] > u['val_after'] else 'MISSED'}"
            + (
                f"; uniform with matched training ({matched[0]['epochs']} epochs) {matched[0]['val_after']:.1%} "
                f"({100 * (s['val_after'] - matched[0]['val_after']):+.1f} pts for the search)"
                if matched
                else ""
            )
            + f". Search path: {', '.join(s['path'])}."
        )
    models = "\n".join(f"- `{m['model']}`: {m['what']}; dense {m['dense_ms']:.4f} ms estimated" for m in results)
    return f"""{SECTION}

`{command}` ({datetime.date.today().isoformat()}, {platform.machine()}, shared 2-core machine; {total_s / 60:.1f} min)

Budget: {BUDGET_SHARE:.0%} of the dense model's estimated latency on `{DEVICE}` (LiteRT + XNNPACK,
float32 export, the per-op estimator of pruning/estimate). **search** = `target: {{latency_ms, device}}`
(pruning/latency_search.py, NetAdapt-style: per round, one proposal per prunable channel group cutting
its lowest-magnitude channels until the estimate drops by the round's step, each fine-tuned on
{SEARCH_SAMPLES} training samples and compared on a hold-out of the training split; the proposal losing
the least accuracy per ms saved is kept). **uniform** = the same fraction of every prunable group (the
engine's `channel` granularity, magnitude scores), the fraction bisected to the largest latency within
the budget. Then both get the same {EPOCHS} epochs of fine-tuning (Adam 1e-3) in `run()`. Latency is
the estimate of each exported `.tflite` in the engine's report; accuracy is the validation split (the
test split beside it).

{models}

{table(results)}

{chr(10).join(verdicts)}

Reading: the search is a greedy, per-group choice measured on a small hold-out after a short fine-tune, so it
can be fooled by noise on small sets; it also trains more than the uniform cut (the proposals' short fine-tunes,
column "extra training"), which is part of its cost (wall time) and part of why it can keep more accuracy. The
uniform row is bisected on the same per-layer estimate, so both rows sit at or just under the same budget. These
are small models trained briefly on built-in data (digits upsampled for the MobileNet; synthetic HAR), so the
absolute accuracies say little beyond the comparison.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vww_mobilenet_v1", "har_cnn"], choices=sorted(MODELS))
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--json", type=Path, help="Also keep the raw results here.")
    parser.add_argument("--docs-from", type=Path, help="Write the docs section from a --json file of an earlier run.")
    args = parser.parse_args()
    command = "python bench/latency_search.py " + shlex.join(sys.argv[1:])
    if args.docs_from:
        saved = json.loads(args.docs_from.read_text())
        if isinstance(saved, list):  # the first format: results only; the time is the sum of the parts
            saved = {
                "command": "python bench/latency_search.py --no-docs --json PATH, then --docs-from PATH",
                "total_s": sum(m["train_s"] + sum(r["wall_s"] for r in m["rows"]) for m in saved),
                "results": saved,
            }
        results, command, total = saved["results"], saved["command"], saved["total_s"]
    else:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="shears-bench-latency-") as tmp:
            results = [bench_model(name, Path(tmp)) for name in args.models]
        total = time.perf_counter() - started
    print("\n" + table(results))
    if args.json:
        args.json.write_text(json.dumps({"command": command.strip(), "total_s": total, "results": results}, indent=2))
    if not args.no_docs:
        write_section(SECTION, document(results, command.strip(), total))
        print(f"wrote {SECTION!r} to docs/benchmarks.md")


if __name__ == "__main__":
    main()
