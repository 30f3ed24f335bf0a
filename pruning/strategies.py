"""How each granularity prunes a model to a target: masks (unstructured, N:M) or channel removal."""

from dataclasses import dataclass
from typing import Any, Protocol

import keras
import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError
from pruning import masks, reconstruct, scoring
from pruning.counting import total_macs
from pruning.datasets import Data
from pruning.finetune import recalibrate_batchnorm
from pruning.graph import analyse
from pruning.spec import PruneSpec
from pruning.surgery import remove_channels

# Re-estimate BatchNorm statistics right after each cut, before fine-tuning starts from it.
RECALIBRATE_AFTER_PRUNE = True
RECONSTRUCT = True
"""A channel cut re-fits the layers that read the cut channels to the dense model's outputs (pruning.reconstruct)
and folds BatchNorm, instead of recalibrating it."""


@dataclass
class Snapshot:
    step: int
    sparsity: float
    metrics: dict[str, Any]
    state: Any


class Pruner(Protocol):
    variables: list[keras.Variable]
    masks: dict[str, NDArray[Any]]
    notes: dict[str, Any]

    def prune(self, model: keras.Model, sparsity: float) -> keras.Model: ...
    def snapshot(self, model: keras.Model) -> Any: ...
    def restore(self, state: Any) -> keras.Model: ...
    def finish(self, model: keras.Model) -> keras.Model: ...


class MaskPruner:
    """Zeros weights and holds them at zero: `unstructured` (per-layer or global) or `n_of_m`."""

    def __init__(
        self,
        model: keras.Model,
        data: Data,
        loss: Any,
        method: str,
        granularity: str,
        scope: str,
        n: int,
        m: int,
        block: int = 1,
    ) -> None:
        self.data, self.loss, self.method, self.block = data, loss, method, block
        self.granularity, self.scope, self.n, self.m = granularity, scope, n, m
        # N:M runs along a kernel's input channels; depthwise kernels have no such axis to thin.
        self.variables = masks.prunable_variables(model, depthwise=granularity != "n_of_m")
        if not self.variables:
            raise PruningError("nothing_to_prune", "the model has no Dense or convolution kernels to prune")
        self.masks: dict[str, NDArray[Any]] = {}
        self.notes: dict[str, Any] = (
            {"scope": scope, "block": block} if granularity == "unstructured" else {"n": n, "m": m, "axis": "input"}
        )
        self.model = model

    def prune(self, model: keras.Model, sparsity: float) -> keras.Model:
        scores = scoring.weight_scores(
            self.method, model, self.variables, self.data.x_train, self.data.y_train, self.loss
        )
        if self.granularity == "n_of_m":
            self.masks = {path: masks.n_of_m_mask(s, self.n, self.m) for path, s in scores.items()}
        elif self.block > 1:
            self.masks = masks.block_masks(scores, sparsity, self.block, self.scope)
        elif self.scope == "global":
            self.masks = masks.global_masks(scores, sparsity)
        else:
            self.masks = masks.per_layer_masks(scores, sparsity)
        masks.attach(self.variables, self.masks)
        if RECALIBRATE_AFTER_PRUNE:
            recalibrate_batchnorm(model, self.data.x_train)
        return model

    def snapshot(self, model: keras.Model) -> Any:
        return model.get_weights(), dict(self.masks)

    def restore(self, state: Any) -> keras.Model:
        weights, kept = state
        masks.strip(self.variables)
        self.model.set_weights(weights)
        self.masks = kept
        return self.model

    def finish(self, model: keras.Model) -> keras.Model:
        masks.strip(self.variables)
        return model


