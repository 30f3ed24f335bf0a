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
"""Samples whose regression rows exist at once: a consumer's inputs (im2col patches for a conv) never exist for all
samples."""
ACTIVATION_BYTES = 64 * 2**20
"""The layer inputs (pruned and dense) are computed for as many samples at once as fit in this, a multiple of
`BATCH`: one eager call of a Keras model costs milliseconds of Python per layer whatever its batch, and calls of
8 samples were nearly all of a channel cut's time (ic_resnet8 on 256 samples: 576 calls, 7 s of 7.5)."""
MAX_COLUMNS = 6_000
"""A layer with more regression columns (kernel taps x kept input channels) is not re-fitted, and the report says
so: its X'X alone would be (columns^2 x 8) bytes (a Dense after Flatten of 7x7x1280 would need 31 GB)."""
RIDGE = 0.1
"""The ridge penalty, times the mean diagonal of X'X. Chosen on the tuning models (bench/channel_recovery.py,
`ridgeR` rows; vww_mobilenet_v1, 50% cut, 3 epochs at 3x, points lost, plain cut 20.8): 1e-3 matched the
dense outputs more closely but left kernels up to 9x the norm of those they replaced, and lost 40.1; 0.1
lost 1.1 (seed 1: 5.2, plain 15.2); 1.0 shrank the re-fit back to chance and lost 30.9."""
FOLD_SAMPLES = 2048


def _consumers(
    graph: ChannelGraph, kept: dict[int, set[int]]
) -> tuple[list[tuple[str, list[int] | None]], dict[str, str]]:
    """(layer name, kept output positions) of each Conv2D / Dense that reads cut channels, in graph order; and the
    other layers with a kernel that read cut channels (Conv1D, separable, transposed, recurrent ...): left as cut,
    with the reason. Depthwise convolutions work per channel: their kept channels are exact as cut."""
    out, other = [], {}
    for node in graph.nodes:
        layer = node.layer
        if len(node.inputs) != 1 or isinstance(layer, DEPTHWISE):
            continue
        keep_in = keep_indices(graph.chan(node.inputs[0]), kept)
        if keep_in is None or len(keep_in) == node.inputs[0].shape[-1]:
            continue
        plain = isinstance(layer, keras.layers.Conv2D | keras.layers.Dense) and getattr(layer, "groups", 1) == 1
        if plain and not isinstance(layer, SEPARABLE):
            out.append((layer.name, keep_indices(graph.chan(node.outputs[0]), kept)))
        elif getattr(layer, "kernel", None) is not None:
            other[layer.name] = f"{type(layer).__name__}: only Conv2D and Dense layers are re-fitted; left as cut"
    return out, other


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


def _fit(gram: NDArray[Any], xty: NDArray[Any], bias: bool) -> tuple[NDArray[Any], NDArray[Any] | None]:
    """Ridge solution from the normal equations (the bias column last, unpenalised)."""
    penalty = RIDGE * np.trace(gram) / len(gram) * np.eye(len(gram))
    if bias:
        penalty[-1, -1] = 0.0
    w = np.linalg.solve(gram + penalty, xty)
    return (w[:-1], w[-1]) if bias else (w, None)


