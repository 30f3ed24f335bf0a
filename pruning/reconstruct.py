"""Least-squares reconstruction after a channel cut: the layers that read cut channels are re-fitted to
the dense model's outputs, and BatchNorm is folded so that training starts from the re-fitted model.

He et al. 2017 ("Channel pruning for accelerating very deep neural networks") and ThiNet (Luo et al.
2017): once each group's kept channels are chosen, every layer that READS them (a Conv2D of any kernel
size through im2col patches, or a Dense; depthwise convolutions work per channel and stay) is re-fitted
so that its output on `SAMPLES` training inputs matches the dense layer's: the pruned model's inputs to
the layer (after the earlier re-fits, in graph order, so errors do not pile up) are the regressors, the
dense layer's pre-activation output (its kept channels) the target, ridge least squares with the bias
unpenalised. Then `fold_batchnorm`, not the recalibration a plain cut gets (why: its docstring).
Chosen on the tuning models only (bench/channel_recovery.py; docs/benchmarks.md, "Channel recovery on the
tuning models"); the report's `pruning.reconstruction` says which layers were re-fitted.
"""

from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from pruning.graph import DEPTHWISE, SEPARABLE, ChannelGraph, keep_indices

SAMPLES = 300
MAX_ROWS = 60_000
"""Regression rows (spatial positions x samples) per layer; drawn at random beyond this, batch by batch."""
BATCH = 8
"""Samples pushed through at once: a consumer's inputs (im2col patches for a conv) never exist for all samples."""
MAX_COLUMNS = 6_000
"""A layer with more regression columns (kernel taps x kept input channels) is not re-fitted, and the report says
so: its X'X alone would be (columns^2 x 8) bytes (a Dense after Flatten of 7x7x1280 would need 31 GB)."""
RIDGE = 0.1
"""The ridge penalty, times the mean diagonal of X'X. Chosen on the tuning models (bench/channel_recovery.py,
`ridgeR` rows; vww_mobilenet_v1, 50% cut, 3 epochs at 3x, points lost, plain cut 20.8): 1e-3 matched the
dense outputs more closely but left kernels up to 9x the norm of those they replaced, and lost 40.1; 0.1
lost 1.1 (seed 1: 5.2, plain 15.2); 1.0 shrank the re-fit back to chance and lost 30.9."""
FOLD_SAMPLES = 2048


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
        import tensorflow as tf

        kh, kw = layer.kernel_size
        x = tf.image.extract_patches(
            x,
            sizes=[1, kh, kw, 1],
            strides=[1, *layer.strides, 1],
            rates=[1, *layer.dilation_rate, 1],
            padding=layer.padding.upper(),
        ).numpy()
    return x.reshape(-1, x.shape[-1])


def _fit(rows: NDArray[Any], target: NDArray[Any], bias: bool) -> tuple[NDArray[Any], NDArray[Any] | None]:
    x = rows.astype(np.float64)
    if bias:
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
    gram = x.T @ x
    penalty = RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    if bias:
        penalty[-1, -1] = 0.0
    w = np.linalg.solve(gram + penalty, x.T @ target.astype(np.float64))
    return (w[:-1], w[-1]) if bias else (w, None)


