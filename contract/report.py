"""The headline fields of a prune or profile job's `report.json`: what the engine must write and the API
publishes as the report's schema (the client's typed `Report` reads the same names).

Every model lets other fields pass (`extra="allow"`): the schedule, fine-tuning, guard, stage timings and
notes are the engine's to add. A profile job's report has no accuracy, sparsity or baseline, and params and
MACs only for a Keras model, so those are optional.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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
    measured_ms: float | None = Field(description="median measured latency; on `host` only")
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


class Report(_Open):
    """A prune or profile job's report: the pruned (or profiled) model's figures, and the dense baseline's."""

    accuracy: Accuracy | None = Field(None, description="prune jobs only")
    params: Params | None = Field(None, description="Keras models only")
    macs: Macs | None = Field(None, description="Keras models only")
    sparsity: Sparsity | None = Field(None, description="prune jobs only")
    size: Size
    latency: list[DeviceFigures] = Field(description="one entry per device of the job")
    baseline: Baseline | None = Field(None, description="prune jobs only")
