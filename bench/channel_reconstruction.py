"""Least-squares reconstruction of the consumers after a channel cut (issue 13): a prototype, NOT wired in.

    .venv/bin/python bench/channel_reconstruction.py vww_mobilenet_v1      # right after the cut, no training
    .venv/bin/python bench/channel_recovery.py --models vww_mobilenet_v1 --variants one_shot:3:x3:lsq

He et al. 2017 ("Channel pruning for accelerating very deep neural networks") and ThiNet (Luo et al. 2017):
once each group's kept channels are chosen, re-fit the weights of every layer that READS them (a Conv2D of
any kernel size through im2col patches, or a Dense; depthwise convolutions work per channel and stay as
they are) so that its output on `SAMPLES` training inputs matches the dense model's output of that layer:
the pruned model's inputs to the layer (after the earlier re-fits, in graph order, so errors do not pile
up) are the regressors, the dense layer's output (its kept output channels) the target, ridge-regularised
least squares with the bias unpenalised. `use(True)` puts it into ChannelPruner.prune for a bench process
(between `remove_channels` and the BatchNorm recalibration); `use(False)` puts the engine's back.
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
import tensorflow as tf  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from pruning import strategies  # noqa: E402
from pruning.finetune import recalibrate_batchnorm  # noqa: E402
from pruning.graph import DEPTHWISE, SEPARABLE, ChannelGraph, keep_indices  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402

SAMPLES = 300
MAX_ROWS = 60_000  # spatial positions x samples, drawn at random beyond this
RIDGE = 1e-3  # times the mean diagonal of X'X
REFITTED: list[int] = []
"""How many layers each cut of this process re-fitted."""


def _consumers(graph: ChannelGraph, kept: dict[int, set[int]]) -> list[tuple[str, list[int] | None]]:
    """(layer name, kept output positions) of each Conv2D / Dense that reads cut channels, in graph order."""
    out = []
    for node in graph.nodes:
        layer = node.layer
        if not isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) or len(node.inputs) != 1:
            continue
        if isinstance(layer, (*DEPTHWISE, *SEPARABLE)) or getattr(layer, "groups", 1) != 1:
            continue
        keep_in = keep_indices(graph.chan(node.inputs[0]), kept)
        if keep_in is None or len(keep_in) == node.inputs[0].shape[-1]:
            continue
        out.append((layer.name, keep_indices(graph.chan(node.outputs[0]), kept)))
    return out


def _rows(layer: keras.layers.Layer, x: NDArray[Any]) -> NDArray[Any]:
    """The layer's input as regression rows: im2col patches (kh, kw, c order, as the kernel) for a conv."""
    if isinstance(layer, keras.layers.Conv2D):
        kh, kw = layer.kernel_size
        patches = tf.image.extract_patches(
            x,
            sizes=[1, kh, kw, 1],
            strides=[1, *layer.strides, 1],
            rates=[1, *layer.dilation_rate, 1],
            padding=layer.padding.upper(),
        )
        x = patches.numpy()
    return x.reshape(-1, x.shape[-1])


def _fit(rows: NDArray[Any], target: NDArray[Any], bias: bool) -> tuple[NDArray[Any], NDArray[Any] | None]:
    x = rows.astype(np.float64)
    y = target.astype(np.float64)
    if bias:
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    gram = x.T @ x
    penalty = RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    if bias:
        penalty[-1, -1] = 0.0
    w = np.linalg.solve(gram + penalty, x.T @ y)
    return (w[:-1], w[-1]) if bias else (w, None)


def reconstruct(graph: ChannelGraph, kept: dict[int, set[int]], pruned: keras.Model, x: NDArray[Any]) -> int:
    """Re-fit the consumers of cut channels in `pruned` to the dense model's outputs; returns how many."""
    consumers = _consumers(graph, kept)
    if not consumers:
        return 0
    x = x[:: max(1, len(x) // SAMPLES)][:SAMPLES]
    rng = np.random.default_rng(0)
    dense = graph.model
    dense_inputs = keras.Model(dense.inputs, [dense.get_layer(name).input for name, _ in consumers]).predict(
        x, batch_size=128, verbose=0
    )
    dense_inputs = dense_inputs if isinstance(dense_inputs, list) else [dense_inputs]
    for (name, keep_out), dense_input in zip(consumers, dense_inputs, strict=True):
        layer, dense_layer = pruned.get_layer(name), dense.get_layer(name)
        rows = _rows(layer, keras.Model(pruned.inputs, layer.input).predict(x, batch_size=128, verbose=0))
        full = _rows(dense_layer, dense_input)
        if len(rows) > MAX_ROWS:
            pick = rng.choice(len(rows), MAX_ROWS, replace=False)
            rows, full = rows[pick], full[pick]
        # The target: the dense layer's output before its activation (a softmax Dense's logits).
        weights = dense_layer.get_weights()
        target = full @ weights[0].reshape(-1, weights[0].shape[-1]) + (weights[1] if len(weights) > 1 else 0)
        target = target if keep_out is None else target[:, keep_out]
        kernel, bias = _fit(rows, target, layer.use_bias)
        old = layer.get_weights()
        new = [kernel.reshape(old[0].shape).astype(old[0].dtype)]
        layer.set_weights(new + ([bias.astype(old[1].dtype)] if bias is not None else []))
    return len(consumers)


ENGINE_PRUNE = strategies.ChannelPruner.prune


def use(on: bool) -> None:
    """Make ChannelPruner re-fit the consumers after each cut in this process (or not)."""

    def prune(self: strategies.ChannelPruner, model: keras.Model, sparsity: float) -> keras.Model:
        graph, scores = self._scored(model)
        kept = self._kept(graph, scores, sparsity)
        pruned = remove_channels(graph, kept)
        REFITTED.append(reconstruct(graph, kept, pruned, self.data.x_train))
        if strategies.RECALIBRATE_AFTER_PRUNE:
            recalibrate_batchnorm(pruned, self.data.x_train)
        return pruned

    strategies.ChannelPruner.prune = prune if on else ENGINE_PRUNE  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=("digits16_cnn", "ic_resnet8", "kws_dscnn", "vww_mobilenet_v1"))
    parser.add_argument("--sparsity", type=float, nargs="*", default=[0.5])
    args = parser.parse_args()
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
            n = reconstruct(graph, kept, pruned, x_fit) if how == "lsq" else 0
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
