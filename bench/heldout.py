"""Held-out engine benchmark (issue 13): models and data the engine's defaults were NOT chosen on.

    .venv/bin/python bench/heldout.py --models wide_cnn            # one model, all its rows -> bench/results/heldout/
    .venv/bin/python bench/heldout.py --models ds_cnn --only channel --epochs 3   # re-run some rows only
    .venv/bin/python bench/heldout.py --render                     # the table into docs/benchmarks.md

HELD OUT (declared in this file before any default of pruning/recipe.py was measured; nothing here
may be used to choose a default, threshold or constant):
- `nested_mobilenetv2`: keras.applications.MobileNetV2 alpha 0.35 (include_top=False, weights=None)
  nested in a Sequential with GlobalAveragePooling2D + Dense, 32x32x3;
- `mobilenetv3small`: keras.applications.MobileNetV3Small (include_top=False, weights=None) nested the
  same way, 32x32x3 (squeeze-excite, hard-swish);
- `wide_cnn`: three 3x3 convolutions of 128 filters, digits at 16x16 (the model of the issue);
- `conv1d_gru`: Conv1D x2 + GRU(32) on wrist-sensor windows (HAR generated with seed 7, not the
  seed-0 set of bench/engine.py);
- `ds_cnn`: the MLPerf Tiny DS-CNN on synthetic keyword "spectrograms" (12 classes, 49x10, noise 0.9),
  not the HAR frames of bench/engine.py.
The 32x32x3 images are the built-in digits upsampled x4 with a random colour per image and pixel
noise (bench/engine.py uses them grey and clean).

Rows per model: channel 50% and unstructured 80%, each with the default budget (no `finetune`
settings: pruning.recipe chooses), 3 epochs and 5 epochs. Per row: the validation accuracy drop,
the measured LiteRT speedup (1 thread, dense and pruned interleaved), the from-scratch control for
channel rows (the same thinned architecture, re-initialised, trained for the same epochs with the same
optimizer and schedule on the labels: Liu et al. 2019) and the engine's wall time.
Targets: channel 50% default <= 1 point at >= 1.8x; 3 epochs <= 2 points; unstructured 80% with 5
epochs <= 1 point; pruning beats from-scratch on every channel row.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine.py
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import markdown, write_section  # noqa: E402
from bench.engine_harness import _train, upsample  # noqa: E402
from bench.engine_latency import interleaved_latency  # noqa: E402
from pruning import architectures, export, schedule  # noqa: E402
from pruning.control import from_scratch  # noqa: E402
from pruning.datasets import Data, digits, har  # noqa: E402
from pruning.recipe import Recipe  # noqa: E402
from pruning.run import run  # noqa: E402
from pruning.spec import PruneSpec  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "heldout"
PAIRED = ROOT / "bench" / "results" / "heldout_paired"
SECTION = "## Held-out engine benchmark (issue 13)"
SEED = 0
L = keras.layers
ROWS = [(g, s, e) for g, s in (("channel", 0.5), ("unstructured", 0.8)) for e in (None, 3, 5)]


def colour_digits(size: int = 32) -> Data:
    """Digits upsampled to `size`, each image tinted a random colour, with pixel noise."""
    base = upsample(digits(), size // 8, channels=3, name=f"builtin:digits {size}x{size}x3, colour + noise")
    rng = np.random.default_rng(7)

    def tint(x: np.ndarray | None) -> np.ndarray | None:
        if x is None:
            return None
        colour = rng.uniform(0.3, 1.0, (len(x), 1, 1, 3)).astype(np.float32)
        return np.clip(x * colour + rng.normal(0, 0.1, x.shape).astype(np.float32), 0, 1)

    return Data(tint(base.x_train), base.y_train, tint(base.x_val), base.y_val, None, None, name=base.name)


def keywords(n: int = 3000, classes: int = 12, noise: float = 0.9) -> Data:
    """Synthetic keyword 'spectrograms' (49 frames x 10 bins): a smooth pattern per class, shifted in
    time by up to 8 frames, scaled, with Gaussian noise. Generated, not recorded."""
    rng = np.random.default_rng(11)
    patterns = rng.normal(size=(classes, 49, 10))
    kernel = np.ones(5) / 5
    patterns = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 1, patterns)
    y = rng.integers(0, classes, n)
    shift = rng.integers(-8, 9, n)
    x = np.stack([np.roll(patterns[c], s, axis=0) for c, s in zip(y, shift, strict=True)])
    x = x * rng.uniform(0.7, 1.3, (n, 1, 1)) + rng.normal(0, noise, x.shape)
    x = x[..., None].astype(np.float32)
    cut = int(0.8 * n)
    return Data(x[:cut], y[:cut], x[cut:], y[cut:], name="synthetic keywords 49x10, 12 classes, noise 0.9")


def _nested(backbone: keras.Model, classes: int = 10) -> keras.Model:
    return keras.Sequential(
        [keras.Input(backbone.input_shape[1:]), backbone, L.GlobalAveragePooling2D(), L.Dense(classes, "softmax")]
    )


def nested_mobilenetv2() -> tuple[keras.Model, Data, int]:
    backbone = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None)
    return _nested(backbone), colour_digits(), 40


def mobilenetv3small() -> tuple[keras.Model, Data, int]:
    backbone = keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), include_top=False, weights=None, include_preprocessing=False
    )
    return _nested(backbone), colour_digits(), 40


def wide_cnn() -> tuple[keras.Model, Data, int]:
    model = keras.Sequential(
        [
            keras.Input((16, 16, 1)),
            L.Conv2D(128, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(128, 3, padding="same", activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(128, 3, padding="same", activation="relu"),
            L.GlobalAveragePooling2D(),
            L.Dense(10, activation="softmax"),
        ]
    )
    return model, upsample(digits(), 2, name="builtin:digits 16x16"), 15


def conv1d_gru() -> tuple[keras.Model, Data, int]:
    model = keras.Sequential(
        [
            keras.Input((128, 3)),
            L.Conv1D(32, 5, strides=2, padding="same", activation="relu"),
            L.Conv1D(32, 5, strides=2, padding="same", activation="relu"),
            L.GRU(32),
            L.Dense(6, activation="softmax"),
        ]
    )
    return model, har(seed=7), 15


def ds_cnn() -> tuple[keras.Model, Data, int]:
    return architectures.kws_dscnn(classes=12), keywords(), 15


MODELS = {f.__name__: f for f in (nested_mobilenetv2, mobilenetv3small, wide_cnn, conv1d_gru, ds_cnn)}


def bench_model(
    name: str,
    only: str | None = None,
    default_only: bool = False,
    fixed_only: bool = False,
    budgets: tuple[int, ...] = (),
) -> list[dict[str, Any]]:
    keras.utils.set_random_seed(SEED)
    model, data, epochs = MODELS[name]()
    for layer in model._flatten_layers():  # nested backbones too (keras.applications use momentum 0.999)
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    started = time.perf_counter()
    _train(model, data, epochs)
    trained_s = time.perf_counter() - started
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        dense_tflite = export.to_tflite(model)
        for granularity, sparsity, budget in ROWS:
            if (only is not None and granularity != only) or (default_only and budget is not None):
                continue
            if ((fixed_only or budgets) and budget is None) or (budgets and budget not in budgets):
                continue
            spec = PruneSpec(granularity=granularity, sparsity=sparsity, epochs=budget, seed=SEED)
            started = time.perf_counter()
            result = run(path, data, spec, Path(tmp) / f"{granularity}-{budget}")
            wall = time.perf_counter() - started
            report = result.report
            trained = sum(len(r["train_loss"]) for r in report["schedule"]["rounds"])
            row: dict[str, Any] = {
                "model": name,
                "granularity": granularity,
                "sparsity": sparsity,
                "budget": "default" if budget is None else f"{budget} epochs",
                "epochs_trained": trained,
                "schedule": f"{report['schedule']['kind']} x{report['schedule'].get('steps', 1)}"
                + (f", {report['pruning']['scope']}" if granularity == "unstructured" else ""),
                "finetune": report["finetune"],
                "before": report["accuracy"]["before"],
                "after": report["accuracy"]["after"],
                "drop_points": 100 * (report["accuracy"]["before"] - report["accuracy"]["after"]),
                "wall_s": wall,
                "dense_training_s": trained_s,
            }
            if granularity == "channel":
                row["latency"] = interleaved_latency(dense_tflite, result.tflite_path.read_bytes())
                pruned = keras.saving.load_model(result.keras_path, compile=False)
                recipe = Recipe(trained, report["finetune"]["learning_rate"], report["finetune"]["optimizer"], {},
                                report["finetune"]["schedule"], None, 0.0)  # fmt: skip
                xy = (data.x_train, data.y_train, data.x_val, data.y_val)
                loss = "sparse_categorical_crossentropy"
                batch = report["finetune"]["batch_size"]
                scratch = from_scratch(pruned, *xy, "classification", loss, recipe, trained, batch, SEED)
                row["scratch"] = scratch["accuracy"]
                row["pruning_wins_points"] = 100 * (row["after"] - row["scratch"])
            print(json.dumps({k: v for k, v in row.items() if k != "finetune"}), flush=True)
            rows.append(row)
    return rows


def paired_control(name: str) -> list[dict[str, Any]]:
    """Unstructured 80% with 3 and 5 epochs, equal rounds (pruning.schedule.RECOVERY_SHARE None, the engine
    before) and the default (0.5), on ONE dense model: a paired control for reporting, chosen on nothing."""
    keras.utils.set_random_seed(SEED)
    model, data, epochs = MODELS[name]()
    for layer in model._flatten_layers():
        if isinstance(layer, L.BatchNormalization):
            layer.momentum = 0.9
    _train(model, data, epochs)
    default_share, rows = schedule.RECOVERY_SHARE, []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.keras"
        model.save(path)
        for budget in (3, 5):
            for share in (None, default_share):
                schedule.RECOVERY_SHARE = share
                try:
                    spec = PruneSpec(granularity="unstructured", sparsity=0.8, epochs=budget, seed=SEED)
                    report = run(path, data, spec, Path(tmp) / f"{budget}-{share}").report
                finally:
                    schedule.RECOVERY_SHARE = default_share
                row = {"model": name, "budget": budget, "recovery_share": share,
                       "epochs_per_round": report["schedule"]["epochs_per_round"],
                       "before": report["accuracy"]["before"], "after": report["accuracy"]["after"],
                       "drop_points": 100 * (report["accuracy"]["before"] - report["accuracy"]["after"])}  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


READING = """Reading.
- Unstructured 3- and 5-epoch rows: re-run once (`--only unstructured --fixed-only`; default-budget rows
  not re-run, their engine is unchanged) after an engine change chosen on the tuning models alone
  (bench/unstructured_recovery.py, docs "Unstructured recovery on the tuning models"): an unstructured cut
  with set epochs gives its last round, at 80%, half of the epochs (5 epochs: rounds of 1, 1, 3 at 56, 77,
  80%, was 5 rounds of 1; 3 epochs: 1, 2 at 70, 80%, was 1, 1, 1). Points lost before -> now: ds_cnn 3
  epochs 9.0 -> 5.2, 5 epochs 6.0 -> 3.7; conv1d_gru 0.4 -> -0.2, 0.0 -> -0.7; wide_cnn -1.9 -> -2.2,
  -1.1 -> -3.0; nested_mobilenetv2 0.0 -> -1.1, -0.4 -> 0.0; mobilenetv3small -1.5 -> -1.1,
  +0.7 -> +0.0. But the dense
  models came out differently in this run (ds_cnn 94.0%, was 96.5%; nested_mobilenetv2 97.0%, was 92.2%),
  so these before -> now figures mix the change with the dense model. The paired control
  (`--paired-control ds_cnn`: both schedules on one dense model, 94.0%, results in
  bench/results/heldout_paired/) isolates it: equal rounds / half-epoch last round, 3 epochs +5.5 / +5.2,
  5 epochs +2.7 / +3.7 (6 samples worse). On the held-out ds_cnn the change does not help at 5 epochs, and the target
  (5 epochs: at most 1 point) is still missed there; it holds on the other four.
