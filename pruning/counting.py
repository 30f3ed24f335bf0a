"""Parameters and multiply-accumulates per layer, for one sample (batch 1)."""

from dataclasses import dataclass
from math import prod

import keras
import numpy as np


@dataclass(frozen=True)
class LayerCount:
    layer: str
    kind: str
    params: int
    nonzero: int
    macs: int
    channels: int | None


def _shape(tensor: object) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(tensor, "shape")[1:])  # noqa: B009 - symbolic tensors


def _size(kernel_size: tuple[int, ...]) -> int:
    return prod(int(k) for k in kernel_size)


# Weight matrices per recurrent step: one per gate (LSTM: input, forget, cell, output; GRU: update, reset, new).
RECURRENT_GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}


def _recurrent_macs(layer: keras.layers.Layer, inputs: tuple[int, ...]) -> int:
    """Per step, each gate multiplies the input and the previous state by its kernels; times the steps."""
    cell = getattr(layer, "cell", None)
    gates = RECURRENT_GATES.get(type(layer).__name__, 0)
    if cell is None or not gates:
        return 0
    steps, features = inputs[-2:]
    units = int(cell.units)
    return steps * gates * units * (features + units)


def _attention_macs(layer: keras.layers.MultiHeadAttention) -> int:
    """Query, key and value projections, the scores, the weighted sum and the output projection."""
    nodes = getattr(layer, "_inbound_nodes", [])
    if not nodes:
        return 0
    tensors = list(nodes[0].input_tensors)
    query, value = _shape(tensors[0]), _shape(tensors[1] if len(tensors) > 1 else tensors[0])
    key = _shape(tensors[2]) if len(tensors) > 2 else value
    q_len, v_len = prod(query[:-1]), prod(value[:-1])
    heads, key_dim = int(layer._num_heads), int(layer._key_dim)
    value_dim = int(layer._value_dim or key_dim)
    out_dim = _shape(nodes[0].output_tensors[0])[-1]
    projections = heads * (q_len * query[-1] * key_dim + v_len * key[-1] * key_dim + v_len * value[-1] * value_dim)
    attention = heads * q_len * v_len * (key_dim + value_dim)
    return projections + attention + q_len * heads * value_dim * out_dim


def layer_macs(layer: keras.layers.Layer) -> int:
    """MACs of a layer's main op; layers without multiplies (pooling, activations) count 0."""
    if isinstance(layer, keras.layers.Bidirectional):
        inputs = _shape(layer.input)
        return _recurrent_macs(layer.forward_layer, inputs) + _recurrent_macs(layer.backward_layer, inputs)
    if isinstance(layer, keras.layers.RNN):
        return _recurrent_macs(layer, _shape(layer.input))
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return _attention_macs(layer)
    if isinstance(layer, keras.layers.Dense):
        return prod(_shape(layer.input)[:-1] or (1,)) * int(layer.kernel.shape[0]) * int(layer.units)
    if isinstance(layer, keras.layers.SeparableConv1D | keras.layers.SeparableConv2D):
        out = _shape(layer.output)
        cin = int(layer.depthwise_kernel.shape[-2])
        multiplier = int(layer.depth_multiplier)
        dw = prod(out[:-1]) * _size(layer.kernel_size) * cin * multiplier
        return dw + prod(out[:-1]) * cin * multiplier * int(layer.filters)
    if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        return prod(_shape(layer.output)) * _size(layer.kernel_size)
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        out = _shape(layer.output)
        cin = int(layer.kernel.shape[-2])
        return prod(out) * _size(layer.kernel_size) * cin
    return 0


def output_channels(layer: keras.layers.Layer) -> int | None:
    if isinstance(layer, keras.layers.Dense):
        return int(layer.units)
    if hasattr(layer, "filters") and layer.filters:
        return int(layer.filters)
    if isinstance(layer, keras.layers.DepthwiseConv1D | keras.layers.DepthwiseConv2D):
        return int(layer.kernel.shape[-2] * layer.depth_multiplier)
    return None


def count_layers(model: keras.Model) -> list[LayerCount]:
    rows = []
    for layer in model.layers:
        weights = [np.asarray(w) for w in layer.weights]
        params = sum(w.size for w in weights)
        if not params:
            continue
        rows.append(
            LayerCount(
                layer=layer.name,
                kind=type(layer).__name__,
                params=params,
                nonzero=sum(int(np.count_nonzero(w)) for w in weights),
                macs=layer_macs(layer),
                channels=output_channels(layer),
            )
        )
    return rows


def total_macs(model: keras.Model) -> int:
    return sum(layer_macs(layer) for layer in model.layers)


def folded_params(model: keras.Model) -> int:
    """Parameters once BatchNorm is folded into the layer before it, as the TFLite export does.

    Each weighted layer keeps its kernel and one bias per output channel (its own, or the one
    a following BatchNorm folds into it); BatchNorm itself adds nothing.
    """
    from pruning.graph import ordered_nodes

    nodes = ordered_nodes(model)
    feeds_bn = {
        node.inputs[0]._keras_history.operation.name
        for node in nodes
        if isinstance(node.layer, keras.layers.BatchNormalization)
    }
    total = 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if w.path.rsplit("/", 1)[-1].endswith("kernel")]
        if not kernels:
            continue
        total += sum(int(np.prod(k.shape)) for k in kernels)
        bias = getattr(layer, "bias", None)
        if bias is not None:
            total += int(np.prod(bias.shape))
        elif layer.name in feeds_bn:
            total += output_channels(layer) or 0
    return total
