"""Layer-adaptive channel allocation at the uniform cut's MACs (issue 13): a prototype, NOT wired into the engine.

    .venv/bin/python bench/channel_recovery.py --models vww_mobilenet_v1 --variants one_shot:3:x3 one_shot:3:x3:lamp
    .venv/bin/python bench/channel_allocation.py vww_mobilenet_v1          # the EagleEye-style proxy check

The engine's channel cut is uniform: every group keeps (1 - sparsity) of its original channels
(pruning.strategies.ChannelPruner._kept). The allocations tried here spend the same MACs differently:
- `lamp`: one threshold over all groups' channel scores made comparable LAMP's way (Lee et al. 2021,
  "Layer-adaptive sparsity for the magnitude-based pruning", applied to channels): a channel's squared
  score over the sum of the squared scores of the channels of its group at least as good. A group's best
  channel scores 1, and with equal scores every group keeps the same number of channels, so thin groups
  lose a smaller share and wide ones a larger;
- `floor`: like uniform, but no group keeps fewer than `FLOOR_CHANNELS` (or all it has); the other groups
  are cut deeper.
Each takes the lowest threshold (the shallowest deeper cut) whose rebuilt model has at most the uniform
cut's MACs (pruning.counting.total_macs), so the user's speedup does not shrink; where none does, the
uniform cut is used and the bench says so. `use(how)` puts one into ChannelPruner for a bench process.

The proxy check (`main`) asks whether EagleEye (Li et al. 2020: recalibrate BatchNorm, score candidate
allocations on held-back data, keep the best) could choose per job: right after the 50% cut it prints,
per allocation (uniform, lamp, floor and `--random` random ones at the same MACs), the accuracy on 300
training samples the recalibration did not see. TUNING models only (bench/engine_harness.py).
Results and reading: docs/benchmarks.md, "Channel recovery on the tuning models".
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine_harness.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from pruning import strategies  # noqa: E402
from pruning.counting import total_macs  # noqa: E402
from pruning.graph import ChannelGraph  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402

ALLOCATIONS = ("uniform", "lamp", "floor")
FLOOR_CHANNELS = 16
Kept = dict[int, set[int]]


def _best(scores: NDArray[Any], keep: int) -> set[int]:
    return set(np.argsort(-scores, kind="stable")[:keep].tolist())


def uniform_counts(graph: ChannelGraph, original: dict[str, int], sparsity: float) -> dict[int, int]:
    """(1 - sparsity) of each group's original channels, at least one, at most what it has now (the engine's)."""
    return {
        g.id: min(g.size, max(1, int(round((1 - sparsity) * original.get(g.producers[0], g.size)))))
        for g in graph.prunable()
    }


def lamp_scores(scores: NDArray[Any]) -> NDArray[Any]:
    """Per channel: its squared score over the sum of the squared scores of the channels not worse than it."""
    order = np.argsort(scores, kind="stable")
    squared = np.asarray(scores, np.float64)[order] ** 2
    tail = np.cumsum(squared[::-1])[::-1]
    out = np.empty(len(scores))
    out[order] = squared / np.maximum(tail, 1e-30)
    return out


def macs(graph: ChannelGraph, kept: Kept) -> int:
    return total_macs(remove_channels(graph, kept))


def _lamp(graph: ChannelGraph, scores: dict[int, NDArray[Any]], budget: int) -> Kept | None:
    normalised = {g.id: lamp_scores(scores[g.id]) for g in graph.prunable()}
    thresholds = np.unique(np.concatenate(list(normalised.values())))

    def cut(t: float) -> Kept:  # each group's best channel scores exactly 1: every group keeps one
        return {gid: set(np.flatnonzero(s >= t).tolist()) for gid, s in normalised.items()}

    lo, hi = 0, len(thresholds) - 1
    if macs(graph, cut(thresholds[hi])) > budget:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if macs(graph, cut(thresholds[mid])) <= budget else (mid + 1, hi)
    return cut(thresholds[hi])


def _deepest(
    graph: ChannelGraph, counts_at: Any, scores: dict[int, NDArray[Any]], budget: int, lo: float
) -> Kept | None:
    """The shallowest cut `counts_at(s)`, s in [lo, 0.99], within `budget` MACs (bisection, 10 steps)."""

    def cut(s: float) -> Kept:
        return {gid: _best(scores[gid], n) for gid, n in counts_at(s).items()}

    hi = 0.99
    if macs(graph, cut(hi)) > budget:
        return None
    for _ in range(10):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if macs(graph, cut(mid)) <= budget else (mid, hi)
    return cut(hi)


def allocate(
    graph: ChannelGraph, scores: dict[int, NDArray[Any]], original: dict[str, int], sparsity: float, how: str
) -> tuple[Kept, str]:
    """(kept channels per group, the allocation actually used) at `sparsity`, at most the uniform cut's MACs."""
    uniform = {gid: _best(scores[gid], n) for gid, n in uniform_counts(graph, original, sparsity).items()}
    if how == "uniform":
        return uniform, how
    budget = macs(graph, uniform)
    if how == "lamp":
        kept = _lamp(graph, scores, budget)
    elif how == "floor":
        floors = {g.id: min(g.size, FLOOR_CHANNELS) for g in graph.prunable()}
        counts = lambda s: {gid: max(n, floors[gid]) for gid, n in uniform_counts(graph, original, s).items()}  # noqa: E731
        kept = _deepest(graph, counts, scores, budget, sparsity)
    elif how.startswith("random"):  # random per-group shares, scaled together to the budget
        rng = np.random.default_rng(int(how[6:] or 0))
        share = {g.id: rng.uniform(0.3, 1.0) for g in graph.prunable()}
        sizes = {g.id: original.get(g.producers[0], g.size) for g in graph.prunable()}
        counts = lambda s: {  # noqa: E731
            gid: min(size, max(1, int(round((1 - s) * share[gid] / max(share.values()) * size * 2))))
            for gid, size in sizes.items()
        }
        kept = _deepest(graph, counts, scores, budget, 0.0)
    else:
        raise ValueError(f"unknown allocation {how!r}")
    return (uniform, f"uniform (FALLBACK: {how} cannot match the uniform MACs)") if kept is None else (kept, how)