- Unstructured rows use the engine's defaults as of commit 571552f: a job that leaves `scope` and `schedule`
  unset gets one global threshold over LAMP scores and a 5-round polynomial schedule (fewer rounds when fewer
  epochs are set). These are the settings bench/engine.py (the tuning models) had measured; they were made the
  default BEFORE these rows were re-run, and nothing was changed after seeing them. With the old defaults (one
  shot, one threshold per layer) the 5-epoch rows lost: wide_cnn -3.0, conv1d_gru -1.1, ds_cnn +19.8,
  mobilenetv3small +12.6, nested_mobilenetv2 +61.3 points; now -1.1, +0.0, +6.0, +0.7, -0.4. The target
  (unstructured 80% with 5 epochs: at most 1 point) is met on 4 of 5; the DS-CNN misses it by 5 points.
- Default-budget unstructured rows: since 714a1b4 every round may stop early once back within the tolerance
  (before, only the last round could). Re-run with it (`--only unstructured --default-only`): wide_cnn 6
  epochs in 40 s (was 41 epochs, 555 s; -0.4 pts, was -2.2), conv1d_gru 8 epochs in 34 s (was 25, 92 s),
  ds_cnn 29 epochs (+2.8 pts, was +3.5); and (this session, `--models mobilenetv3small nested_mobilenetv2
  --only unstructured --default-only`) mobilenetv3small 6 epochs in 199 s (was 41 epochs, 537 s; -2.6 pts,
  was -1.9), nested_mobilenetv2 9 epochs in 226 s (was 41, 303 s; -2.6 pts, was -4.8). With the default
  budget the unstructured 80% cut is within 1 point on four of the five models (ds_cnn +2.8). All five
  default rows were run again (`--only unstructured --default-only`, idle host) after early stopping began
  to recalibrate BatchNorm before each check: the same epochs and drops on four (wide_cnn 6 epochs -0.4,
  conv1d_gru 8 -1.3, ds_cnn 29 +2.8, mobilenetv3small 6 -2.6), nested_mobilenetv2 7 epochs (was 9), -2.6;
  the table's wall times are this idle run's.
