"""`run(model, data, spec, progress) -> Result`: load, score, prune, fine-tune, export, profile."""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from pruning import export, host, masks, metrics, schedule, scoring
from pruning.counting import count_layers, total_macs
from pruning.datasets import Data
from pruning.errors import PruningError
from pruning.finetune import finetune
from pruning.loading import load_model, resolve_loss
from pruning.spec import PruneSpec

ProgressFn = Callable[[str, float], None]

# Where each stage sits on the job's 0..1 progress bar.
STAGES = {
    "loading": (0.0, 0.05),
    "scoring": (0.05, 0.1),
    "pruning": (0.1, 0.15),
    "finetuning": (0.15, 0.8),
    "converting": (0.8, 0.9),
    "profiling": (0.9, 1.0),
}

HOST_BASIS = "measured: LiteRT with XNNPACK on this machine, {threads} thread(s), median of {runs} runs after 5 warm-up"


@dataclass
class Result:
    tflite_path: Path
    keras_path: Path
    report: dict[str, Any]


class _Stages:
    def __init__(self, progress: ProgressFn | None) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._stage: str | None = None
        self._since = time.perf_counter()

    def enter(self, stage: str, within: float = 0.0) -> None:
        now = time.perf_counter()
        if self._stage is not None and stage != self._stage:
            self.timings[self._stage] = self.timings.get(self._stage, 0.0) + now - self._since
            self._since = now
        if stage != self._stage:
            self._since = now
        self._stage = stage
        if self.progress:
            lo, hi = STAGES[stage]
            self.progress(stage, lo + (hi - lo) * min(max(within, 0.0), 1.0))

    def close(self) -> dict[str, float]:
        if self._stage is not None:
            self.timings[self._stage] = self.timings.get(self._stage, 0.0) + time.perf_counter() - self._since
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


def _predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict(x, batch_size=256, verbose=0))


def _evaluate(model: keras.Model, data: Data) -> dict[str, Any]:
    out = {}
    for split in ("val", "test"):
        xy = data.split(split)
        if xy is not None:
            out[split] = metrics.evaluate(_predict(model, xy[0]), xy[1], data.task)
    return out


def _drop(before: dict[str, Any], after: dict[str, Any], task: str) -> float:
    """How much worse `after` is, in the headline metric's units (positive = worse)."""
    key = metrics.headline(task)
    diff = before["val"][key] - after["val"][key]
    return diff if task == "classification" else -diff


def _host_entry(tflite: bytes) -> dict[str, Any]:
    measured = host.measure_latency(tflite)
    return {
        "device": "host",
        "measured_ms": round(measured["measured_ms"], 4),
        "p10_ms": round(measured["p10_ms"], 4),
        "p90_ms": round(measured["p90_ms"], 4),
        "basis": HOST_BASIS.format(threads=measured["threads"], runs=measured["runs"]),
    }


