"""Channel pruning to a latency budget on a device, in the spirit of NetAdapt (Yang et al. 2018).

In rounds: for every prunable channel group, propose removing the group's lowest-scored channels,
as few as lower the device's estimated latency by this round's step (a share of the remaining gap
that shrinks each round, never below `MIN_STEP` of the dense latency); fine-tune each proposal on a
few hundred training samples; measure it on a part of the training split held out for the search
(the validation split stays the report's); keep the proposal that loses the least accuracy per
millisecond saved. Until the estimate is within the budget. The estimate per proposal is
`pruning.estimate.keras_model` (the per-op cost model, no TFLite export); once it says the budget is
met, the model is exported and estimated from the `.tflite` itself, and the search goes on if that
misses. A proposal that would break the accuracy guard is never taken: when no proposal keeps it,
the search stops with the best model found and says so (`met: false`).

The long fine-tune afterwards is `run()`'s usual one.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from contract.devices import DeviceProfile, get_profile
from contract.errors import PruningError
from pruning import export, metrics
from pruning.datasets import Data
from pruning.estimate import estimate
from pruning.estimate.keras_model import estimate_keras_ms
from pruning.graph import ChannelGraph, Group, analyse, keep_indices
from pruning.scoring import channel_scores
from pruning.spec import PruneSpec
from pruning.surgery import remove_channels

MIN_STEP = 0.03
"""Smallest per-round latency step, as a share of the dense model's estimate."""
STEP_SHARE, STEP_DECAY = 0.5, 0.9
"""Round r asks each proposal for STEP_SHARE * STEP_DECAY**r of the remaining gap."""
MAX_ROUNDS = 40
HOLD_OUT_SHARE, HOLD_OUT_MIN, HOLD_OUT_MAX = 0.15, 64, 1000


@dataclass
class SearchResult:
    model: keras.Model
    report: dict[str, Any]


@dataclass
class _Proposal:
    group: Group
    removed: int
    estimate_ms: float
    model: keras.Model | None = None
    score: float = 0.0
    loss: float = 0.0


def hold_out(data: Data, seed: int) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any], NDArray[Any]]:
    """(x_fit, y_fit, x_hold, y_hold): a seeded share of the training split kept out of the search's fine-tuning."""
    n = len(data.x_train)
    k = min(HOLD_OUT_MAX, max(HOLD_OUT_MIN, int(HOLD_OUT_SHARE * n)))
    if n - k < k:
        raise PruningError("too_little_data", f"a latency search needs more than {2 * HOLD_OUT_MIN} training samples")
    order = np.random.default_rng(seed).permutation(n)
    fit, hold = order[k:], order[:k]
    return data.x_train[fit], data.y_train[fit], data.x_train[hold], data.y_train[hold]


def _channels(graph: ChannelGraph, kept: dict[int, set[int]]) -> Callable[[Any], int]:
    """Channel count of each tensor once `kept` (group id -> kept indices) is applied."""

    def count(tensor: Any) -> int:
        chan = graph.chan(tensor)
        index = keep_indices(chan, kept)
        return int(tensor.shape[-1]) if index is None else len(index)

    return count


