"""The headline fields of a job's `report.json`: what the engine (`Report`, a prune or profile job's) and a
sweep's collector (`SweepReport`) must write, and the API publishes as the report's schema (`AnyReport`, one
or the other); the client's typed `Report` and `SweepReport` read the same names.

Every model lets other fields pass (`extra="allow"`): the schedule, fine-tuning, guard, stage timings and
notes are the engine's to add. A profile job's report has no accuracy, sparsity or baseline, and params and
MACs only for a Keras model, so those are optional. A sweep's report holds its points (one prune job each),
the dense baseline, and per device the Pareto set; its points' own reports are `Report`s.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Accuracy(_Open):
    """The headline metric on the validation split, before pruning and after (of the exported model when it
    is quantized)."""

    before: float = Field(description="the dense model's value")
    after: float = Field(description="the pruned model's value: the guard judges this one")
    metric: str = Field(description="accuracy for classification, mae for regression")
    split: str = Field(description="the split it is measured on")


class Params(_Open):
    """Parameter counts."""

    before: int = Field(description="the dense model's")
    after: int | None = Field(None, description="the pruned model's (fewer only when channels are removed)")
    nonzero: int | None = Field(None, description="the pruned model's nonzero weights")


class Macs(_Open):
    """Multiply-accumulates of one inference."""

    before: int = Field(description="the dense model's")
    after: int | None = Field(None, description="the pruned model's")


class Sparsity(_Open):
    """Share of zero weights over the prunable kernels (over parameters for channel removal)."""

    overall: float = Field(description="reached over the whole model")
    target: float | None = Field(description="asked for; null for a latency or MACs target")
    per_layer: list[dict[str, Any]] = Field(
        description="per prunable layer: layer, kind, params, nonzero, channels and MACs before and after"
    )


class Size(_Open):
    """File sizes in bytes."""

    keras_bytes: int | None = Field(description="the .keras file; null when a .tflite file was profiled")
    tflite_bytes: int = Field(description="the exported .tflite file")
    tflite_gzip_bytes: int = Field(description="the .tflite file gzipped: what sparsity saves in transfer")


class DeviceFigures(_Open):
    """One device's figures for the model: latency with its band, memory, fit and energy per inference."""

    device: str = Field(description="the device profile's name")
    estimate_ms: float = Field(description="estimated latency of one inference")
    low_ms: float = Field(description="low end of the estimate's band")
    high_ms: float = Field(description="high end of the estimate's band")
    measured_ms: float | None = Field(
        description="median measured latency; on `host` only (one thread: the inference thread's CPU time, "
        "so other processes on the machine do not inflate it; `basis` says how it was taken)"
    )
    p10_ms: float | None = Field(None, description="10th percentile of the measured runs; on `host` only")
    p90_ms: float | None = Field(None, description="90th percentile of the measured runs; on `host` only")
    ram_bytes: int = Field(description="estimated peak RAM")
    flash_bytes: int = Field(description="the .tflite file plus the runtime's code")
    fits: bool = Field(description="RAM and flash fit the device")
    basis: str = Field(description="what each figure rests on, energy's included")
    energy_mj: float | None = Field(description="energy of one inference; null without a power figure")
    energy_low_mj: float | None = Field(description="low end of the energy band")
    energy_high_mj: float | None = Field(description="high end of the energy band")
    inferences_per_mah: float | None = Field(description="inferences per mAh of battery, compute only")


class Baseline(_Open):
    """The dense model exported the same way as the pruned one."""

    accuracy: float = Field(description="the headline metric (`accuracy.metric`) on the validation split")
    params: int = Field(description="parameter count")
    macs: int = Field(description="multiply-accumulates of one inference")
    size: Size
    latency: list[DeviceFigures] = Field(description="per device, in the order of the report's `latency`")


class Resources(_Open):
    """What the engine process used for a prune job."""

    peak_rss_bytes: int = Field(description="its peak resident memory (ru_maxrss); not its address space")


class QuantizedFile(_Open):
    """One way of making the quantized file, judged on the validation split."""

    after: float = Field(description="the exported file's headline metric")
    drop: float = Field(description="against the dense model, in the metric's units (positive = worse)")
    seconds: float = Field(description="what this path cost: fine-tuning (if any), export and evaluation")


class Quantization(_Open):
    """How a quantized job's file was made: post-training, or fine-tuned with fake quantization first."""

    path: Literal["post_training", "quantization_aware"] = Field(description="the path whose file ships")
    post_training: QuantizedFile
    quantization_aware: QuantizedFile | None = Field(
        None, description="int8, when it ran (`quantization_aware` in the spec; auto: post-training broke the guard)"
    )
    note: str | None = Field(None, description="why the path was taken, and what each cost")