USED: list[str] = []
"""The allocation each cut of this process used (a fallback says so)."""


def use(how: str) -> None:
    """Make ChannelPruner cut with allocation `how` in this process."""

    def kept(self: strategies.ChannelPruner, graph: Any, scores: dict[int, NDArray[Any]], sparsity: float) -> Kept:
        chosen, used = allocate(graph, scores, self.original, sparsity, how)
        USED.append(used)
        return chosen

    strategies.ChannelPruner._kept = kept  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=("digits16_cnn", "ic_resnet8", "kws_dscnn", "vww_mobilenet_v1"))
    parser.add_argument("--random", type=int, default=6)
    args = parser.parse_args()
    import keras

    from bench.engine_harness import MODELS
    from pruning.finetune import recalibrate_batchnorm
    from pruning.graph import analyse
    from pruning.scoring import channel_scores

    model, data, _ = MODELS[args.model][0]()
    x_fit, x_hold, y_hold = data.x_train[:-300], data.x_train[-300:], data.y_train[-300:]
    graph = analyse(model)
    original = {g.producers[0]: g.size for g in graph.prunable()}
    scores = channel_scores(graph, "magnitude", data.x_train, data.y_train, "sparse_categorical_crossentropy")
    dense = total_macs(model)

    def accuracy(m: keras.Model, x: NDArray[Any], y: NDArray[Any]) -> float:
        return float((m.predict(x, batch_size=256, verbose=0).argmax(-1) == y).mean())

    hold, val = accuracy(model, x_hold, y_hold), accuracy(model, data.x_val, data.y_val)
    print(f"{args.model}: dense hold {hold:.3f} val {val:.3f}")
    for how in [*ALLOCATIONS, *(f"random{i}" for i in range(args.random))]:
        kept, used = allocate(graph, scores, original, 0.5, how)
        pruned = remove_channels(graph, kept)
        recalibrate_batchnorm(pruned, x_fit)
        print(
            f"{how:9s} ({used}): MACs kept {total_macs(pruned) / dense:.3f}, after the cut + recalibration: "
            f"hold {accuracy(pruned, x_hold, y_hold):.3f} val {accuracy(pruned, data.x_val, data.y_val):.3f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
