"""Typed views of the server's answers: a job's record (`JobRecord`, the OpenAPI `JobOut`), the
tenant's usage (`Usage`) and a finished job's report (`Report`, or a sweep's `SweepReport`: `typed_report`).

Each is a dataclass built from the JSON with `from_json`, which keeps fields the server added after
this client was made in `extra` (an old client still reads a new server). tests/client checks the
field names against docs/openapi.json, and the report's against a live server's report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="_Typed")


@dataclass
class _Typed:
    extra: dict[str, Any] = field(default_factory=dict, repr=False, kw_only=True)
    """Fields of the server's JSON that this client does not know."""
    nested: ClassVar[dict[str, type[_Typed]]] = {}
    """Fields holding another typed object (or a list of them)."""

    @classmethod
    def fields(cls) -> list[str]:
        """The JSON field names this class reads."""
        return [f.name for f in dataclasses.fields(cls) if f.init and f.name != "extra"]

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any] | None) -> T:
        data = dict(data or {})
        known = cls.fields()
        kwargs = {name: data.pop(name, None) for name in known}
        for name, kind in cls.nested.items():
            value = kwargs.get(name)
            if isinstance(value, list):
                kwargs[name] = [kind.from_json(v) if isinstance(v, dict) else v for v in value]
            elif isinstance(value, dict):
                kwargs[name] = kind.from_json(value)
        return cls(**kwargs, extra=data)


@dataclass
class Accuracy(_Typed):
    before: float | None = None
    after: float | None = None
    metric: str | None = None
    split: str | None = None


@dataclass
class Before(_Typed):
    before: float | None = None
    after: float | None = None


@dataclass
class Params(_Typed):
    before: int | None = None
    after: int | None = None
    nonzero: int | None = None


@dataclass
class Sparsity(_Typed):
    overall: float | None = None
    target: float | None = None
    per_layer: list[dict[str, Any]] | None = None


@dataclass
class Size(_Typed):
    keras_bytes: int | None = None
    tflite_bytes: int | None = None
    tflite_gzip_bytes: int | None = None


@dataclass
class DeviceFigures(_Typed):
    """One device's entry of `latency`: the estimate with its band (`measured_ms` and its p10/p90 on `host`),
    memory, fit, energy per inference, and `basis` (what each figure rests on, energy's included)."""

    device: str | None = None
    estimate_ms: float | None = None
    low_ms: float | None = None
    high_ms: float | None = None
    measured_ms: float | None = None
    p10_ms: float | None = None
    p90_ms: float | None = None
    ram_bytes: int | None = None
    flash_bytes: int | None = None
    fits: bool | None = None
    basis: str | None = None
    energy_mj: float | None = None
    energy_low_mj: float | None = None
    energy_high_mj: float | None = None
    inferences_per_mah: float | None = None

    @property
    def ms(self) -> float | None:
        """The estimate when there is one, else the measured figure (as the budgets read it)."""
        return self.estimate_ms if self.estimate_ms is not None else self.measured_ms


class _Devices:
    latency: list[DeviceFigures] | None

    def device(self, name: str) -> DeviceFigures | None:
        """The figures for device `name`, if the report has them."""
        return next((d for d in self.latency or [] if d.device == name), None)


@dataclass
class Baseline(_Typed, _Devices):
    """The dense model exported the same way: its headline metric (`accuracy.metric`), counts, sizes and figures."""

    accuracy: float | None = None
    params: int | None = None
    macs: int | None = None
    size: Size | None = None
    latency: list[DeviceFigures] | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {"size": Size, "latency": DeviceFigures}


@dataclass
class Resources(_Typed):
    """What the engine process used: `peak_rss_bytes`, its peak resident memory."""

    peak_rss_bytes: int | None = None


@dataclass
class QuantizedFile(_Typed):
    """One way of making the quantized file, judged on the validation split."""

    after: float | None = None
    drop: float | None = None
    seconds: float | None = None


@dataclass
class Quantization(_Typed):
    """How a quantized job's file was made: `path` is `post_training` or `quantization_aware`."""

    path: str | None = None
    post_training: QuantizedFile | None = None
    quantization_aware: QuantizedFile | None = None
    note: str | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {"post_training": QuantizedFile, "quantization_aware": QuantizedFile}