- Channel rows: re-run once (`--only channel`) after two engine changes chosen on the tuning models alone
  (bench/channel_recovery.py, docs "Channel recovery on the tuning models"): a channel cut fine-tunes at 3x
  an Adam model's compiled rate (9e-3 here), and early stopping recalibrates BatchNorm before each check
  (that one applies to unstructured default-budget rows too; they were not re-run).
  Before -> now, points lost: default budget nested_mobilenetv2 +2.6 (60 epochs) -> +0.4 (12),
  mobilenetv3small +2.2 (60) -> +0.4 (6), wide_cnn -1.1 -> +0.0, conv1d_gru +0.4 -> -0.9, ds_cnn +3.3 -> +0.8
  (40 epochs both); 3 epochs 55.0 -> 46.1, 7.4 -> 1.9, 0.4 -> 4.5, 3.1 -> 1.6, 5.0 -> 2.2; 5 epochs 46.5 ->
  27.9, 3.3 -> -1.5, -2.2 -> +0.4, 1.6 -> 0.7, 4.8 -> 2.5. Better on 12 of 15 rows; wide_cnn is worse on all
  three (default +0.0, was -1.1; 3 epochs +4.5, was +0.4; 5 epochs +0.4, was -2.2). Targets: default budget
  at most 1 point at >= 1.8x: met on 4 of 5 (was 1): conv1d_gru recovers (-0.9) but its GRU keeps it at
  1.19x; 3 epochs at most 2 points: met on mobilenetv3small (1.9) and conv1d_gru (1.6), missed on ds_cnn
  (2.2), wide_cnn (4.5) and nested_mobilenetv2 (46.1: its one-shot cut is at chance before training,
  bench/channel_diagnosis.py); pruning beats from-scratch on all 15 channel rows (ds_cnn's default row was
  -1.3, now +1.3).
  mobilenetv3small's speedups (6.2-7.3x) are not believable: its dense file measured 0.15-0.18 ms against
  0.072 ms in the previous run (pruned 0.024 against 0.029), with the 2-core host's load average above 5
  from other work; the previous run's 2.48x is the figure to use.
