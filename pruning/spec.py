"""What to do to a model: the engine's view of the job spec."""

from dataclasses import asdict, dataclass, field
from typing import Any

QUANTIZATIONS = ("none", "float16", "dynamic_int8", "int8")


@dataclass(frozen=True)
class PruneSpec:
    method: str = "magnitude"
    granularity: str = "unstructured"
    sparsity: float = 0.5
    schedule: str = "one_shot"
    steps: int = 1
    epochs: int = 2
    batch_size: int = 64
    learning_rate: float = 1e-4
    max_accuracy_drop: float | None = None
    max_error_increase: float | None = None
    quantization: str = "none"
    devices: tuple[str, ...] = field(default=("host",))
    seed: int = 0

    @classmethod
    def from_job_spec(cls, spec: dict[str, Any]) -> "PruneSpec":
        """Build from the JSON job spec of the API (already validated there)."""
        schedule = spec.get("schedule") or {}
        finetune = spec.get("finetune") or {}
        return cls(
            method=spec.get("method", cls.method),
            granularity=spec.get("granularity", cls.granularity),
            sparsity=float((spec.get("target") or {}).get("sparsity", cls.sparsity)),
            schedule=schedule.get("kind", cls.schedule),
            steps=int(schedule.get("steps", 1 if schedule.get("kind", "one_shot") == "one_shot" else 5)),
            epochs=int(finetune.get("epochs", cls.epochs)),
            batch_size=int(finetune.get("batch_size", cls.batch_size)),
            learning_rate=float(finetune.get("learning_rate", cls.learning_rate)),
            max_accuracy_drop=spec.get("max_accuracy_drop"),
            max_error_increase=spec.get("max_error_increase"),
            quantization=spec.get("quantization", cls.quantization),
            devices=tuple(spec.get("devices") or ("host",)),
            seed=int(spec.get("seed", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["devices"] = list(self.devices)
        return out
