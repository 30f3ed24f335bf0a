"""`run(model, data, spec, progress) -> Result`: load, score, prune, fine-tune, export, profile."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError
from pruning import export, metrics, plots, schedule, stream
from pruning.checkpoint import Checkpoints
from pruning.control import from_scratch, verdict
from pruning.counting import count_layers, total_macs
from pruning.datasets import Data
from pruning.estimate import job_devices, profile_tflite
from pruning.finetune import Distilled, finetune, teacher_targets, write_tensorboard
from pruning.latency_search import search_latency
from pruning.loading import load_model, resolve_loss
from pruning.nesting import flatten
from pruning.recipe import DISTILL_TEMPERATURE, choose
from pruning.report import agreement, resources, sizes, sparsity_block, write_report
from pruning.shipping import ship
from pruning.spec import PruneSpec
from pruning.strategies import ChannelPruner, Snapshot, make_pruner

ProgressFn = Callable[[str, float], None]
LogFn = Callable[[str], None]

# Where each stage sits on the job's 0..1 progress bar.
STAGES = {
    "loading": (0.0, 0.05),
    "scoring": (0.05, 0.1),
    "pruning": (0.1, 0.15),
    "finetuning": (0.15, 0.8),
    "converting": (0.8, 0.9),
    "profiling": (0.9, 1.0),
}


@dataclass
class Result:
    tflite_path: Path
    keras_path: Path
    report: dict[str, Any]


class _Stages:
    """Reports stage and progress, and times each stage."""

    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.perf_counter()

    def enter(self, stage: str, within: float = 0.0) -> None:
        now = time.perf_counter()
        if stage != self._stage:
            if self._stage is not None:
                self.timings[self._stage] = self.timings.get(self._stage, 0.0) + now - self._since
            self._since, self._stage = now, stage
        if self.progress:
            lo, hi = STAGES[stage]
            self.progress(stage, lo + (hi - lo) * min(max(within, 0.0), 1.0))

    def close(self) -> dict[str, float]:
        self.enter(self._stage or "profiling", 1.0)
        self.timings[self._stage or "profiling"] = (
            self.timings.get(self._stage or "profiling", 0.0) + time.perf_counter() - self._since
        )
        return {k: round(v, 3) for k, v in self.timings.items()}


def _check_data(model: keras.Model, data: Data) -> None:
    want = tuple(model.inputs[0].shape[1:])
    got = tuple(data.x_train.shape[1:])
    if len(want) != len(got) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
        raise PruningError("data_mismatch", f"the model takes inputs of shape {want}, the data has {got}")
    if data.task == "classification":
        classes = int(model.outputs[0].shape[-1])
        top = int(metrics.class_ids(np.concatenate([data.y_train, data.y_val])).max())
        if top >= classes:
            raise PruningError("data_mismatch", f"labels go up to {top} but the model has {classes} outputs")


def _predict(model: keras.Model, x: NDArray[Any]) -> NDArray[Any]:
    return stream.predict(model, x)


def _evaluate(model: keras.Model, data: Data, loss: Any) -> dict[str, Any]:
    """Task metrics and the loss, on the validation split and on the test split when given."""
    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    out = {}
    for split in ("val", "test"):
        xy = data.split(split)
        if xy is not None:
            pred = _predict(model, xy[0])
            out[split] = metrics.evaluate(pred, xy[1], data.task)
            out[split]["loss"] = float(np.mean(keras.ops.convert_to_numpy(loss_fn(xy[1], pred))))
    return out


def _why_schedule(spec: PruneSpec) -> dict[str, Any]:
    """What the engine chose of scope, schedule and rounds when the job left them unset, and why."""
    if not spec.defaults:
        return {}
    if spec.granularity == "unstructured":
        why = (
            f"unset in the job: {spec.scope} threshold, {spec.schedule} schedule over {spec.steps} round(s), the "
            "settings bench/engine.py measured for unstructured cuts (a one-shot per-layer 80% cut lost 23.8 pts "
            "on its MobileNetV1, a gradual LAMP cut none)"
        )
    else:
        why = f"unset in the job: {spec.schedule} over {spec.steps} round(s), like bench/engine.py's channel rows"
    return {"chosen": list(spec.defaults), "why": why}


def run(
    model_path: Path,
    data: Data,
    spec: PruneSpec,
    workdir: Path,
    progress: ProgressFn | None = None,
    log: LogFn | None = None,
    checkpoints: Checkpoints | None = None,
) -> Result:
    """Prune `model_path` per `spec` on `data`; write the results under `workdir`.

    `progress(stage, fraction)` is called often (after every fine-tuning batch) and may raise to
    stop the run; `log(message)` gets one line per milestone.
    """
    say = log or (lambda _message: None)
    import tensorflow as tf

    stages = _Stages(progress)
    stages.enter("loading")
    keras.utils.set_random_seed(spec.seed)
    tf.config.experimental.enable_op_determinism()
    model, inlined = flatten(load_model(model_path))
    _check_data(model, data)
    task = data.task
    loss, loss_name, loss_source = resolve_loss(model, data.y_train, task, _predict(model, data.x_train[:32]))
    before = _evaluate(model, data, loss)
    layers_before = {c.layer: c for c in count_layers(model)}
    macs_before = total_macs(model)
    workdir.mkdir(parents=True, exist_ok=True)
    baseline_keras = workdir / "baseline.keras"
    model.save(baseline_keras)
    resumed_baseline = checkpoints.baseline() if checkpoints else None
    baseline_tflite = resumed_baseline or export.to_tflite(model, spec.quantization, data.x_train)

    stages.enter("scoring")
    pruner = make_pruner(model, data, loss, spec)
    target = spec.target_sparsity
    if spec.macs_reduction is not None and isinstance(pruner, ChannelPruner):
        target = pruner.sparsity_for_macs(model, spec.macs_reduction)
    assert spec.schedule is not None  # PruneSpec.__post_init__ sets both
    assert spec.steps is not None
    plan = schedule.make_schedule(spec.schedule if spec.granularity != "n_of_m" else "one_shot", target, spec.steps)
    guard = spec.max_accuracy_drop if task == "classification" else spec.max_error_increase
    headline = metrics.headline(task)
    classes = int(model.outputs[0].shape[-1])
    # The dense model's outputs on the training split, before any cut, only when it is to teach (finetune.distill).
    teaches = bool(spec.distill) and task == "classification" and classes > 1
    dense_train = _predict(model, data.x_train) if teaches else None
    kept = Snapshot(0, 0.0, before, pruner.snapshot(model))
    rounds: list[dict[str, Any]] = []
    broke_guard = False
    searched = None
    if spec.latency_ms is not None:  # the search narrows the model; the schedule below then only fine-tunes it
        found = search_latency(model, data, loss, spec, baseline_tflite, say, lambda f: stages.enter("pruning", f))
        model, searched = found.model, found.report
        kept = Snapshot(0, 0.0, _evaluate(model, data, loss), pruner.snapshot(model))
    cut = target or 1 - total_macs(model) / max(macs_before, 1)
    recipe = choose(model, data, loss, spec, task, cut, guard, before["val"][headline])
    if dense_train is None:
        recipe.distill = 0.0
    per_round = schedule.epochs_per_round(recipe.epochs, plan.steps, schedule.recovery_share(spec))
    train_loss, train_y = loss, data.y_train
    if recipe.distill and dense_train is not None:
        from_logits = bool(getattr(loss, "from_logits", False))
        train_loss = Distilled(loss, classes, recipe.distill, DISTILL_TEMPERATURE, from_logits)
        train_y = teacher_targets(data.y_train, dense_train, from_logits)
    say(f"fine-tuning: {recipe.to_dict()['why']}")
    resumed = checkpoints.resume(pruner) if checkpoints else None
    if resumed:  # a retried job: rounds 1..resumed.step finished in an earlier attempt
        model, kept, rounds = resumed.model, resumed.kept, list(resumed.rounds)
        say(f"resumed after round {resumed.step}/{plan.steps}")
    for step in range(resumed.step + 1 if resumed else 1, plan.steps + 1):
        keras.utils.set_random_seed(spec.seed + step)  # per round, so a resumed run matches an uninterrupted one
        sparsity = plan(step)
        stages.enter("pruning", (step - 1) / plan.steps)
        model = pruner.prune(model, sparsity)
        stages.enter("finetuning", (step - 1) / plan.steps)
        within = recipe.early_stop  # any round may stop early once back within the guard (or the tolerance)
        losses, stopped = finetune(
            model,
            data.x_train,
            train_y,
            loss=train_loss,
            epochs=per_round[step - 1],
            batch_size=recipe.batch_size,
            optimizer=recipe.make_optimizer,
            variables=pruner.variables,
            masks=pruner.masks,
            # Both are called during this round's fit, so they see this round's step (B023 is about later calls).
            on_progress=lambda f: stages.enter("finetuning", (step - 1 + f) / plan.steps),  # noqa: B023
            stop=None if within is None else lambda m: metrics.drop(before, _evaluate(m, data, loss), task) <= within,  # noqa: B023
            augment=spec.augment,
        )
        after_step = _evaluate(model, data, loss)
        drop = metrics.drop(before, after_step, task)
        rounds.append(
            {"step": step, "sparsity": round(sparsity, 6), "train_loss": losses, "val": after_step["val"], "drop": drop}
        )
        if stopped is not None:
            rounds[-1]["stopped_early_after_epoch"] = stopped
        say(f"round {step}/{plan.steps}: sparsity {sparsity:.3f}, val {metrics.headline(task)} drop {drop:+.4f}")
        if guard is not None and drop > guard:
            broke_guard = True
            break
        kept = Snapshot(step, sparsity, after_step, pruner.snapshot(model))
        if checkpoints:
            checkpoints.save(kept, rounds, plan.steps, pruner, model, baseline_tflite)
    if broke_guard:
        model = pruner.restore(kept.state)
    model = pruner.finish(model)
    after = kept.metrics

    control = None
    if spec.control and spec.granularity == "channel":
        trained = sum(len(r["train_loss"]) for r in rounds)
        scratch = from_scratch(model, data.x_train, data.y_train, data.x_val, data.y_val, task, loss, recipe,
                               trained, recipe.batch_size, spec.seed)  # fmt: skip
        control = verdict(after["val"][headline], scratch[headline], headline, task, trained)
        say(control["note"])
    elif spec.control:
        control = {"note": "the from-scratch control applies to channel cuts (a thinner architecture) only"}

    stages.enter("converting")
    shipped = ship(model, data, quantization=spec.quantization, loss=loss, recipe=recipe, batch_size=recipe.batch_size,
                   before=before, guard=guard, quantization_aware=spec.quantization_aware,
                   log=say, on_progress=lambda f: stages.enter("converting", f))  # fmt: skip
    tflite, tflite_pred, tflite_val = shipped.tflite, shipped.pred, shipped.val
    keras_path = workdir / "model.keras"
    model.save(keras_path)  # after `ship`: a quantization-aware fine-tuning changes the weights that ship
    tflite_path = workdir / "model.tflite"
    tflite_path.write_bytes(tflite)
    say(f"exported {len(tflite)} bytes ({spec.quantization}); dense baseline {len(baseline_tflite)} bytes")

    stages.enter("profiling")
    devices = job_devices(spec.devices, tflite, (spec.device,) if spec.device else (), say)
    latency_pruned = profile_tflite(tflite, devices)
    latency_baseline = profile_tflite(baseline_tflite, devices)
    for mine, dense in zip(latency_pruned, latency_baseline, strict=True):
        figure = "measured_ms" if mine.get("measured_ms") is not None else "estimate_ms"
        say(f"{mine['device']}: {mine[figure]:.4f} ms ({figure}; dense {dense[figure]:.4f} ms)")

    layers_after = count_layers(model)
    quantized = spec.quantization != "none"
    export_broke_guard = shipped.broke_guard and not broke_guard
    if export_broke_guard:
        say(f"the exported {spec.quantization} model breaks the guard the Keras model met")
    if not broke_guard and sum(c.nonzero for c in layers_after) >= sum(c.nonzero for c in layers_before.values()):
        raise PruningError(
            "nothing_to_prune",
            f"the cut removed no weight at sparsity {kept.sparsity:.3f}"
            + (" (every prunable channel group is too small to lose one)" if spec.granularity == "channel" else ""),
        )
    report: dict[str, Any] = {
        "task": task,
        "dataset": data.name,
        "spec": spec.to_dict(),
        "loss": {"name": loss_name, "source": loss_source},
        "accuracy": {
            "before": before["val"][headline],
            # The headline judges what ships: the exported model when it is quantized.
            "after": (tflite_val if quantized else after["val"])[headline],
            "judged_on": "tflite" if quantized else "keras",
            "keras_after": after["val"][headline],
            "metric": headline,
            "split": "val",
            "tflite_after": tflite_val[headline],
            # What the export itself costs (int8 rounding, mostly), in the metric's units.
            "tflite_loss": metrics.drop({"val": after["val"]}, {"val": tflite_val}, task),
        },
        "metrics": {"before": before, "after": after, "tflite_val": tflite_val},
        "tflite_check": {"loads": True, "agreement": agreement(tflite_pred, _predict(model, data.x_val), task)},
        "params": {
            "before": sum(c.params for c in layers_before.values()),
            "after": sum(c.params for c in layers_after),
            "nonzero": sum(c.nonzero for c in layers_after),
        },
        "macs": {"before": macs_before, "after": total_macs(model)},
        "sparsity": sparsity_block(layers_before, layers_after, pruner.masks, spec.sparsity, kept.sparsity),
        "pruning": {"method": spec.method, "granularity": spec.granularity, **pruner.notes},
        "schedule": {**plan.get_config(), **schedule.rounds_block(per_round), "rounds": rounds, **_why_schedule(spec)},
        "finetune": recipe.to_dict(),
        "guard": {
            "metric": headline,
            "max_drop": guard,
            "met": not broke_guard and not export_broke_guard,
            "backed_off_to_step": kept.step if broke_guard else None,
            "note": (
                f"step {len(rounds)} broke the guard; returned the model of step {kept.step} "
                f"at sparsity {kept.sparsity:.3f}"
                + (": NOTHING WAS PRUNED, the dense model is returned" if kept.step == 0 and searched is None else "")
                if broke_guard
                else (
                    f"the Keras model met the guard but the exported {spec.quantization} model loses "
                    f"{metrics.drop(before, {'val': tflite_val}, task):.4f}"
                    + (f" ({shipped.quantization['note']})" if shipped.quantization else "")
                    + ": try a smaller cut, or quantization none or float16"
                    if export_broke_guard
                    else None
                )
            ),
        },
        "size": sizes(keras_path, tflite),
        "latency": latency_pruned,
        "baseline": {
            "params": sum(c.params for c in layers_before.values()),
            "macs": macs_before,
            "accuracy": before["val"][headline],
            "size": sizes(baseline_keras, baseline_tflite),
            "latency": latency_baseline,
        },
    }
    if shipped.quantization is not None:
        report["quantization"] = shipped.quantization
    if control is not None:
        report["control"] = control
    if inlined:
        report["nested"] = {
            "inlined": inlined,
            "note": f"{len(inlined)} nested model(s) were pruned as part of the one graph and trained again; "
            "the returned model is flat (the same TFLite operations)",
        }
    if data.meta:  # how the stored inputs were made (the audio front end), for the device side to match
        report["input"] = data.meta
    if (recurrent := export.recurrent_export(model, spec.quantization)) is not None:
        report["export"] = recurrent
    if resumed:
        report["resumed_from"] = {"stage": "finetuning", "step": resumed.step}
    if searched is not None:
        report["latency_search"] = searched
    if spec.macs_reduction is not None:
        report["macs"]["target_reduction"] = spec.macs_reduction
        report["macs"]["reduction"] = 1 - report["macs"]["after"] / macs_before
    report["timings_s"] = stages.close()
    report["timings_s"]["finetuning_input"] = stream.take_input_time()  # reading batches from a stream
    tensorboard = write_tensorboard(rounds, headline, workdir)
    report["artifacts"] = [*plots.write_job_plots(report, workdir / "plots"), tensorboard]
    report["resources"] = resources()  # last: the plots and the TensorBoard log count too
    write_report(report, workdir / "report.json")
    return Result(tflite_path=tflite_path, keras_path=keras_path, report=report)


def profile(model_path: Path, spec: PruneSpec, workdir: Path, data: Data | None = None) -> Result:
    """A `kind: "profile"` job: no pruning, only the size and latency parts of the report.

    A Keras model is exported per `spec.quantization` first (`int8` needs `data` to calibrate on);
    a `.tflite` file is profiled as it is.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    tflite_path = workdir / "model.tflite"
    report: dict[str, Any] = {"kind": "profile", "spec": spec.to_dict()}
    if model_path.suffix == ".tflite":
        tflite = model_path.read_bytes()
        try:
            export.interpreter(tflite).allocate_tensors()
        except Exception as exc:  # LiteRT raises many kinds for a bad file
            raise PruningError("model_load_failed", f"not a loadable TFLite model: {str(exc)[:300]}") from exc
        keras_bytes = None
    else:
        model, _ = flatten(load_model(model_path))
        if spec.quantization == "int8" and data is None:
            raise PruningError("missing_data", "int8 export needs a dataset to calibrate on (give dataset_id)")
        tflite = export.to_tflite(model, spec.quantization, None if data is None else data.x_train)
        report["params"] = {"before": int(model.count_params())}
        report["macs"] = {"before": total_macs(model)}
        if (recurrent := export.recurrent_export(model, spec.quantization)) is not None:
            report["export"] = recurrent
        keras_bytes = model_path.stat().st_size
    tflite_path.write_bytes(tflite)
    report["size"] = {
        "keras_bytes": keras_bytes,
        "tflite_bytes": len(tflite),
        "tflite_gzip_bytes": export.gzip_bytes(tflite),
    }
    report["latency"] = profile_tflite(tflite, job_devices(spec.devices, tflite))
    write_report(report, workdir / "report.json")
    return Result(tflite_path=tflite_path, keras_path=model_path, report=report)
