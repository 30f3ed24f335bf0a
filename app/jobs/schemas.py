"""The job spec of the contract, validated strictly: unknown fields and out-of-range numbers are 422s."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    # Infinity and NaN are valid JSON numbers to Python but not to PostgreSQL's json type.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Target(Strict):
    sparsity: float | None = Field(None, gt=0, lt=1, description="fraction of weights (or channels) removed")
    macs_reduction: float | None = Field(None, gt=0, lt=1)
    latency_ms: float | None = Field(None, gt=0)
    device: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _one_target(self) -> "Target":
        given = [k for k in ("sparsity", "macs_reduction", "latency_ms") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of sparsity, macs_reduction, latency_ms")
        if (self.latency_ms is None) != (self.device is None):
            raise ValueError("latency_ms and device go together")
        return self


class Schedule(Strict):
    kind: Literal["one_shot", "polynomial"] | None = Field(
        None, description="unset: polynomial for unstructured cuts (gradual, Zhu & Gupta 2017), one shot otherwise"
    )
    steps: int | None = Field(
        None, ge=1, le=50, description="rounds of prune -> fine-tune (polynomial); unset: 5, or fewer epochs if set"
    )


class Augment(Strict):
    """Seeded augmentation while fine-tuning; every kind is off unless set."""

    flip: bool = Field(False, description="images: random left-right flips")
    crop: int = Field(0, ge=0, le=64, description="images: random shifts by up to this many pixels")
    rotation_deg: float = Field(0, ge=0, le=45, description="images: random rotations within +- degrees")
    brightness: float = Field(0, ge=0, le=1, description="images: relative brightness jitter")
    contrast: float = Field(0, ge=0, le=1, description="images: relative contrast jitter")
    time_shift: float = Field(0, ge=0, le=0.5, description="audio features: shift by up to this fraction of frames")
    time_mask: int = Field(0, ge=0, le=100, description="audio features: SpecAugment time mask, widest in frames")
    freq_mask: int = Field(0, ge=0, le=100, description="audio features: SpecAugment frequency mask, widest in bins")
    background_noise: float = Field(
        0,
        ge=0,
        le=1,
        description="audio: mix a random piece of the dataset's _background_noise_ clips into each training clip "
        "at a volume drawn up to this (needs a dataset uploaded with that folder)",
    )


class Finetune(Strict):
    epochs: int | None = Field(
        None,
        ge=0,
        le=200,
        description="total fine-tuning epochs, spread over the rounds; unset: chosen from the data size and the "
        "cut, stopping early once the validation metric is back within the guard (the report says why)",
    )
    batch_size: int = Field(64, ge=1, le=4096)
    learning_rate: float | None = Field(
        None,
        gt=0,
        le=1,
        description="unset: the model's own compiled optimizer and rate, else a short range test; "
        "with a warm-up and cosine decay",
    )
    control: bool | None = Field(
        None,
        description="channel cuts: also train the thinned architecture from scratch for the same epochs "
        "(Liu et al. 2019) and say in the report whether pruning beat it",
    )
    distill: bool | None = Field(
        None,
        description="fine-tune against the dense model's outputs too (classification); unset: off",
    )
    augment: Augment | None = Field(None, description="off by default")


class NofM(Strict):
    n: int = Field(2, ge=1, le=16)
    m: int = Field(4, ge=2, le=16)

    @model_validator(mode="after")
    def _n_below_m(self) -> "NofM":
        if self.n >= self.m:
            raise ValueError("n must be smaller than m")
        return self


class Sweep(Strict):
    """Points of a `kind: "sweep"` job: each becomes a prune job of its own, on any worker."""

    sparsities: list[float] | None = Field(None, min_length=1, max_length=12, description="one job per sparsity")
    latency_ms: list[float] | None = Field(
        None, min_length=1, max_length=12, description="one latency-budget job per value, on `device`"
    )
    device: str | None = Field(None, max_length=64, description="the device of `latency_ms` and of the trade-off plot")
    budget_ms: float | None = Field(None, gt=0, description="a latency budget drawn on the plot and checked per point")

    @model_validator(mode="after")
    def _one_axis(self) -> "Sweep":
        if (self.sparsities is None) == (self.latency_ms is None):
            raise ValueError("give exactly one of sparsities, latency_ms")
        values = self.sparsities or self.latency_ms or []
        if self.sparsities is not None and not all(0 < v < 1 for v in values):
            raise ValueError("sparsities must lie strictly between 0 and 1")
        if self.latency_ms is not None and not all(v > 0 for v in values):
            raise ValueError("latency budgets must be positive")
        if len(set(values)) != len(values):
            raise ValueError("the sweep's values must differ")
        if self.latency_ms is not None and self.device is None:
            raise ValueError("latency_ms needs a device")
        return self


class JobSpec(Strict):
    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [{"model_id": "mdl_...", "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}}]
        },
    )

    model_id: str = Field(max_length=64)
    dataset_id: str | None = Field(
        None, max_length=64, description="an uploaded dataset's id, or builtin:digits / builtin:har"
    )
    kind: Literal["prune", "profile", "sweep"] = "prune"
    method: Literal["magnitude", "gradient", "activation"] = "magnitude"
    granularity: Literal["unstructured", "n_of_m", "channel"] = "unstructured"
    target: Target | None = None
    sweep: Sweep | None = Field(None, description='kind "sweep" only: the sparsities or latency budgets to try')
    scope: Literal["per_layer", "global"] | None = Field(
        None,
        description="unstructured only: one threshold per layer, or one for the whole model over LAMP scores "
        "(unset: global)",
    )
    block: int = Field(
        1,
        ge=1,
        le=16,
        description="unstructured only: keep or drop weights in runs of this many neighbouring inputs; "
        "runs of zeros compress far better (gzip), e.g. 4 for a smaller int8 download",
    )
    n_of_m: NofM | None = Field(None, description="n_of_m only: keep n of every m weights along the input axis")
    schedule: Schedule = Field(default_factory=Schedule)
    finetune: Finetune = Field(default_factory=Finetune)
    max_accuracy_drop: float | None = Field(None, ge=0, le=1)
    max_error_increase: float | None = Field(None, ge=0)
    quantization: Literal["none", "float16", "dynamic_int8", "int8"] = "none"
    devices: list[str] = Field(default_factory=lambda: ["host"], max_length=20)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    callback_url: str | None = Field(
        None, max_length=2000, description="POSTed the job JSON on a terminal state, signed (Shears-Signature)"
    )


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None
    progress: float
    attempts: int
    error: JobError | None
    result: dict[str, Any] | None
    model_id: str
    dataset_id: str | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    parent_id: str | None = Field(None, description="the sweep this job is one point of")


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class Delivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    attempt: int
    status_code: int | None
    succeeded: bool
    error: str | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[Delivery]


class ArtifactUrl(BaseModel):
    url: str = Field(description="a presigned GET of the file, usable without an API key until it expires")
    expires_in: int = Field(description="seconds the URL stays valid")


class ArtifactOut(BaseModel):
    name: str = Field(description="download it with GET /v1/jobs/{job_id}/artifacts/{name}")
    bytes: int
    sha256: str
    media_type: str


class ArtifactList(BaseModel):
    items: list[ArtifactOut]