class Report(_Open):
    """A prune or profile job's report: the pruned (or profiled) model's figures, and the dense baseline's."""

    accuracy: Accuracy | None = Field(None, description="prune jobs only")
    params: Params | None = Field(None, description="Keras models only")
    macs: Macs | None = Field(None, description="Keras models only")
    sparsity: Sparsity | None = Field(None, description="prune jobs only")
    size: Size
    latency: list[DeviceFigures] = Field(description="one entry per device of the job")
    baseline: Baseline | None = Field(None, description="prune jobs only")
    resources: Resources | None = Field(None, description="prune jobs only")
    quantization: Quantization | None = Field(None, description="prune jobs exported quantized")


class _TradeoffPoint(_Open):
    """A model on a sweep's trade-off: what the Pareto set and `tradeoff-<device>.png` compare."""

    job_id: str | None = Field(description="the point's prune job")
    label: str = Field(description="the point's target (e.g. `0.5`), or `dense` for the baseline")
    accuracy: float | None = Field(description="the headline metric after pruning (before, for the baseline)")
    latency_ms: dict[str, float] = Field(
        description="per device: the measured figure on `host`, else the estimate; empty for a failed point"
    )
    size_bytes: int | None = Field(description="the .tflite file gzipped (`size.tflite_gzip_bytes`)")
    tflite_bytes: int | None = Field(description="the .tflite file")


class SweepPoint(_TradeoffPoint):
    """One point of a sweep: a prune job of its own (`parent_id` is the sweep), with its headline figures."""

    job_id: str = Field(description="the point's prune job (its report is a `Report`)")
    target: dict[str, Any] = Field(description="the point's `target`, as in its job spec")
    status: str = Field(description="the point's job status when the sweep was collected")
    sparsity: float | None = Field(description="the sparsity reached (`sparsity.reached` of its report)")
    macs: int | None = Field(description="the pruned model's MACs")
    guard_met: bool | None = Field(description="the accuracy guard held (`guard.met` of its report)")
    is_baseline: Literal[False] = Field(description="false: a point")


class SweepBaseline(_TradeoffPoint):
    """The dense model exported the same way, as every point's report carries it."""

    job_id: None = Field(description="null: the baseline is no job of its own (it is `dense` in `pareto`)")
    is_baseline: Literal[True] = Field(description="true: the dense baseline")


class SweepFailure(_Open):
    """A point whose job failed."""

    job_id: str = Field(description="the point's prune job")
    code: str | None = Field(description="the job's error code")
    message: str | None = Field(description="the job's error message")


class SweepBudget(_Open):
    """The sweep's latency budget and the points that meet it."""

    device: str = Field(description="the device the budget is on")
    latency_ms: float = Field(description="the budget")
    best_job_id: str | None = Field(description="the most accurate point within the budget; null if none is")
    met_by: list[str] = Field(description="every point within the budget")


class SweepReport(_Open):
    """A sweep's report: its points, the dense baseline, and per device the Pareto set over (accuracy, latency,
    size); under a budget, the most accurate point that meets it."""

    kind: Literal["sweep"] = Field(description="always `sweep`: what tells this report from a job's `Report`")
    points: list[SweepPoint] = Field(description="one per point of the sweep, failed ones included")
    baseline: SweepBaseline | None = Field(description="null when no point succeeded")
    pareto: dict[str, list[str]] = Field(
        description="per device, the Pareto set: the points' `job_id`s, and `dense` for the baseline"
    )
    succeeded: int = Field(description="how many points succeeded")
    failed: list[SweepFailure] = Field(description="the points that failed, with their error")
    budget: SweepBudget | None = Field(None, description="only with the sweep's `budget_ms`")
    artifacts: list[str] = Field(description="the sweep's files: `report.json` and one `tradeoff-<device>.png` each")


def _report_kind(report: Any) -> str:
    kind = report.get("kind") if isinstance(report, dict) else getattr(report, "kind", None)
    return "sweep" if kind == "sweep" else "job"


AnyReport = Annotated[
    Annotated[Report, Tag("job")] | Annotated[SweepReport, Tag("sweep")],
    Discriminator(_report_kind),
    Field(description="a sweep's report (`kind: sweep`), else a prune or profile job's"),
]
"""What `GET /v1/jobs/{id}/report` answers: validating picks the model by `kind` (JSON Schema: `oneOf`)."""
