"""Channel 50% recovery variants on the TUNING models only (issue 13, "pruning that holds on held-out models").

    .venv/bin/python bench/channel_recovery.py --models vww_mobilenet_v1 --variants one_shot:3 polynomial:3
    .venv/bin/python bench/channel_recovery.py --render     # the table into docs/benchmarks.md

Models: digits16_cnn, ic_resnet8, kws_dscnn, vww_mobilenet_v1 of bench/engine_harness.py (the models the
engine is tuned on). bench/heldout.py's models are NOT run here: defaults are chosen on these rows, then
the held-out rows are run once with the chosen engine.

Each variant is SCHEDULE:EPOCHS[:kd][:xK] through pruning.run.run with the engine's recipe (no learning
rate set: the model's own compiled optimizer, rewound, warm-up + cosine): SCHEDULE `one_shot` (the whole
50% at once) or `polynomial` (cubic, one round per epoch up to 5 rounds, each round re-scored,
recalibrated and fine-tuned); EPOCHS a number or `default` (pruning.recipe chooses and stops early); `kd`
turns on distillation from the dense model; `xK` fine-tunes at K times the compiled rate
(pruning.recipe.CHANNEL_RATE_SCALE; without `xK` the rate is 1x, the engine before this bench); `lagstop`
judges early stopping on the moving BatchNorm statistics as they are (the engine before this bench) instead
of recalibrating them first (pruning.finetune.RECALIBRATE_BEFORE_STOP). One dense model per model and
process, shared by its variants.

What was tried (issue 13, all on these models; figures in docs/benchmarks.md, "Channel recovery on the
tuning models"):
- one shot vs polynomial (gradual removal over rounds): vww_mobilenet_v1 lost 47.2 / 42.4 points at 3
  epochs, 40.1 / 35.7 at 5: the first round's 35% cut already leaves it at chance;
- soft fading (the doomed channels' input slices scaled linearly to zero while the dense model trains,
  then removed; pruning/fade.py, a prototype not wired into the engine): worse than one shot on
  vww_mobilenet_v1 at 3 epochs (fading over 1, 2, 3 of the 3 epochs: 56.5, 47.6, 59.9 points lost against
  44.2 for one shot in the same script), because fading half the channels in 20-60 steps is as abrupt;
- distillation (`kd`): 45.7 against 47.2 on vww_mobilenet_v1 at 3 epochs (and worse on the three others
  in bench/recovery.py's earlier run);
- channel scores: right after a 50% cut and BatchNorm recalibration, vww_mobilenet_v1 is at chance with
  magnitude (10.8%), gradient (10.4%) and activation (12.3%) scores alike;
- the learning rate (`x3`, `x10`): the winner, see the table; 3x became the engine's default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine_harness.py
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import markdown, write_section  # noqa: E402
from bench.engine_harness import MODELS as HARNESS  # noqa: E402
from pruning import finetune, recipe  # noqa: E402
from pruning.run import run  # noqa: E402
from pruning.spec import PruneSpec  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "channel_recovery"
SECTION = "## Channel recovery on the tuning models (issue 13)"
TUNING = ("digits16_cnn", "ic_resnet8", "kws_dscnn", "vww_mobilenet_v1")
VARIANTS = ("one_shot:3", "polynomial:3", "one_shot:5", "polynomial:5", "one_shot:default", "polynomial:default")


READING = "Reading: see the module docstring of bench/channel_recovery.py."


def bench_model(name: str, variants: list[str]) -> list[dict[str, Any]]:
    model, data, what = HARNESS[name][0]()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        for variant in variants:
            schedule, budget, *extra = variant.split(":")
            epochs = None if budget == "default" else int(budget)
            scale = [float(e[1:]) for e in extra if e.startswith("x")]
            recipe.CHANNEL_RATE_SCALE = scale[0] if scale else 1.0
            finetune.RECALIBRATE_BEFORE_STOP = "lagstop" not in extra
            spec = PruneSpec(granularity="channel", sparsity=0.5, schedule=schedule, epochs=epochs, seed=0,
                             distill=True if "kd" in extra else None)  # fmt: skip
            started = time.perf_counter()
            report = run(path, data, spec, Path(tmp) / variant.replace(":", "-")).report
            row = {
                "model": name,
                "variant": variant,
                "rounds": spec.steps,
                "epochs_trained": sum(len(r["train_loss"]) for r in report["schedule"]["rounds"]),
                "before": report["accuracy"]["before"],
                "after": report["accuracy"]["after"],
                "drop_points": 100 * (report["accuracy"]["before"] - report["accuracy"]["after"]),
                "round_drops": [round(100 * r["drop"], 1) for r in report["schedule"]["rounds"]],
                "macs_kept": report["macs"]["after"] / report["macs"]["before"],
                "wall_s": time.perf_counter() - started,
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def render() -> str:
    rows = [r for f in sorted(RESULTS.glob("*.json")) for r in json.loads(f.read_text())]
    order = {v: i for i, v in enumerate(VARIANTS)}
    rows.sort(
        key=lambda r: (TUNING.index(r["model"]), r["variant"].split(":")[1], order.get(r["variant"], 99), r["variant"])
    )
    table = [
        [r["model"], r["variant"], f"{100 * r['before']:.1f}", f"{r['drop_points']:+.1f}", r["epochs_trained"],
         " / ".join(f"{d:+.1f}" for d in r["round_drops"]), f"{r['wall_s']:.0f}"]
        for r in rows
    ]  # fmt: skip
    header = ["model", "variant", "dense acc %", "drop (pts)", "epochs run", "drop after each round", "wall s"]
    return "\n".join(
        [
            SECTION,
            "",
            "Command: `.venv/bin/python bench/channel_recovery.py --models <m> --variants <v...>`, then `--render`.",
            "Validation accuracy drop in points after a 50% channel cut (lower is better). Variant",
            "SCHEDULE:EPOCHS[:kd][:xK]: `xK` fine-tunes at K times the model's compiled rate (Adam 3e-3 for all",
            "four; no `xK` is 1x, the engine before this change), `kd` distils from the dense model. A model's",
            "variants share one dense model when run in one process; dense training is not repeatable across",
            "processes (vww_mobilenet_v1 came out at 81.0% or 88.5%), so compare rows with the same dense",
            "accuracy. TUNING models only: a training score.",
            "",
            markdown(header, table),
            "",
            READING,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], choices=TUNING)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        rows = bench_model(name, args.variants)
        path = RESULTS / f"{name}.json"
        if path.exists():
            fresh = {r["variant"] for r in rows}
            rows = [r for r in json.loads(path.read_text()) if r["variant"] not in fresh] + rows
        path.write_text(json.dumps(rows, indent=1))
    if args.render:
        write_section(SECTION, render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