@dataclass
class Report(_Typed, _Devices):
    """A finished job's report: for the pruned model, and in `baseline` for the dense one exported the same way."""

    accuracy: Accuracy | None = None
    params: Params | None = None
    macs: Before | None = None
    sparsity: Sparsity | None = None
    size: Size | None = None
    latency: list[DeviceFigures] | None = None
    baseline: Baseline | None = None
    resources: Resources | None = None
    quantization: Quantization | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {
        "accuracy": Accuracy,
        "params": Params,
        "macs": Before,
        "sparsity": Sparsity,
        "size": Size,
        "latency": DeviceFigures,
        "baseline": Baseline,
        "resources": Resources,
        "quantization": Quantization,
    }


@dataclass
class JobError(_Typed):
    code: str | None = None
    message: str | None = None


@dataclass
class JobRecord(_Typed):
    """`GET /v1/jobs/{id}` (the OpenAPI schema `JobOut`)."""

    id: str | None = None
    kind: str | None = None
    status: str | None = None
    stage: str | None = None
    progress: float | None = None
    attempts: int | None = None
    error: JobError | None = None
    result: dict[str, Any] | None = None
    model_id: str | None = None
    dataset_id: str | None = None
    spec: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    cancel_requested: bool | None = None
    parent_id: str | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {"error": JobError}


@dataclass
class Limits(_Typed):
    upload_bytes: int | None = None
    max_upload_bytes: int | None = None
    queued_jobs: int | None = None
    running_jobs: int | None = None
    retention_days: float | None = None


@dataclass
class Usage(_Typed):
    """`GET /v1/usage` (the OpenAPI schema `Usage`)."""

    bytes_stored: int | None = None
    upload_bytes: int | None = None
    job_bytes: int | None = None
    models: int | None = None
    datasets: int | None = None
    jobs: int | None = None
    jobs_queued: int | None = None
    jobs_running: int | None = None
    limits: Limits | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {"limits": Limits}


@dataclass
class _TradeoffPoint(_Typed):
    """A model on a sweep's trade-off: what its Pareto sets compare."""

    job_id: str | None = None
    label: str | None = None
    accuracy: float | None = None
    latency_ms: dict[str, float] | None = None
    size_bytes: int | None = None
    tflite_bytes: int | None = None
    is_baseline: bool | None = None


@dataclass
class SweepPoint(_TradeoffPoint):
    """One point of a sweep: a prune job of its own (`client.job(point.job_id).report` is its `Report`);
    `latency_ms` per device, `size_bytes` the gzipped .tflite."""

    target: dict[str, Any] | None = None
    status: str | None = None
    sparsity: float | None = None
    macs: int | None = None
    guard_met: bool | None = None


@dataclass
class SweepBaseline(_TradeoffPoint):
    """The dense model exported the same way (`job_id` None; `dense` in the Pareto sets)."""


@dataclass
class SweepBudget(_Typed):
    """The sweep's latency budget on `device`: the most accurate point within it, and all that are."""

    device: str | None = None
    latency_ms: float | None = None
    best_job_id: str | None = None
    met_by: list[str] | None = None


@dataclass
class SweepFailure(JobError):
    """A point whose job failed: its `job_id`, and its error's `code` and `message`."""

    job_id: str | None = None


@dataclass
class SweepReport(_Typed):
    """A sweep's report (`kind` is `sweep`): its points, the dense baseline, per device the Pareto set of
    (accuracy, latency, size) as `job_id`s (`dense` for the baseline), and under a budget the best point."""

    kind: str | None = None
    points: list[SweepPoint] | None = None
    baseline: SweepBaseline | None = None
    pareto: dict[str, list[str]] | None = None
    succeeded: int | None = None
    failed: list[SweepFailure] | None = None
    budget: SweepBudget | None = None
    artifacts: list[str] | None = None
    nested: ClassVar[dict[str, type[_Typed]]] = {
        "points": SweepPoint,
        "baseline": SweepBaseline,
        "failed": SweepFailure,
        "budget": SweepBudget,
    }

    def front(self, device: str) -> list[SweepPoint | SweepBaseline]:
        """The Pareto set on `device`, as its points (and the baseline, if it is on the front)."""
        by_id: dict[str | None, SweepPoint | SweepBaseline] = {p.job_id: p for p in self.points or []}
        if self.baseline is not None:
            by_id["dense"] = self.baseline
        return [by_id[name] for name in (self.pareto or {}).get(device, []) if name in by_id]


def typed_report(data: dict[str, Any]) -> Report | SweepReport:
    """A report as the server sent it, typed: a `SweepReport` for a sweep's, else a `Report`."""
    if data.get("kind") == "sweep":
        return SweepReport.from_json(data)
    return Report.from_json(data)