- All 15 channel rows: re-run once on 2026-12-07 (`--models wide_cnn nested_mobilenetv2 mobilenetv3small
  ds_cnn conv1d_gru --only channel`, 06:50-07:35 UTC, AMD EPYC, host load 2-4 on 2 cores) after one engine
  change chosen on the tuning models alone (bench/channel_recovery.py): a channel cut re-fits the layers
  reading cut channels by ridge least squares and folds BatchNorm (pruning/reconstruct.py). Points lost,
  before the re-fit -> with it (each process trains its own dense model): default budget wide_cnn +0.0 ->
  -0.7 (1 epoch), nested_mobilenetv2 +0.4 -> -2.2 (6 epochs, was 12), mobilenetv3small +0.4 -> +0.0 (8),
  conv1d_gru -0.9 -> -0.9 (4), ds_cnn +0.8 -> +2.5 (40); 3 epochs wide_cnn 4.5 -> -0.7, nested_mobilenetv2
  46.1 -> 14.1, mobilenetv3small 1.9 -> 0.4, conv1d_gru 1.6 -> -0.9, ds_cnn 2.2 -> 3.7; 5 epochs wide_cnn
  0.4 -> -1.5, nested_mobilenetv2 27.9 -> 2.2, mobilenetv3small -1.5 -> -1.1, conv1d_gru 0.7 -> -1.3,
  ds_cnn 2.5 -> 3.0. Better or equal on 12 of 15 rows, worse on ds_cnn's three (its pointwise layers are
  re-fitted; its depthwise ones stay as cut). Targets: default budget at most 1 point at >= 1.8x met on 3
  of 5 (conv1d_gru recovers but its GRU caps it at 1.21x; ds_cnn +2.5 at 2.68x); 3 epochs at most 2
  points met on 3 of 5 (missed: nested_mobilenetv2 14.1, ds_cnn 3.7); pruning beats from-scratch on 14 of
  15 rows, by 1.7-88.1 points; on ds_cnn's default row (40 epochs) scratch is 0.5 points better (95.0
  against 94.5%, 3 samples of 600). mobilenetv3small's speedups are 2.42-2.45x here (the 6.2-7.3x of the
  run before were load artefacts, see above). Nothing was tuned on these rows.
