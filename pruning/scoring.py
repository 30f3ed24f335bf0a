"""Importance scores (higher = more important), per weight and per channel group.

- magnitude: |w|; a channel's score is the L1 norm of its filter(s).
- gradient: first-order Taylor |w * dL/dw|, accumulated over batches of the training split.
- activation: per weight |w| * mean |input activation| of its input channel; per channel the
  mean |activation| of the channel over the data (after its activation function, where it has one).
"""

from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from pruning.graph import DEPTHWISE, SEPARABLE, ChannelGraph, Group

METHODS = ("magnitude", "gradient", "activation")

# Scores need a representative sample, not the whole split; this bounds their cost.
SCORE_SAMPLES = 2048


def _sample(
    x: NDArray[Any], y: NDArray[Any] | None = None, n: int = SCORE_SAMPLES
) -> tuple[NDArray[Any], NDArray[Any] | None]:
    return x[:n], (None if y is None else y[:n])


def taylor(
    model: keras.Model,
    variables: list[keras.Variable],
    x: NDArray[Any],
    y: NDArray[Any],
    loss: Any,
    batch_size: int = 64,
) -> dict[str, NDArray[Any]]:
    """Sum over batches of |w * dL/dw| for each variable, with the model's loss."""
    import tensorflow as tf

    loss_fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    x, y = x[:SCORE_SAMPLES], y[:SCORE_SAMPLES]
    totals = {v.path: np.zeros(v.shape, np.float64) for v in variables}
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        with tf.GradientTape() as tape:
            value = loss_fn(yb, model(xb, training=False))
            value = tf.reduce_mean(value)
        grads = tape.gradient(value, [v.value for v in variables])
        for v, g in zip(variables, grads, strict=True):
            if g is not None:
                totals[v.path] += np.abs(np.asarray(v) * np.asarray(g))
    return totals


def _layer_inputs(model: keras.Model, layers: list[keras.layers.Layer], x: NDArray[Any]) -> dict[str, NDArray[Any]]:
    """Mean |input| per input feature (last axis) of each layer, over the sample."""
    from pruning.graph import ordered_nodes

    wanted = {layer.name for layer in layers}
    nodes = [n for n in ordered_nodes(model) if n.layer.name in wanted]
    probe = keras.Model(model.inputs, [n.inputs[0] for n in nodes])
    outputs = probe.predict(x, batch_size=256, verbose=0)
    if len(nodes) == 1:
        outputs = [outputs]
    return {n.layer.name: np.abs(o).reshape(-1, o.shape[-1]).mean(0) for n, o in zip(nodes, outputs, strict=True)}


# Whether magnitude scores see a kernel through the BatchNorm that follows it (see `folded_scales`).
FOLD_BATCHNORM = True


def folded_scales(model: keras.Model) -> dict[str, NDArray[Any]]:
    """Per output channel, |gamma| / sqrt(var + eps) of the BatchNorm that alone consumes a layer's
    output, keyed by the layer's kernel path (its depthwise kernel's for depthwise convolutions).

    BatchNorm makes a kernel's scale arbitrary; the export folds it into the kernel, and these are
    the factors it folds in, so magnitudes of different layers become comparable.
    """
    from pruning.graph import ordered_nodes

    nodes = ordered_nodes(model)
    producer = {id(t): n.layer for n in nodes for t in n.outputs}
    consumers: dict[int, int] = {}
    for n in nodes:
        for t in n.inputs:
            consumers[id(t)] = consumers.get(id(t), 0) + 1
    out = {}
    for n in nodes:
        bn = n.layer
        if not isinstance(bn, keras.layers.BatchNormalization) or consumers.get(id(n.inputs[0]), 0) != 1:
            continue
        if bn.axis not in (-1, len(n.inputs[0].shape) - 1):
            continue
        layer = producer.get(id(n.inputs[0]))
        if isinstance(layer, DEPTHWISE) and layer.depth_multiplier == 1:
            kernel = layer.kernel  # Keras 3 names a depthwise convolution's kernel `kernel`
        elif isinstance(layer, SEPARABLE):
            kernel = layer.pointwise_kernel
        elif isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense):
            kernel = layer.kernel
        else:
            continue
        gamma = np.asarray(bn.gamma) if bn.scale else np.ones(bn.moving_variance.shape)
        scale = np.abs(gamma) / np.sqrt(np.asarray(bn.moving_variance) + bn.epsilon)
        # Broadcast over the kernel: output channels are its last axis, a depthwise kernel's -2.
        shape = [1] * len(kernel.shape)
        shape[-2 if isinstance(layer, DEPTHWISE) else -1] = scale.size
        out[kernel.path] = scale.reshape(shape)
    return out


