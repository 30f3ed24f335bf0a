"""Channel removal: rebuild a smaller Keras model that keeps the chosen channels of each group."""

from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from pruning.graph import DEPTHWISE, RECURRENT, SEPARABLE, ChannelGraph, keep_indices, recurrent_gates


def _take(array: NDArray[Any], axis: int, index: list[int] | None) -> NDArray[Any]:
    return array if index is None else np.take(array, index, axis=axis)


def _sliced_weights(
    layer: keras.layers.Layer, old: list[NDArray[Any]], keep_in: list[int] | None, keep_out: list[int] | None
) -> list[NDArray[Any]]:
    if isinstance(layer, SEPARABLE):
        depthwise, pointwise, *bias = old
        return [
            _take(depthwise, -2, keep_in),
            _take(_take(pointwise, -2, keep_in), -1, keep_out),
            *[_take(b, 0, keep_out) for b in bias],
        ]
    if isinstance(layer, DEPTHWISE):
        kernel, *bias = old
        return [_take(kernel, -2, keep_in), *[_take(b, 0, keep_in) for b in bias]]
    if isinstance(layer, RECURRENT):
        kernel, recurrent, *bias = old
        units = recurrent.shape[0]
        cols = None if keep_out is None else [g * units + k for g in range(recurrent_gates(layer)) for k in keep_out]
        return [
            _take(_take(kernel, 0, keep_in), 1, cols),
            _take(_take(recurrent, 0, keep_out), 1, cols),
            *[_take(b, b.ndim - 1, cols) for b in bias],
        ]
    if getattr(layer, "groups", 1) != 1:
        return old  # grouped convolutions are frozen by the analysis: their channels stay
    if isinstance(layer, keras.layers.BatchNormalization):
        return [_take(w, 0, keep_in) for w in old]
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense):
        kernel, *bias = old
        return [_take(_take(kernel, -2, keep_in), -1, keep_out), *[_take(b, 0, keep_out) for b in bias]]
    return old


def _sliced_heads(old: list[NDArray[Any]], heads: list[int]) -> list[NDArray[Any]]:
    """MultiHeadAttention weights (query, key, value kernels (in, heads, dim) and biases (heads, dim), then
    the output kernel (heads, dim, out) and bias) without the heads left out."""
    *projections, out_kernel = old[:-1] if old[-1].ndim == 1 else old
    sliced = [_take(w, 1 if w.ndim == 3 else 0, heads) for w in projections] + [_take(out_kernel, 0, heads)]
    return sliced + ([old[-1]] if old[-1].ndim == 1 else [])


def remove_channels(graph: ChannelGraph, kept: dict[int, set[int]]) -> keras.Model:
    """A new model without the channels that `kept` leaves out (group id -> kept indices)."""
    model = graph.model
    new_sizes: dict[str, int] = {}
    slices: dict[str, tuple[list[int] | None, list[int] | None]] = {}
    for node in graph.nodes:
        keep_in = keep_indices(graph.chan(node.inputs[0]), kept) if node.inputs else None
        keep_out = keep_indices(graph.chan(node.outputs[0]), kept) if node.outputs else None
        slices[node.layer.name] = (keep_in, keep_out)
        layer = node.layer
        if keep_out is not None and (
            isinstance(layer, SEPARABLE)
            or isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D)
            and not isinstance(layer, DEPTHWISE)
        ):
            new_sizes[layer.name] = len(keep_out)
        elif keep_out is not None and isinstance(layer, (keras.layers.Dense, *RECURRENT)):
            new_sizes[layer.name] = len(keep_out)

        elif keep_out is not None and isinstance(layer, keras.layers.Reshape):
            new_sizes[layer.name] = len(keep_out)  # a target shape that spells out the channels

    heads = {name: sorted(kept[graph.find(gid)]) for name, gid in graph.heads.items() if graph.find(gid) in kept}
    config: dict[str, Any] = model.get_config()
    for entry in config["layers"]:
        # Shapes come from calling the layers on the new, narrower tensors.
        entry.pop("build_config", None)
        cfg = entry["config"]
        if cfg.get("name") in heads:
            cfg["num_heads"] = len(heads[cfg["name"]])
        if cfg.get("name") in new_sizes:
            if entry["class_name"] == "Reshape":
                cfg["target_shape"] = [*cfg["target_shape"][:-1], new_sizes[cfg["name"]]]
                continue
            key = "units" if entry["class_name"] in ("Dense", "SimpleRNN", "GRU", "LSTM") else "filters"
            cfg[key] = new_sizes[cfg["name"]]
    rebuilt = type(model).from_config(config)
    for layer in rebuilt.layers:
        old_layer = model.get_layer(layer.name)
        old = [np.asarray(w) for w in old_layer.get_weights()]
        if not old:
            continue
        if layer.name in heads:
            layer.set_weights(_sliced_heads(old, heads[layer.name]))
            continue
        keep_in, keep_out = slices.get(layer.name, (None, None))
        layer.set_weights(_sliced_weights(old_layer, old, keep_in, keep_out))
    return rebuilt