def run(model_path: Path, data: Data, spec: PruneSpec, workdir: Path, progress: ProgressFn | None = None) -> Result:
    """Prune `model_path` per `spec` on `data`; write the results under `workdir`."""
    if spec.method not in scoring.METHODS or spec.granularity != "unstructured":
        raise PruningError("not_implemented", f"{spec.method}/{spec.granularity} pruning is not available yet")
    stages = _Stages(progress)
    stages.enter("loading")
    keras.utils.set_random_seed(spec.seed)
    model = load_model(model_path)
    _check_data(model, data)
    task = data.task
    loss, loss_name, loss_source = resolve_loss(model, data.y_train, task, _predict(model, data.x_train[:32]))
    before = _evaluate(model, data)
    layers_before = {c.layer: c for c in count_layers(model)}
    macs_before = total_macs(model)
    workdir.mkdir(parents=True, exist_ok=True)
    baseline_keras = workdir / "baseline.keras"
    model.save(baseline_keras)
    baseline_tflite = export.to_tflite(model, spec.quantization, data.x_train)

    variables = masks.prunable_variables(model)
    if not variables:
        raise PruningError("nothing_to_prune", "the model has no Dense or convolution kernels to prune")
    plan = schedule.make_schedule(spec.schedule, spec.sparsity, spec.steps)
    epochs_per_step = math.ceil(spec.epochs / plan.steps) if spec.epochs else 0
    guard = spec.max_accuracy_drop if task == "classification" else spec.max_error_increase
    kept = {"step": 0, "sparsity": 0.0, "weights": model.get_weights(), "masks": {}, "metrics": before}
    steps: list[dict[str, Any]] = []
    backed_off = False
    current: dict[str, np.ndarray] = {}
    for step in range(1, plan.steps + 1):
        target = plan(step)
        stages.enter("scoring", (step - 1) / plan.steps)
        current = masks.layer_masks(variables, target, scoring.magnitude)
        stages.enter("pruning", (step - 1) / plan.steps)
        masks.attach(variables, current)
        stages.enter("finetuning", (step - 1) / plan.steps)
        losses = finetune(
            model,
            data.x_train,
            data.y_train,
            loss=loss,
            epochs=epochs_per_step,
            batch_size=spec.batch_size,
            learning_rate=spec.learning_rate,
            variables=variables,
            masks=current,
            on_progress=lambda f, s=step: stages.enter("finetuning", (s - 1 + f) / plan.steps),
        )
        after_step = _evaluate(model, data)
        drop = _drop(before, after_step, task)
        steps.append(
            {"step": step, "sparsity": round(target, 6), "train_loss": losses, "val": after_step["val"], "drop": drop}
        )
        if guard is not None and drop > guard:
            backed_off = True
            break
        kept = {
            "step": step,
            "sparsity": target,
            "weights": model.get_weights(),
            "masks": current,
            "metrics": after_step,
        }
    masks.strip(variables)
    if backed_off:
        model.set_weights(kept["weights"])
    after = kept["metrics"]
    final_masks: dict[str, np.ndarray] = kept["masks"]

    stages.enter("converting")
    keras_path = workdir / "model.keras"
    model.save(keras_path)
    tflite = export.to_tflite(model, spec.quantization, data.x_train)
    tflite_path = workdir / "model.tflite"
    tflite_path.write_bytes(tflite)
    x_val, y_val = data.x_val, data.y_val
    tflite_pred = export.predict(tflite, x_val)
    keras_pred = _predict(model, x_val)
    tflite_val = metrics.evaluate(tflite_pred, y_val, task)

    stages.enter("profiling")
    latency_pruned = _host_entry(tflite)
    latency_baseline = _host_entry(baseline_tflite)

    layers_after = count_layers(model)
    prunable_total = sum(int(np.size(v)) for v in variables)
    prunable_zero = sum(int(np.size(m) - np.count_nonzero(m)) for m in final_masks.values())
    headline = metrics.headline(task)
    report: dict[str, Any] = {
        "task": task,
        "dataset": data.name,
        "spec": spec.to_dict(),
        "loss": {"name": loss_name, "source": loss_source},
        "accuracy": {
            "before": before["val"][headline],
            "after": after["val"][headline],
            "metric": headline,
            "split": "val",
            "tflite_after": tflite_val[headline],
        },
        "metrics": {"before": before, "after": after, "tflite_val": tflite_val},
        "tflite_check": {
            "loads": True,
            "agreement": _agreement(tflite_pred, keras_pred, task),
        },
        "params": {
            "before": sum(c.params for c in layers_before.values()),
            "after": sum(c.params for c in layers_after),
            "nonzero": sum(c.nonzero for c in layers_after),
        },
        "macs": {"before": macs_before, "after": total_macs(model)},
        "sparsity": {
            "target": spec.sparsity,
            "reached": round(float(kept["sparsity"]), 6),
            "overall": prunable_zero / prunable_total,
            "scope": "kernels of Dense and convolution layers",
            "per_layer": [
                {
                    "layer": c.layer,
                    "kind": c.kind,
                    "params": c.params,
                    "nonzero": c.nonzero,
                    "channels_before": layers_before[c.layer].channels,
                    "channels_after": c.channels,
                }
                for c in layers_after
            ],
        },
        "schedule": {**plan.get_config(), "epochs_per_step": epochs_per_step, "rounds": steps},
        "guard": {
            "metric": headline,
            "max_drop": guard,
            "met": not backed_off,
            "backed_off_to_step": kept["step"] if backed_off else None,
            "note": (
                f"step {len(steps)} broke the guard; returned the model of step {kept['step']} "
                f"at sparsity {kept['sparsity']:.3f}"
                if backed_off
                else None
            ),
        },
        "size": _sizes(keras_path, tflite),
        "latency": [latency_pruned],
        "baseline": {
            "params": sum(c.params for c in layers_before.values()),
            "macs": macs_before,
            "accuracy": before["val"][headline],
            "size": _sizes(baseline_keras, baseline_tflite),
            "latency": [latency_baseline],
        },
    }
    report["timings_s"] = stages.close()
    if progress:
        progress("profiling", 1.0)
    (workdir / "report.json").write_text(json.dumps(report, indent=2))
    return Result(tflite_path=tflite_path, keras_path=keras_path, report=report)


def _agreement(a: np.ndarray, b: np.ndarray, task: str) -> float:
    """Share of samples where the `.tflite` and Keras models agree (same class, or within 1e-3)."""
    if task == "classification":
        return float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return float(np.mean(np.all(np.abs(a - b) <= 1e-3 * np.maximum(1.0, np.abs(b)), axis=-1)))


def _sizes(keras_path: Path, tflite: bytes) -> dict[str, int]:
    return {
        "keras_bytes": keras_path.stat().st_size,
        "tflite_bytes": len(tflite),
        "tflite_gzip_bytes": export.gzip_bytes(tflite),
    }
