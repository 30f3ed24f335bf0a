"""What to do to a model: the engine's view of the job spec."""

from dataclasses import asdict, dataclass, field
from typing import Any

from contract.spec import (
    DEFAULT_DEVICES,
    DEFAULT_ROUNDS,
    DEFAULT_SPARSITY,
    Finetune,
    JobSpec,
    NofM,
    check_quantization,
    check_target,
    choices,
    default,
)
from pruning import schedule

QUANTIZATIONS = tuple(choices(JobSpec, "quantization"))
GRANULARITIES = tuple(choices(JobSpec, "granularity"))


@dataclass(frozen=True)
class PruneSpec:
    method: str = default(JobSpec, "method")
    granularity: str = default(JobSpec, "granularity")
    sparsity: float | None = DEFAULT_SPARSITY
    """Fraction of weights (unstructured) or of channels (channel) removed."""
    macs_reduction: float | None = None
    """Alternative target for `channel`: the fraction of multiply-accumulates removed."""
    latency_ms: float | None = None
    """Alternative target for `channel`: the estimated latency on `device` (pruning.latency_search)."""
    device: str | None = None
    search_samples: int = 512
    """Latency search: training samples each proposal is fine-tuned on before it is compared."""
    scope: str | None = None
    """Unstructured threshold: `per_layer` (same sparsity everywhere) or `global` (LAMP scores, one threshold);
    None: `global` (see `defaults`)."""
    block: int = default(JobSpec, "block")
    """Unstructured: weights are kept or dropped in runs of `block` consecutive inputs (contiguous in the
    TFLite file), which gzip compresses far better than scattered zeros; 1 is plain unstructured."""
    n: int = default(NofM, "n")
    m: int = default(NofM, "m")
    schedule: str | None = None
    """`one_shot` or `polynomial`; None: polynomial for unstructured cuts, one shot otherwise (see `defaults`)."""
    steps: int | None = None
    """Rounds of prune -> fine-tune; None: 1 for one shot, else 5 (fewer when fewer epochs are set: an
    unstructured cut keeps half of set epochs for its last round, pruning.schedule.RECOVERY_SHARE)."""
    epochs: int | None = None
    """Total fine-tuning epochs; None: chosen from the data and the cut (pruning.recipe), stopping early."""
    batch_size: int = default(Finetune, "batch_size")
    learning_rate: float | None = None
    """None: the model's own compiled optimizer, else a range test (pruning.recipe)."""
    distill: bool | None = None
    """Fine-tune against the dense model's outputs as well as the labels (classification); None: off."""
    control: bool = False
    """Channel cuts: also train the thinned architecture from scratch for the same epochs, and compare."""
    max_accuracy_drop: float | None = None
    max_error_increase: float | None = None
    quantization: str = default(JobSpec, "quantization")
    quantization_aware: str = default(JobSpec, "quantization_aware")
    """int8: "auto" fine-tunes with fake quantization when post-training int8 breaks the guard (pruning.qat)."""
    devices: tuple[str, ...] = field(default=DEFAULT_DEVICES)
    """Profiles to estimate on; empty (a job spec without `devices`): host + every profile of the model's class
    that it fits (pruning.estimate.default_devices)."""
    seed: int = default(JobSpec, "seed")
    augment: dict[str, Any] | None = None
    """Fine-tuning augmentation (`pruning.augment`), off when None."""

    defaults: tuple[str, ...] = ()
    """Which of scope, schedule and steps the engine chose (they were None), for the report's `why`."""

    def __post_init__(self) -> None:
        chosen = []
        if self.scope is None:
            object.__setattr__(self, "scope", "global")
            chosen.append("scope")
        if self.schedule is None:
            # The settings bench/engine.py measured for unstructured cuts: a one-shot 80% per-layer cut lost
            # 23.8 pts on its MobileNetV1 and 6.4 on its HAR CNN; LAMP + a 5-round polynomial schedule lost none.
            object.__setattr__(self, "schedule", "polynomial" if self.granularity == "unstructured" else "one_shot")
            chosen.append("schedule")
        if self.steps is None:
            rounds = 1 if self.schedule == "one_shot" else DEFAULT_ROUNDS
            share = schedule.recovery_share(self)
            steps = rounds if self.epochs is None else schedule.rounds_for(self.epochs, rounds, share)
            object.__setattr__(self, "steps", steps)
            chosen.append("steps")
        if chosen and not self.defaults:
            object.__setattr__(self, "defaults", tuple(chosen))
        if self.schedule not in ("one_shot", "polynomial"):
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.scope not in ("per_layer", "global"):
            raise ValueError(f"unknown scope {self.scope!r}")
        if self.augment is not None:
            from pruning.augment import check

            object.__setattr__(self, "augment", check(self.augment) or None)
        if self.granularity not in GRANULARITIES:
            raise ValueError(f"unknown granularity {self.granularity!r}")
        if self.block < 1:
            raise ValueError(f"block must be 1, or > 1 with unstructured granularity, got {self.block}")
        if self.granularity == "n_of_m" and not 0 < self.n < self.m:
            raise ValueError(f"N:M needs 0 < n < m, got {self.n}:{self.m}")
        if self.batch_size < 1 or (self.epochs is not None and self.epochs < 0):
            raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {self.batch_size} and {self.epochs}")
        if self.latency_ms is not None and self.latency_ms <= 0:
            raise ValueError(f"latency_ms must be > 0, got {self.latency_ms}")
        # The rules the API applies too (contract.spec), raised as ValueError (SpecError is one).
        check_target(self.granularity, self.macs_reduction, self.latency_ms, self.device, self.block)
        check_quantization(self.quantization, self.quantization_aware)
        if self.latency_ms is not None:
            if self.devices and self.device not in self.devices:  # the report shows the budget's device
                object.__setattr__(self, "devices", (*self.devices, self.device))

    @property
    def target_sparsity(self) -> float:
        """The sparsity the schedule ends on (N:M fixes it at 1 - n/m)."""
        if self.granularity == "n_of_m":
            return 1 - self.n / self.m
        if self.latency_ms is not None:
            return 0.0  # the latency search removes the channels before the schedule runs
        return float(self.sparsity or 0.0)

    @classmethod
    def from_job_spec(cls, spec: dict[str, Any]) -> "PruneSpec":
        """Build from the JSON job spec of the API (already validated there)."""
        schedule = spec.get("schedule") or {}
        finetune = spec.get("finetune") or {}
        target = spec.get("target") or {}
        n_of_m = spec.get("n_of_m") or {}
        return cls(
            method=spec.get("method", cls.method),
            granularity=spec.get("granularity", cls.granularity),
            sparsity=target.get("sparsity"),
            macs_reduction=target.get("macs_reduction"),
            latency_ms=target.get("latency_ms"),
            device=target.get("device"),
            scope=spec.get("scope"),
            block=int(spec.get("block", cls.block)),
            n=int(n_of_m.get("n", cls.n)),
            m=int(n_of_m.get("m", cls.m)),
            schedule=schedule.get("kind"),
            steps=None if schedule.get("steps") is None else int(schedule["steps"]),
            epochs=None if finetune.get("epochs") is None else int(finetune["epochs"]),
            batch_size=int(finetune.get("batch_size") or cls.batch_size),
            learning_rate=None if finetune.get("learning_rate") is None else float(finetune["learning_rate"]),
            distill=finetune.get("distill"),
            control=bool(finetune.get("control")),
            max_accuracy_drop=spec.get("max_accuracy_drop"),
            max_error_increase=spec.get("max_error_increase"),
            quantization=spec.get("quantization", cls.quantization),
            quantization_aware=spec.get("quantization_aware", cls.quantization_aware),
            devices=tuple(spec.get("devices") or ()),
            seed=int(spec.get("seed", cls.seed)),
            augment=finetune.get("augment"),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["devices"], out["defaults"] = list(self.devices), list(self.defaults)
        return out
