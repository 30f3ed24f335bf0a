"""Sparsity schedules: the target sparsity after each round of prune -> fine-tune, and how many epochs
each round fine-tunes for."""

import math
from typing import Any

RECOVERY_SHARE: float | None = 0.5
"""An unstructured cut with a fixed budget (the job sets `finetune.epochs`) reaches its target within the
first half of the epochs: the last round (the one at the target) fine-tunes for ceil(share * epochs) and
the rounds before it share the rest, so the model recovers at the final sparsity (Zhu & Gupta 2017 stop
pruning well before training ends). Before, every round had the same epochs: with 5 epochs the model was
at 80% for the last one only. Chosen on the tuning models alone (bench/unstructured_recovery.py: 80% at 3
and 5 epochs; har_cnn, the one that loses points, lost about a point less, the others were within a
sample or two). None: every round the same epochs (what the default budget, which stops early, keeps).
Not confirmed on the held-out ds_cnn: on one dense model it lost 3.7 points at 5 epochs against 2.7 with
equal rounds (5.2 against 5.5 at 3 epochs; bench/heldout.py --paired-control, docs/benchmarks.md)."""


def recovery_share(spec: Any) -> float | None:
    """The share of a fixed budget the last round of `spec` (a PruneSpec) gets: RECOVERY_SHARE for an
    unstructured cut with set epochs (what was measured), None (equal rounds) otherwise."""
    return RECOVERY_SHARE if spec.granularity == "unstructured" and spec.epochs is not None else None


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


def epochs_per_round(epochs: int, steps: int, recovery_share: float | None) -> list[int]:
    """Fine-tuning epochs of each of `steps` rounds (`recovery_share`: see RECOVERY_SHARE). With a share,
    `epochs` in all: the last round gets
    ceil(recovery_share * epochs) as long as every round before it keeps an epoch (never less than an
    even share), the rounds before it split the rest, earlier rounds taking any extra."""
    if recovery_share is None:
        return [math.ceil(epochs / steps) if epochs else 0] * steps
    if steps <= 1:
        return [epochs]
    last = max(min(epochs - (steps - 1), math.ceil(recovery_share * epochs)), math.ceil(epochs / steps))
    rest, before = divmod(epochs - last, steps - 1)
    return [rest + (1 if i < before else 0) for i in range(steps - 1)] + [last]


def rounds_for(epochs: int, rounds: int, recovery_share: float | None) -> int:
    """How many rounds of a gradual schedule fit `epochs` with an epoch each before the last round's share."""
    if recovery_share is None:
        return max(1, min(rounds, epochs))
    return max(1, min(rounds, epochs - math.ceil(recovery_share * epochs) + 1))


def rounds_block(per_round: list[int]) -> dict[str, Any]:
    """The report's account of the planned fine-tuning epochs: per round, and how many run at the target."""
    total, last = sum(per_round), (per_round[-1] if per_round else 0)
    if len(per_round) <= 1:
        note = f"pruned to the target at once; all {total} planned epoch(s) fine-tune at it"
    else:
        note = (
            f"the target is reached in round {len(per_round)}, after {total - last} of {total} planned epoch(s); "
            f"the last {last} fine-tune at it"
        )
    return {"epochs_per_step": max(per_round, default=0), "epochs_per_round": per_round, "epochs_note": note}


def make_schedule(kind: str, target: float, steps: int) -> OneShot | Polynomial:
    if kind == "one_shot":
        return OneShot(target)
    if kind == "polynomial":
        return Polynomial(target, steps)
    raise ValueError(f"unknown schedule {kind!r}")