class _Search:
    def __init__(
        self,
        data: Data,
        loss: Any,
        spec: PruneSpec,
        profile: DeviceProfile,
        log: Callable[[str], None],
        progress: Callable[[float], None],
    ) -> None:
        self.data, self.loss, self.spec, self.profile = data, loss, spec, profile
        self.log, self.progress = log, progress
        self.task = data.task
        self.metric = metrics.headline(self.task)
        # Positive = worse, in the metric's units (accuracy falls, MAE rises).
        self.sign = 1.0 if self.task == "classification" else -1.0
        self.x_fit, self.y_fit, self.x_hold, self.y_hold = hold_out(data, spec.seed)
        self.loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
        self.fraction = 0.0
        self.min_step = 0.0  # set once the dense estimate is known

    def estimate(self, model: keras.Model, channels: Callable[[Any], int] | None = None) -> float:
        return estimate_keras_ms(model, self.profile, self.spec.quantization, channels)

    def exported_ms(self, model: keras.Model) -> float:
        tflite = export.to_tflite(model, self.spec.quantization, self.data.x_train)
        return float(estimate(tflite, self.profile)["estimate_ms"])

    def evaluate(self, model: keras.Model) -> tuple[float, float]:
        """(headline metric, mean loss) on the search's hold-out."""
        # Eager calls: `predict` would trace a graph for every proposal's shapes.
        pred = np.concatenate(
            [
                keras.ops.convert_to_numpy(model(self.x_hold[i : i + 256], training=False))
                for i in range(0, len(self.x_hold), 256)
            ]
        )
        value = metrics.evaluate(pred, self.y_hold, self.task)[self.metric]
        return float(value), float(np.mean(keras.ops.convert_to_numpy(self.loss_fn(self.y_hold, pred))))

    def proposals(
        self, model: keras.Model, graph: ChannelGraph, order: dict[int, NDArray[Any]], now_ms: float, step: float
    ) -> tuple[list[_Proposal], float]:
        """Per group, the fewest lowest-scored channels whose removal lowers the estimate by `step`, and
        the step used: halved (down to `MIN_STEP` of the dense latency) while fewer than half of the
        groups can give it. Where no group gives even that, each group's largest cut that saves time."""
        groups = [g for g in graph.prunable() if g.size > 1]

        def ms(g: Group, removed: int) -> float:
            return self.estimate(model, _channels(graph, {g.id: set(order[g.id][removed:].tolist())}))

        most = {g.id: ms(g, g.size - 1) for g in groups}
        # A step only one or two groups can give would leave nothing to choose from (and cut those
        # groups deep): halve it until about half of the groups can compete, or the step is minimal.
        wanted = max(1, min(len(groups), max(2, len(groups) // 2)))
        while sum(most[g.id] <= now_ms - step for g in groups) < wanted and step > self.min_step:
            step = max(self.min_step, step / 2)
        goal = now_ms - step
        reach = [g for g in groups if most[g.id] <= goal]
        if not reach:
            return [_Proposal(g, g.size - 1, most[g.id]) for g in groups], step
        out = []
        for g in reach:
            lo, hi = 1, g.size - 1  # ms(hi) <= goal; find the smallest such cut
            while lo < hi:
                mid = (lo + hi) // 2
                if ms(g, mid) <= goal:
                    hi = mid
                else:
                    lo = mid + 1
            out.append(_Proposal(g, hi, ms(g, hi)))
        return out, step

    def short_finetune(self, model: keras.Model, round_index: int) -> None:
        """One pass over `spec.search_samples` training samples (a different slice each round).

        An eager loop on purpose: for a few batches, tracing `fit`'s graph for every proposal's new
        shapes costs more than the training itself."""
        import tensorflow as tf

        n = min(self.spec.search_samples, len(self.x_fit))
        start = (round_index * n) % max(1, len(self.x_fit) - n + 1)
        order = start + np.random.default_rng(self.spec.seed + round_index).permutation(n)
        optimizer = keras.optimizers.Adam(self.spec.learning_rate or SEARCH_LEARNING_RATE)
        batch = max(1, self.spec.batch_size)
        for first in range(0, n, batch):
            index = order[first : first + batch]
            with tf.GradientTape() as tape:
                value = tf.reduce_mean(self.loss_fn(self.y_fit[index], model(self.x_fit[index], training=True)))
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            self.progress(self.fraction)


SEARCH_LEARNING_RATE = 1e-3
"""The short fine-tunes that compare proposals, when the job sets no learning rate."""


def search_latency(
    model: keras.Model,
    data: Data,
    loss: Any,
    spec: PruneSpec,
    dense_tflite: bytes | None = None,
    log: Callable[[str], None] | None = None,
    progress: Callable[[float], None] | None = None,
) -> SearchResult:
    """Remove channels of `model` until its estimated latency on `spec.device` is at most
    `spec.latency_ms`, losing as little accuracy as the search can; the model and the search's log.

    `progress(fraction)` is called after every fine-tuning batch (it may raise to stop the search).
    """
    say = log or (lambda _m: None)
    profile = get_profile(str(spec.device))
    assert spec.latency_ms is not None, "run() searches only for a job with a latency budget"
    budget = float(spec.latency_ms)
    search = _Search(data, loss, spec, profile, say, progress or (lambda _f: None))
    guard = spec.max_accuracy_drop if data.task == "classification" else spec.max_error_increase
    started = time.perf_counter()

    dense_ms = search.estimate(model)
    search.min_step = MIN_STEP * dense_ms
    dense_exported = (
        float(estimate(dense_tflite, profile)["estimate_ms"]) if dense_tflite else search.exported_ms(model)
    )
    dense_value, dense_loss = search.evaluate(model)
    current, current_ms, current_value, current_loss = model, dense_ms, dense_value, dense_loss
    goal_ms = budget  # lowered when the exported model's estimate disagrees with the per-layer one
    rounds: list[dict[str, Any]] = []
    met, note, reached = False, None, None
    say(
        f"latency search on {profile.name}: dense {dense_exported:.4f} ms, budget {budget:.4f} ms, "
        f"hold-out {len(search.y_hold)} training samples ({search.metric} {dense_value:.4f})"
    )
    for r in range(MAX_ROUNDS + 1):
        if current_ms <= goal_ms:
            reached = search.exported_ms(current)
            if reached <= budget:
                met = True
                break
            goal_ms = min(goal_ms, current_ms) - (reached - budget) - 1e-6
            say(f"exported estimate {reached:.4f} ms misses the budget; searching on to {goal_ms:.4f} ms")
            continue
        if r == MAX_ROUNDS:
            note = f"stopped after {MAX_ROUNDS} rounds above the budget"
            break
        gap = current_ms - goal_ms
        step = min(gap, max(MIN_STEP * dense_ms, STEP_SHARE * STEP_DECAY**r * gap))
        graph = analyse(current)
        scores = channel_scores(graph, spec.method, search.x_fit, search.y_fit, loss)
        order = {gid: np.argsort(s, kind="stable") for gid, s in scores.items()}  # lowest score first
        proposals, step = search.proposals(current, graph, order, current_ms, step)
        proposals = [p for p in proposals if p.estimate_ms < current_ms]
        if not proposals:
            note = "no channel group can be cut further to lower the estimate"
            break
        for p in proposals:
            kept = {p.group.id: set(order[p.group.id][p.removed :].tolist())}
            p.model = remove_channels(graph, kept)
            search.short_finetune(p.model, r)
            p.score, p.loss = search.evaluate(p.model)
        within = [p for p in proposals if guard is None or search.sign * (dense_value - p.score) <= guard]
        if not within:
            least = min(search.sign * (dense_value - p.score) for p in proposals)
            note = (
                f"the budget cannot be met within max drop {guard}: every cut of round {r + 1} loses at least "
                f"{least:.4f} {search.metric} on the search's hold-out; returned the best model found"
            )
            break

        def per_ms(p: _Proposal, ms: float = current_ms, value: float = current_value, lv: float = current_loss) -> Any:
            """Accuracy lost per millisecond saved; then loss per millisecond; then the larger saving."""
            saved = ms - p.estimate_ms
            return (search.sign * (value - p.score) / saved, (p.loss - lv) / saved, -saved)

        best = min(within, key=per_ms)
        assert best.model is not None
        current, current_ms, current_value, current_loss = best.model, best.estimate_ms, best.score, best.loss
        search.fraction = min(1.0, max(0.0, (dense_ms - current_ms) / max(dense_ms - budget, 1e-9)))
        search.progress(search.fraction)
        group = ",".join(best.group.producers)
        rounds.append(
            {
                "round": r + 1,
                "group": group,
                "channels_removed": best.removed,
                "channels_left": best.group.size - best.removed,
                "step_ms": round(step, 4),
                "estimate_ms": round(current_ms, 4),
                "accuracy": round(current_value, 6),
                "proposals": len(proposals),
            }
        )
        say(
            f"search round {r + 1}: {group} -{best.removed} channels, {current_ms:.4f} ms, "
            f"hold-out {search.metric} {current_value:.4f} (best of {len(proposals)} proposals)"
        )
    if reached is None or not met:
        reached = search.exported_ms(current)
    if met:
        note = f"met after {len(rounds)} rounds"
    report = {
        "device": profile.name,
        "budget_ms": budget,
        "dense_estimate_ms": round(dense_exported, 4),
        "reached_estimate_ms": round(reached, 4),
        "met": bool(met and reached <= budget),
        "rounds": rounds,
        "note": note,
        "estimator": "per-op cost model on the Keras graph for proposals; the exported .tflite for the result",
        "hold_out": {"samples": int(len(search.y_hold)), "metric": search.metric, "dense": dense_value},
        "proposal_finetune_samples": int(min(spec.search_samples, len(search.x_fit))),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    return SearchResult(current, report)