def reconstruct(
    graph: ChannelGraph, kept: dict[int, set[int]], pruned: keras.Model, x: NDArray[Any]
) -> tuple[list[str], dict[str, str]]:
    """Re-fit the consumers of cut channels in `pruned` to `graph.model`'s outputs; returns the names of those
    re-fitted, and of those left as cut with the reason."""
    consumers = _consumers(graph, kept)
    x = x[:: max(1, len(x) // SAMPLES)][:SAMPLES]
    rng = np.random.default_rng(0)
    dense = graph.model
    done: list[str] = []
    skipped: dict[str, str] = {}
    for name, keep_out in consumers:
        layer, dense_layer = pruned.get_layer(name), dense.get_layer(name)
        taps = int(np.prod(layer.kernel_size)) if isinstance(layer, keras.layers.Conv2D) else 1
        columns = taps * int(layer.input.shape[-1]) + int(layer.use_bias)
        if columns > MAX_COLUMNS:
            skipped[name] = f"{columns} regression columns, more than {MAX_COLUMNS}: left as cut"
            continue
        rows, full = _sampled_rows(
            (layer, keras.Model(pruned.inputs, layer.input)),
            (dense_layer, keras.Model(dense.inputs, dense_layer.input)),
            x,
            rng,
        )
        weights = dense_layer.get_weights()  # the target: the output before the activation (logits)
        target = full @ weights[0].reshape(-1, weights[0].shape[-1]) + (weights[1] if len(weights) > 1 else 0)
        kernel, bias = _fit(rows, target if keep_out is None else target[:, keep_out], layer.use_bias)
        old = layer.get_weights()
        new = [kernel.reshape(old[0].shape).astype(old[0].dtype)]
        layer.set_weights(new + ([] if bias is None else [bias.astype(old[1].dtype)]))
        done.append(name)
    return done, skipped


def _sampled_rows(
    pruned: tuple[keras.layers.Layer, keras.Model],
    dense: tuple[keras.layers.Layer, keras.Model],
    x: NDArray[Any],
    rng: Any,
) -> tuple[NDArray[Any], NDArray[Any]]:
    """The layer's regression rows in the pruned model and the dense model's matching rows, `BATCH` samples at a
    time, at most `MAX_ROWS` in all (the same random positions of both)."""
    per_batch = max(1, MAX_ROWS * BATCH // max(len(x), 1))
    rows, full = [], []
    for i in range(0, len(x), BATCH):
        xb = x[i : i + BATCH]
        r = _rows(pruned[0], np.asarray(pruned[1](xb, training=False)))
        f = _rows(dense[0], np.asarray(dense[1](xb, training=False)))
        if len(r) > per_batch:
            pick = rng.choice(len(r), per_batch, replace=False)
            r, f = r[pick], f[pick]
        rows.append(r)
        full.append(f)
    return np.concatenate(rows), np.concatenate(full)


def fold_batchnorm(model: keras.Model, x: NDArray[Any]) -> int:
    """Set every BatchNorm's moving statistics to those of its inputs on (a sample of) `x`, and rescale its
    gamma and beta so that its inference output does not change; returns how many.

    Training normalises each batch by its own statistics, not the moving ones, so a re-fitted model
    trains as its recalibrated self whatever its moving statistics (vww_mobilenet_v1 at ridge 1e-3: 42.8%
    judged, 20.4% as the first training batches see it): the re-fit leaves narrower outputs than the
    dense model's, and normalising them back breaks the chain of re-fits. Once the moving statistics are
    the inputs' own, a batch's statistics are near them, and training starts from the re-fitted function
    (41.6%).
    """
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.scale
        and layer.center
        and layer.axis in (-1, len(layer.input.shape) - 1)
    ]
    if not layers or len(x) == 0:
        return 0
    sample = x[:: max(1, len(x) // FOLD_SAMPLES)][:FOLD_SAMPLES]
    inputs = keras.Model(model.inputs, [layer.input for layer in layers]).predict(sample, batch_size=128, verbose=0)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    for layer, z in zip(layers, inputs, strict=True):
        z = z.reshape(-1, z.shape[-1]).astype(np.float64)
        mean, var = z.mean(0), z.var(0)
        gamma, beta, old_mean, old_var = (np.asarray(w, np.float64) for w in layer.get_weights())
        old_std, new_std = np.sqrt(old_var + layer.epsilon), np.sqrt(var + layer.epsilon)
        folded = [gamma * new_std / old_std, beta + gamma * (mean - old_mean) / old_std, mean, var]
        layer.set_weights([w.astype("float32") for w in folded])
    return len(layers)