- conv1d_gru's three channel rows: re-run once on 2026-12-07 (`--models conv1d_gru --only channel`, 14:50-14:53
  UTC, AMD EPYC with AVX2, idle) after an export change decided on bench/recurrent_unroll.py (GRU, LSTM and
  SimpleRNN at 16-128 steps, not this model): float recurrent layers of at most 32 fixed steps are exported
  unrolled (pruning.export.UNROLL_STEPS; the report's `export` says so), since the WHILE loop's small ops cost
  the runtime's dispatch whatever their width. Speedup 1.21 / 1.20 / 1.20x -> 1.48 / 1.44 / 1.41x (default, 3,
  5 epochs); points lost -0.9 / -0.9 / -1.3 -> -0.2 / +0.7 / +0.4 against a dense model at 91.3% (was 90.4%;
  another process); from-scratch 84.9 / 79.6 / 84.9%, pruning wins by 6.0-11.1 points. The 1.8x target is
  still missed on this model: the unrolled GRU is 32 steps of ~17 small ops, most of its time.
- A batch of 16 for channel cuts (stop 28, 2026-12-07 18:28-18:46 UTC, AMD EPYC with AVX-512, two processes on
  2 cores): chosen on the tuning models (bench/channel_recovery.py `b16` rows: better or equal on 13 of 15
  pairs), then all 15 channel rows run once with it (`--models <m> --only channel`; rows kept in
  bench/results/heldout_batch16/, NOT in the table above, which is the engine as shipped: 64). Points lost at
  64 (table) -> 16, default / 3 / 5 epochs: nested_mobilenetv2 -2.2 / 14.1 / 2.2 -> -0.4 / 27.1 / 9.3 (dense
  90.7%); wide_cnn -0.7 / -0.7 / -1.5 -> -1.5 / -1.5 / -1.1; conv1d_gru -0.2 / +0.7 / +0.4 -> 0.0 / -1.1 /
  -0.9 (1.56-1.72x); mobilenetv3small 0.0 / 0.4 / -1.1 -> 0.4 / 0.4 / -1.1; ds_cnn 2.5 / 3.7 / 3.0 -> 0.8 /
  1.2 / 1.2 (dense 96.8%). Targets with 16: default <= 1 point at >= 1.8x on 4 of 5 (was 3: ds_cnn now
  meets it), 3 epochs <= 2 points on 4 of 5 (was 3: ds_cnn meets it, nested_mobilenetv2 misses by more);
  but the from-scratch control, trained at the same batch, beat pruning on 3 rows (wide_cnn default and 5
  epochs by 0.7, mobilenetv3small default by 0.4; was 1 row), and the transfer-learning MobileNetV2 lost 13
  and 7 points more at 3 and 5 epochs. Summed over the 15 rows, 32.8 points lost against 20.6 at 64. Not
  kept: the batch stays the job's (64 by default). Single seed and another dense model per process, so the
  per-row differences are partly noise; the decision is the held-out set's, made once, on all 15 rows.