def _magnitude(model: keras.Model, variables: list[keras.Variable]) -> dict[str, NDArray[Any]]:
    """|w|, times the folded BatchNorm scale of each output channel where one follows."""
    scales = folded_scales(model) if FOLD_BATCHNORM else {}
    return {v.path: np.abs(np.asarray(v)) * scales.get(v.path, 1.0) for v in variables}


def weight_scores(
    method: str, model: keras.Model, variables: list[keras.Variable], x: NDArray[Any], y: NDArray[Any], loss: Any
) -> dict[str, NDArray[Any]]:
    """A score for every weight of each prunable variable."""
    if method == "magnitude":
        return _magnitude(model, variables)
    if method == "gradient":
        return taylor(model, variables, x, y, loss)
    if method == "activation":
        owners = {v.path: layer for layer in model.layers for v in layer.weights}
        stats = _layer_inputs(
            model, list({owners[v.path].name: owners[v.path] for v in variables}.values()), _sample(x)[0]
        )
        scores, magnitudes = {}, _magnitude(model, variables)
        for v in variables:
            w = magnitudes[v.path]
            act = stats[owners[v.path].name]
            # Kernels keep their input channels on axis -2 (Dense: rows; Conv: (..., in, out)).
            scores[v.path] = w * act.reshape(*([1] * (w.ndim - 2)), -1, 1) if w.shape[-2] == act.size else w
        return scores
    raise ValueError(f"unknown scoring method {method!r}")


def _filter_kernel(layer: keras.layers.Layer) -> keras.Variable:
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return layer._output_dense.kernel  # (heads, value_dim, out): a head's rows of the output projection
    if isinstance(layer, keras.layers.RNN):
        return layer.cell.kernel  # (inputs, gates * units), gate by gate
    return layer.pointwise_kernel if isinstance(layer, SEPARABLE) else layer.kernel


def channel_scores(
    graph: ChannelGraph, method: str, x: NDArray[Any], y: NDArray[Any], loss: Any
) -> dict[int, NDArray[Any]]:
    """One score per channel of each prunable group, aggregated over the whole group."""
    groups = graph.prunable()
    # Attention heads are no tensor's channels: they are scored by their weights, with the activation method too.
    headless = [g for g in groups if not g.tensors]
    if method == "activation" and headless:
        scores = _kernel_scores(graph, [g for g in groups if g.tensors], "activation", x, y, loss)
        return {**scores, **_kernel_scores(graph, headless, "magnitude", x, y, loss)}
    return _kernel_scores(graph, groups, method, x, y, loss)


def _kernel_scores(
    graph: ChannelGraph, groups: list[Group], method: str, x: NDArray[Any], y: NDArray[Any], loss: Any
) -> dict[int, NDArray[Any]]:
    model = graph.model
    if method == "activation":
        if not groups:
            return {}
        tensors = [t for g in groups for t in g.tensors]
        probe = keras.Model(model.inputs, tensors)
        outputs = probe.predict(_sample(x)[0], batch_size=256, verbose=0)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        means = [np.abs(o).reshape(-1, o.shape[-1]).mean(0) for o in outputs]
        scores, i = {}, 0
        for g in groups:
            scores[g.id] = np.mean(means[i : i + len(g.tensors)], axis=0)
            i += len(g.tensors)
        return scores
    kernels = {name: _filter_kernel(model.get_layer(name)) for g in groups for name in g.producers}
    if method == "gradient":
        per_weight = taylor(model, list(kernels.values()), x, y, loss)
    elif method == "magnitude":
        # Raw filter norms: folding BatchNorm in (as for weights) picked worse channels on MobileNetV1
        # (docs/benchmarks.md, Engine section).
        per_weight = {k.path: np.abs(np.asarray(k)) for k in kernels.values()}
    else:
        raise ValueError(f"unknown scoring method {method!r}")
    scores = {}
    for g in groups:
        total = np.zeros(g.size)
        for name in g.producers:
            k = per_weight[kernels[name].path]
            if name in graph.heads:
                k = np.moveaxis(k, 0, -1)  # heads last
            filt = k.reshape(-1, k.shape[-1]).sum(0)
            filt = filt.reshape(-1, g.size).sum(0)  # a recurrent unit's gates count as one channel
            # Residual members can differ in fan-in: normalise so each producer counts alike.
            total += filt / (filt.mean() + 1e-12)
        scores[g.id] = total
    return scores