class ChannelPruner:
    """Removes whole channels and rebuilds a narrower model, group by group."""

    def __init__(self, model: keras.Model, data: Data, loss: Any, method: str) -> None:
        self.data, self.loss, self.method = data, loss, method
        graph = analyse(model)
        self.original = {g.producers[0]: g.size for g in graph.groups.values() if graph.find(g.id) == g.id}
        self.variables: list[keras.Variable] = []
        self.masks: dict[str, NDArray[Any]] = {}
        self.notes: dict[str, Any] = {
            "groups": [
                {"producers": g.producers, "channels": g.size, "prunable": g.frozen is None, "reason": g.frozen}
                for gid, g in sorted(graph.groups.items())
                if graph.find(gid) == gid
            ],
            "skipped": graph.skipped,
        }
        if not graph.prunable():
            raise PruningError(
                "nothing_to_prune",
                "no channel group of this model can be pruned: "
                + "; ".join(sorted({str(g["reason"]) for g in self.notes["groups"]})),
            )

    def _scored(self, model: keras.Model) -> tuple[Any, dict[int, NDArray[Any]]]:
        graph = analyse(model)
        return graph, scoring.channel_scores(graph, self.method, self.data.x_train, self.data.y_train, self.loss)

    def _kept(self, graph: Any, scores: dict[int, NDArray[Any]], sparsity: float) -> dict[int, set[int]]:
        """Each group keeps its best (1 - sparsity) share of its original channels, at least one."""
        kept = {}
        for g in graph.prunable():
            original = self.original.get(g.producers[0], g.size)
            keep = min(g.size, max(1, int(round((1 - sparsity) * original))))
            kept[g.id] = set(np.argsort(-scores[g.id], kind="stable")[:keep].tolist())
        return kept

    def prune(self, model: keras.Model, sparsity: float) -> keras.Model:
        graph, scores = self._scored(model)
        kept = self._kept(graph, scores, sparsity)
        pruned = remove_channels(graph, kept)
        refitted, skipped = reconstruct.reconstruct(graph, kept, pruned, self.data.x_train) if RECONSTRUCT else ([], {})
        # after a re-fit, recalibrating would normalise its narrower outputs away (bench/channel_recovery.py): fold
        folded = reconstruct.fold_batchnorm(pruned, self.data.x_train) if refitted else 0
        if not refitted and RECALIBRATE_AFTER_PRUNE:
            recalibrate_batchnorm(pruned, self.data.x_train)
        if refitted or skipped:
            self.notes["reconstruction"] = {
                "method": "ridge least squares to the outputs of the model before this cut (He et al. 2017)",
                "layers": refitted,
                "not_refitted": skipped,
                "samples": min(len(self.data.x_train), reconstruct.SAMPLES),
                "ridge": reconstruct.RIDGE,
                "batchnorm": f"folded ({folded} layers)" if folded else "recalibrated" if not refitted else "none",
            }
        return pruned

    def sparsity_for_macs(self, model: keras.Model, reduction: float) -> float:
        """The smallest channel sparsity whose cut removes at least `reduction` of the MACs."""
        dense = total_macs(model)
        graph, scores = self._scored(model)
        lo, hi = 0.0, 0.99
        if 1 - total_macs(remove_channels(graph, self._kept(graph, scores, hi))) / dense < reduction:
            raise PruningError("target_unreachable", f"channel pruning cannot remove {reduction:.0%} of the MACs")
        for _ in range(12):
            mid = (lo + hi) / 2
            if 1 - total_macs(remove_channels(graph, self._kept(graph, scores, mid))) / dense >= reduction:
                hi = mid
            else:
                lo = mid
        return hi

    def snapshot(self, model: keras.Model) -> Any:
        return model

    def restore(self, state: Any) -> keras.Model:
        return state

    def finish(self, model: keras.Model) -> keras.Model:
        return model


def make_pruner(model: keras.Model, data: Data, loss: Any, spec: PruneSpec) -> MaskPruner | ChannelPruner:
    if spec.method not in scoring.METHODS:
        raise PruningError("invalid_spec", f"unknown method {spec.method!r}; choose from {', '.join(scoring.METHODS)}")
    if spec.granularity == "channel":
        return ChannelPruner(model, data, loss, spec.method)
    assert spec.scope is not None  # PruneSpec.__post_init__ sets it
    return MaskPruner(model, data, loss, spec.method, spec.granularity, spec.scope, spec.n, spec.m, spec.block)