- The dense accuracy differs between a model's channel and unstructured rows: they come from different runs,
  and training the dense model is not bit-for-bit repeatable across processes; each drop is against its own
  dense model. The nested MobileNets' channel rows were re-run after a fix they prompted (an earlier
  session), so they are not strictly held out; the channel rows' first run in this session crashed in this
  file (a one-shot report has no `steps`) before printing any figure, and was started again. Single seed;
  wall time on a 2-core machine shared with other work.
"""


def render() -> str:
    rows = [r for f in sorted(RESULTS.glob("*.json")) for r in json.loads(f.read_text())]
    rows.sort(key=lambda r: (r["model"], r["granularity"], ("default", "3 epochs", "5 epochs").index(r["budget"])))
    table = [
        [
            r["model"],
            f"{r['granularity']} {r['sparsity']:.0%}",
            r["budget"],
            r.get("schedule", "one_shot x1, per_layer" if r["granularity"] == "unstructured" else "one_shot x1"),
            r["epochs_trained"],
            f"{100 * r['before']:.1f}",
            f"{r['drop_points']:+.1f}",
            f"{r['latency']['speedup']:.2f}x" if "latency" in r else "-",
            f"{100 * r['scratch']:.1f}" if "scratch" in r else "-",
            f"{r['pruning_wins_points']:+.1f}" if "scratch" in r else "-",
            f"{r['wall_s']:.0f}",
        ]
        for r in rows
    ]
    header = ["model", "cut", "budget", "schedule", "epochs run", "dense acc %", "drop (pts)", "speedup",
              "scratch acc %", "pruning - scratch (pts)", "wall s"]  # fmt: skip
    command = "for m in " + " ".join(MODELS) + "; do .venv/bin/python bench/heldout.py --models $m; done"
    return "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}` then `.venv/bin/python bench/heldout.py --render`.",
            "Models, data and targets are declared in bench/heldout.py's docstring; none of them was used to",
            "choose a default. Accuracy is the validation split. Speedup: LiteRT, 1 thread, interleaved medians.",
            "",
            markdown(header, table),
            "",
            READING,
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], choices=sorted(MODELS))
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--default-only", action="store_true", help="re-run only the default-budget rows")
    parser.add_argument("--fixed-only", action="store_true", help="re-run only the 3- and 5-epoch rows")
    parser.add_argument(
        "--paired-control", nargs="*", default=[], choices=sorted(MODELS),
        help="unstructured 3/5 epochs, equal rounds vs the default split, on one dense model (not in the table)",
    )  # fmt: skip
    parser.add_argument(
        "--only", choices=("channel", "unstructured"), help="re-run only these rows; the model's other rows are kept"
    )
    parser.add_argument("--epochs", type=int, nargs="*", choices=(3, 5), help="re-run only the rows of these epochs")
    args = parser.parse_args()
    for name in args.paired_control:
        PAIRED.mkdir(parents=True, exist_ok=True)
        (PAIRED / f"{name}.json").write_text(json.dumps(paired_control(name), indent=1))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        rows = bench_model(name, args.only, args.default_only, args.fixed_only, tuple(args.epochs or ()))
        path = RESULTS / f"{name}.json"
        if (args.only or args.default_only or args.fixed_only or args.epochs) and path.exists():
            fresh = {(r["granularity"], r["budget"]) for r in rows}
            rows = [r for r in json.loads(path.read_text()) if (r["granularity"], r["budget"]) not in fresh] + rows
        path.write_text(json.dumps(rows, indent=1))
        print(f"wrote {RESULTS / f'{name}.json'} ({shlex.join(sys.argv)})")
    if args.render:
        write_section(SECTION, render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