def reconstruct(
    graph: ChannelGraph, kept: dict[int, set[int]], pruned: keras.Model, x: NDArray[Any]
) -> tuple[list[str], dict[str, str]]:
    """Re-fit the consumers of cut channels in `pruned` to `graph.model`'s outputs; returns the names of those
    re-fitted, and of the layers left as cut with the reason."""
    consumers, skipped = _consumers(graph, kept)
    x = x[:: max(1, len(x) // SAMPLES)][:SAMPLES]
    rng = np.random.default_rng(0)
    dense = graph.model
    done: list[str] = []
    for name, keep_out in consumers:
        layer, dense_layer = pruned.get_layer(name), dense.get_layer(name)
        taps = int(np.prod(layer.kernel_size)) if isinstance(layer, keras.layers.Conv2D) else 1
        columns = taps * int(layer.input.shape[-1]) + int(layer.use_bias)
        if columns > MAX_COLUMNS:
            skipped[name] = f"{columns} regression columns, more than {MAX_COLUMNS}: left as cut"
            continue
        weights = dense_layer.get_weights()  # the target: the dense layer's output before the activation
        w = weights[0].reshape(-1, weights[0].shape[-1])
        b = weights[1] if len(weights) > 1 else np.zeros(w.shape[-1], w.dtype)
        if keep_out is not None:
            w, b = w[:, keep_out], b[keep_out]
        gram, xty = _normal_equations(
            (layer, keras.Model(pruned.inputs, layer.input)),
            (dense_layer, keras.Model(dense.inputs, dense_layer.input)),
            (w, b, layer.use_bias),
            x,
            rng,
        )
        kernel, bias = _fit(gram, xty, layer.use_bias)
        old = layer.get_weights()
        new = [kernel.reshape(old[0].shape).astype(old[0].dtype)]
        layer.set_weights(new + ([] if bias is None else [bias.astype(old[1].dtype)]))
        done.append(name)
    return done, skipped


LIVE_TENSORS = 3
"""A forward pass holds about this many of its largest activation at once (a layer's input and output, and a
residual branch waiting to be added): the chunk is sized by the largest activation ANY layer up to the consumer
makes, not by the consumer's input (a Dense head after pooling reads 8 KB a sample of a network whose first
layers make megabytes a sample)."""


def _peak_floats(model: keras.Model) -> int | None:
    """The most floats a sample makes in any one layer output of `model` (None: a dimension is not known)."""
    peak = 0
    for layer in model._flatten_layers(include_self=False):
        try:
            output = layer.output
        except (AttributeError, ValueError):  # a layer called more than once has no single output
            return None
        outputs = output if isinstance(output, list | tuple) else [output]
        for tensor in outputs:
            shape = tuple(getattr(tensor, "shape", ()) or ())[1:]
            if any(d is None for d in shape):
                return None
            peak = max(peak, int(np.prod(shape)))
    return peak


def _normal_equations(
    pruned: tuple[keras.layers.Layer, keras.Model],
    dense: tuple[keras.layers.Layer, keras.Model],
    target: tuple[NDArray[Any], Any, bool],
    x: NDArray[Any],
    rng: Any,
) -> tuple[NDArray[Any], NDArray[Any]]:
    """X'X and X'Y (float64) of the layer's regression rows in the pruned model against the dense layer's
    output on the same positions, `BATCH` samples at a time, at most `MAX_ROWS` positions in all: no row is
    kept, so memory is the columns squared whatever the model."""
    w, b, bias = target
    per_batch = max(1, MAX_ROWS * BATCH // max(len(x), 1))
    peak_pruned, peak_dense = _peak_floats(pruned[1]), _peak_floats(dense[1])
    known = peak_pruned is not None and peak_dense is not None
    per_sample = LIVE_TENSORS * 4 * ((peak_pruned or 0) + (peak_dense or 0)) if known else ACTIVATION_BYTES
    chunk = max(BATCH, ACTIVATION_BYTES // max(per_sample, 1) // BATCH * BATCH)
    gram: NDArray[Any] | None = None
    xty: NDArray[Any] | None = None
    for start in range(0, len(x), chunk):
        inputs = np.asarray(pruned[1](x[start : start + chunk], training=False))
        targets = np.asarray(dense[1](x[start : start + chunk], training=False))
        for i in range(0, len(inputs), BATCH):
            r, f = _rows(pruned[0], inputs[i : i + BATCH]), _rows(dense[0], targets[i : i + BATCH])
            if len(r) > per_batch:
                pick = rng.choice(len(r), per_batch, replace=False)
                r, f = r[pick], f[pick]
            r = r.astype(np.float64)
            if bias:
                r = np.concatenate([r, np.ones((len(r), 1))], axis=1)
            y = f.astype(np.float64) @ w + b
            gram = r.T @ r if gram is None else gram + r.T @ r
            xty = r.T @ y if xty is None else xty + r.T @ y
    if gram is None or xty is None:  # pruning.datasets refuses an empty split; this is its guard here
        raise ValueError("no training samples to re-fit on")
    return gram, xty


def fold_batchnorm(model: keras.Model, x: NDArray[Any]) -> int:
    """Set every top-level BatchNorm's moving statistics to those of its inputs on (a sample of) `x`, and
    rescale its gamma and beta so that its inference output does not change; returns how many.

    Training normalises each batch by its own statistics, not the moving ones, so a re-fitted model
    trains as its recalibrated self whatever its moving statistics (vww_mobilenet_v1 at ridge 1e-3: 42.8%
    judged, 20.4% as the first training batches see it): the re-fit leaves narrower outputs than the
    dense model's, and normalising them back breaks the chain of re-fits. Once the moving statistics are
    the inputs' own, a batch's statistics are near them, and training starts from the re-fitted function
    (41.6%). The statistics are summed `BATCH` samples at a time (a 224x224 MobileNetV2's BatchNorm inputs
    are ~24 MB a sample); a BatchNorm inside a nested model or a custom layer is left as it is.
    """
    layers = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        and layer.scale
        and layer.center
        and layer.axis in (-1, len(layer.input.shape) - 1)
    ]
    if not layers or len(x) == 0:
        return 0
    sample = x[:: max(1, len(x) // FOLD_SAMPLES)][:FOLD_SAMPLES]
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    sums = [np.zeros(int(layer.input.shape[-1])) for layer in layers]
    squares = [np.zeros(int(layer.input.shape[-1])) for layer in layers]
    seen = [0] * len(layers)
    for i in range(0, len(sample), BATCH):
        outs = probe(sample[i : i + BATCH], training=False)
        outs = outs if isinstance(outs, list | tuple) else [outs]
        for k, z in enumerate(outs):
            z = np.asarray(z, np.float64).reshape(-1, sums[k].shape[0])
            sums[k] += z.sum(0)
            squares[k] += (z * z).sum(0)
            seen[k] += len(z)
    for layer, total, total_sq, n in zip(layers, sums, squares, seen, strict=True):
        mean = total / n
        var = np.maximum(total_sq / n - mean * mean, 0.0)
        gamma, beta, old_mean, old_var = (np.asarray(w, np.float64) for w in layer.get_weights())
        old_std, new_std = np.sqrt(old_var + layer.epsilon), np.sqrt(var + layer.epsilon)
        folded = [gamma * new_std / old_std, beta + gamma * (mean - old_mean) / old_std, mean, var]
        layer.set_weights([w.astype("float32") for w in folded])
    return len(layers)
