"""Least-squares reconstruction of the consumers after a channel cut (issue 13): the bench side of
pruning/reconstruct.py, which the engine runs after every channel cut since this bench chose it.

    .venv/bin/python bench/channel_reconstruction.py vww_mobilenet_v1      # right after the cut, no training
    .venv/bin/python bench/channel_recovery.py --models vww_mobilenet_v1 --variants one_shot:3:x3:lsq:fold:ridge0.1

He et al. 2017 ("Channel pruning for accelerating very deep neural networks") and ThiNet (Luo et al. 2017):
once each group's kept channels are chosen, re-fit the weights of every layer that READS them (see
pruning/reconstruct.py). `use(on, after, ridge)` sets what ChannelPruner.prune does in a bench process:
`use(False)` is the engine before (the plain cut, BatchNorm recalibrated); `use(True, "fold", r)` is the
engine's re-fit at ridge `r`, BatchNorm folded; `use(True, "recalibrate" | "none", r)` the prototype's
re-fit followed by the BatchNorm recalibration or by nothing (the rows that showed why the engine folds).
TUNING models only (bench/engine_harness.py). Results and reading: docs/benchmarks.md, "Channel recovery
on the tuning models".
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from pruning import reconstruct as reconstruct_module  # noqa: E402
from pruning import strategies  # noqa: E402
from pruning.finetune import recalibrate_batchnorm  # noqa: E402
from pruning.reconstruct import RIDGE, reconstruct  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402

REFITTED: list[int] = []
"""How many layers each cut of this process re-fitted."""
START: list[dict[str, float]] = []
"""Each cut's validation accuracy right after the re-fit and what follows it: as judged (moving BatchNorm
statistics) and as the first training step sees it (each batch of 64 normalised by its own statistics)."""


def _start(model: keras.Model, x: NDArray[Any], y: NDArray[Any]) -> dict[str, float]:
    weights = model.get_weights()  # a call in training mode moves the BatchNorm statistics: put them back
    judged = model.predict(x, batch_size=256, verbose=0).argmax(-1)
    trained = np.concatenate([np.asarray(model(x[i : i + 64], training=True)) for i in range(0, len(x), 64)])
    model.set_weights(weights)
    return {"judged": float((judged == y).mean()), "training_mode": float((trained.argmax(-1) == y).mean())}


ENGINE_PRUNE = strategies.ChannelPruner.prune
AFTER = ("fold", "recalibrate", "none")
"""What follows the re-fit: the engine's `fold_batchnorm`, the BatchNorm recalibration of the prototype
(the engine's step after a plain cut), or nothing."""


def use(on: bool, after: str = "fold", ridge: float = RIDGE) -> None:
    """Make ChannelPruner re-fit the consumers after each cut in this process (the engine: with `fold`) or
    not (the engine before: the plain cut, recalibrated), with this ridge penalty."""
    reconstruct_module.RIDGE = ridge
    strategies.RECONSTRUCT = on and after == "fold"

    def prune(self: strategies.ChannelPruner, model: keras.Model, sparsity: float) -> keras.Model:
        if after == "fold":
            pruned = ENGINE_PRUNE(self, model, sparsity)
            REFITTED.append(len(self.notes.get("reconstruction", {}).get("layers", [])))
        else:
            graph, scores = self._scored(model)
            kept = self._kept(graph, scores, sparsity)
            pruned = remove_channels(graph, kept)
            REFITTED.append(len(reconstruct(graph, kept, pruned, self.data.x_train)[0]))
            if after == "recalibrate":
                recalibrate_batchnorm(pruned, self.data.x_train)
        START.append(_start(pruned, self.data.x_val, self.data.y_val))
        return pruned

    strategies.ChannelPruner.prune = prune if on else ENGINE_PRUNE  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=("digits16_cnn", "ic_resnet8", "kws_dscnn", "vww_mobilenet_v1"))
    parser.add_argument("--sparsity", type=float, nargs="*", default=[0.5])
    parser.add_argument("--ridge", type=float, default=RIDGE, help="the engine's by default (1e-3 for the older rows)")
    args = parser.parse_args()
    reconstruct_module.RIDGE = args.ridge
    from bench import channel_allocation
    from bench.engine_harness import MODELS
    from pruning.graph import analyse
    from pruning.scoring import channel_scores

    model, data, _ = MODELS[args.model][0]()
    x_fit = data.x_train[:-300]

    def accuracy(m: keras.Model) -> float:
        return float((m.predict(data.x_val, batch_size=256, verbose=0).argmax(-1) == data.y_val).mean())

    def gap(m: keras.Model) -> float:  # relative error of the output against the dense model's, on val
        a, b = model.predict(data.x_val, verbose=0), m.predict(data.x_val, verbose=0)
        return float(np.linalg.norm(a - b) / np.linalg.norm(a))

    print(f"{args.model}: dense val {accuracy(model):.3f}", flush=True)
    graph = analyse(model)
    original = {g.producers[0]: g.size for g in graph.prunable()}
    scores = channel_scores(graph, "magnitude", data.x_train, data.y_train, "sparse_categorical_crossentropy")
    for sparsity in args.sparsity:
        kept, _ = channel_allocation.allocate(graph, scores, original, sparsity, "uniform")  # the engine's cut
        line = []
        for how in ("plain", "lsq"):
            pruned = remove_channels(graph, kept)
            n = len(reconstruct(graph, kept, pruned, x_fit)[0]) if how == "lsq" else 0
            before = accuracy(pruned), gap(pruned)
            recalibrate_batchnorm(pruned, x_fit)
            after = accuracy(pruned), gap(pruned)
            line.append(
                f"{how} ({n} re-fitted): val {100 * before[0]:.1f}% (output error {before[1]:.2f}), "
                f"recalibrated {100 * after[0]:.1f}% ({after[1]:.2f})"
            )
        print(f"cut {sparsity:.0%}: " + "; ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
