"""The job spec: one definition of every field, default and rule, for the API, the CLI, the client and the engine.

`JobSpec` validates each field (unknown fields and out-of-range numbers are refused); `JobSpec.check`
adds the rules across fields, each failing with a code (`SpecError`). The engine's flat view
(`pruning.spec.PruneSpec`) takes its defaults and its rules from here.
"""

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.devices import device_names
from contract.errors import PruningError

LATENCY_NEEDS_CHANNELS = (
    "a latency_ms target needs granularity channel: zeroed weights (unstructured, n_of_m) stay in a dense "
    "runtime's kernels and do not make it faster (TFLite Micro has no sparse kernels; XNNPACK's sparse path "
    "needs float weights stored sparse and mostly-zero 1x1 convolutions), so only removed channels lower "
    "the estimated latency"
)


DEFAULT_SPARSITY = 0.5
"""The target of a local `shears prune` (and of the engine) when none is given; the API asks for one."""
DEFAULT_DEVICES = ("host",)
DEFAULT_ROUNDS = 5
"""Rounds of a polynomial schedule when the job does not say (bench/engine.py's unstructured rows); the engine
takes fewer when fewer epochs are set (`pruning.spec.PruneSpec`)."""


class SpecError(PruningError, ValueError):
    """A rule of the job spec broken: `invalid_spec` or `unknown_device`, with what to change."""


def choices(model: type[BaseModel], name: str) -> list[str]:
    """The values a Literal field takes, unset aside (for command-line flags)."""
    annotation = model.model_fields[name].annotation
    args = get_args(annotation)
    if args and get_origin(annotation) is not Literal:  # Literal[...] | None
        args = tuple(v for arg in args if get_origin(arg) is Literal for v in get_args(arg))
    return [str(v) for v in args]


def default(model: type[BaseModel], name: str) -> Any:
    """A field's default, as the API applies it."""
    return model.model_fields[name].get_default(call_default_factory=True)


def check_devices(devices: Any) -> None:
    known = device_names()
    unknown = [d for d in devices if d not in known]
    if unknown:
        names = ", ".join(sorted(known))
        raise SpecError(
            "unknown_device", f"unknown device(s): {', '.join(unknown)}; known devices: {names} (GET /v1/devices)"
        )


def check_quantization(quantization: str, quantization_aware: str) -> None:
    """Quantization-aware fine-tuning is for int8 files: asking for it otherwise would do nothing."""
    if quantization_aware == "always" and quantization != "int8":
        raise SpecError("invalid_spec", "quantization_aware always needs quantization int8")


def check_target(
    granularity: str, macs_reduction: float | None, latency_ms: float | None, device: str | None, block: int
) -> None:
    """The rules between a prune job's target and its granularity, shared by the API and the engine."""
    if (latency_ms is None) != (device is None):
        raise SpecError("invalid_spec", "latency_ms and device go together")
    if latency_ms is not None:
        if granularity != "channel":
            raise SpecError("invalid_spec", LATENCY_NEEDS_CHANNELS)
        if device not in device_names():
            names = ", ".join(sorted(device_names()))
            raise SpecError("unknown_device", f"unknown device {device!r}; known devices: {names}")
    elif macs_reduction is not None and granularity != "channel":
        raise SpecError("invalid_spec", "a macs_reduction target needs granularity channel")
    if block > 1 and granularity != "unstructured":
        raise SpecError("invalid_spec", "block needs granularity unstructured")


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
    quantization_aware: Literal["auto", "always", "never"] = Field(
        "auto",
        description="int8 only: fine-tune with fake-quantized kernels that keep the pruning masks and ship that "
        "file when it scores better; auto: only when the post-training int8 model breaks the guard",
    )
    devices: list[str] | None = Field(
        None,
        max_length=20,
        description="device profiles to estimate on (GET /v1/devices); default: host and every 1-thread profile "
        "of the model's class that it fits (microcontrollers if it fits one, else watches, phones and boards)",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    callback_url: str | None = Field(
        None, max_length=2000, description="POSTed the job JSON on a terminal state, signed (Shears-Signature)"
    )

    def points(self) -> list["JobSpec"]:
        """The prune jobs of a sweep: its spec with one target each."""
        assert self.sweep is not None
        sweep = self.sweep
        # no devices: each point keeps the default (pruning.estimate.default_devices), which adds the sweep's device
        devices = None
        if self.devices:
            devices = list(dict.fromkeys([*self.devices, *([sweep.device] if sweep.device else [])]))
        common = {"kind": "prune", "sweep": None, "callback_url": None, "devices": devices}
        if sweep.sparsities is not None:
            targets = [Target(sparsity=s) for s in sweep.sparsities]
        else:
            targets = [Target(latency_ms=t, device=sweep.device) for t in sweep.latency_ms or []]
        return [self.model_copy(update={**common, "target": t}) for t in targets]

    def check(self) -> None:
        """The rules across fields; `SpecError` with the first one broken."""
        if self.kind == "sweep":
            if self.sweep is None:
                raise SpecError(
                    "invalid_spec",
                    'a sweep needs "sweep": {"sparsities": [...]} or {"latency_ms": [...], "device": ...}',
                )
            if self.target is not None:
                raise SpecError("invalid_spec", "a sweep's points set the target: give sweep, not target")
            if self.granularity == "n_of_m":
                raise SpecError("invalid_spec", "n_of_m fixes the sparsity at 1 - n/m: there is nothing to sweep")
            check_devices([self.sweep.device] if self.sweep.device else [])  # its points list it only with devices
            for point in self.points():
                point.check()
            return
        if self.sweep is not None:
            raise SpecError("invalid_spec", 'sweep settings need kind "sweep"')
        if self.kind == "prune":
            if self.granularity == "n_of_m":
                if self.target is not None:
                    raise SpecError("invalid_spec", "n_of_m fixes the sparsity at 1 - n/m: give n_of_m, not a target")
            elif self.target is None:
                raise SpecError("invalid_spec", 'a prune job needs a target, e.g. {"sparsity": 0.5}')
            else:
                t = self.target
                check_target(self.granularity, t.macs_reduction, t.latency_ms, t.device, 1)
        if self.block > 1 and self.granularity != "unstructured":
            raise SpecError("invalid_spec", "block needs granularity unstructured")
        if self.n_of_m is not None and self.granularity != "n_of_m":
            raise SpecError("invalid_spec", "n_of_m settings need granularity n_of_m")
        check_quantization(self.quantization, self.quantization_aware)
        check_devices(self.devices or [])
