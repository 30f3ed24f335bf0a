"""Sparsity schedules: the target sparsity after each round of prune -> fine-tune."""

from typing import Any


class OneShot:
    """Prune to the target at once, then fine-tune."""

    def __init__(self, target: float) -> None:
        if not 0.0 <= target < 1.0:
            raise ValueError(f"target sparsity must be in [0, 1), got {target}")
        self.target = target
        self.steps = 1

    def __call__(self, step: int) -> float:
        return self.target

    def get_config(self) -> dict[str, Any]:
        return {"kind": "one_shot", "target": self.target}


class Polynomial:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - t / n)^3, for rounds t = 1..n."""

    def __init__(self, target: float, steps: int, initial: float = 0.0, power: int = 3) -> None:
        if not 0.0 <= initial <= target < 1.0:
            raise ValueError(f"need 0 <= initial <= target < 1, got {initial}, {target}")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.target, self.steps, self.initial, self.power = target, steps, initial, power

    def __call__(self, step: int) -> float:
        if not 1 <= step <= self.steps:
            raise ValueError(f"step must be in 1..{self.steps}, got {step}")
        return self.target + (self.initial - self.target) * (1 - step / self.steps) ** self.power

    def get_config(self) -> dict[str, Any]:
        return {
            "kind": "polynomial",
            "target": self.target,
            "steps": self.steps,
            "initial": self.initial,
            "power": self.power,
        }


def make_schedule(kind: str, target: float, steps: int) -> OneShot | Polynomial:
    if kind == "one_shot":
        return OneShot(target)
    if kind == "polynomial":
        return Polynomial(target, steps)
    raise ValueError(f"unknown schedule {kind!r}")
