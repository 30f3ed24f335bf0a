"""Channel dependency groups of a Keras functional graph.

A *group* is a set of output channels that must be removed together: the filters of a
convolution (or the units of a Dense layer) and everything that inherits them - BatchNorm,
activations, pooling, depthwise convolutions, the inputs of the next layers - merged across
residual `Add`s, where all members must keep the same channels. Each tensor's last axis is
described as a list of (group, index) pairs, so `Concatenate` and `Flatten` are just list
operations. Groups that reach the model output or pass through a layer we cannot follow are
frozen, with the reason.
"""

from dataclasses import dataclass, field
from math import prod
from typing import Any

import keras

Chan = list[tuple[int, int]] | None

# Layers whose output channel c depends only on input channel c, and which hold no
# per-channel weights (or, for BatchNorm and depthwise convolutions, ones we slice).
PASS_THROUGH = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.Cropping1D,
    keras.layers.Cropping2D,
    keras.layers.UpSampling1D,
    keras.layers.UpSampling2D,
    keras.layers.Identity,
    keras.layers.GaussianNoise,
)
# keras.ops operations of a functional graph (`x + 3.0`, `x * (1 / 6)` in MobileNetV3's hard sigmoid):
# elementwise, so with one tensor input they keep its channels, and with two they join them like `Add`.
ELEMENTWISE_OPS = {
    "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum",
    "Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "HardSwish", "Silu", "Swish", "Tanh", "Gelu", "Elu",
    "LeakyRelu", "Softplus", "Negative", "Abs", "Square", "Sqrt", "Exp",
}  # fmt: skip
PRODUCERS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)
SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
DEPTHWISE = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
# Recurrent layers whose units are pruned as groups: a unit's gates (kernel and recurrent kernel
# columns, recurrent kernel row) go together.
RECURRENT = (keras.layers.SimpleRNN, keras.layers.GRU, keras.layers.LSTM)


def recurrent_gates(layer: keras.layers.Layer) -> int:
    return {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}[type(layer).__name__]


@dataclass
class Group:
    id: int
    size: int
    producers: list[str] = field(default_factory=list)
    tensors: list[Any] = field(default_factory=list)
    """Tensors that carry exactly this group, in order (for activation scores)."""
    frozen: str | None = None


@dataclass
class Node:
    layer: keras.layers.Layer
    inputs: list[Any]
    outputs: list[Any]


@dataclass
class ChannelGraph:
    model: keras.Model
    nodes: list[Node]
    groups: dict[int, Group]
    chans: dict[int, Chan]
    """id(tensor) -> its last axis as (group, index) pairs; None where unknown."""
    parent: dict[int, int]
    skipped: list[dict[str, str]]
    heads: dict[str, int] = field(default_factory=dict)
    """MultiHeadAttention layer name -> the group of its heads (pruned whole: queries, keys, values and
    their rows of the output projection)."""

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def chan(self, tensor: Any) -> Chan:
        chan = self.chans.get(id(tensor))
        return None if chan is None else [(self.find(g), i) for g, i in chan]

    def prunable(self) -> list[Group]:
        return [g for gid, g in sorted(self.groups.items()) if self.find(gid) == gid and g.frozen is None]


def _functional(model: keras.Model) -> keras.Model:
    if isinstance(model, keras.Sequential):
        return model._functional
    return model


def ordered_nodes(model: keras.Model) -> list[Node]:
    graph = _functional(model)
    nodes = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if isinstance(node.operation, keras.layers.InputLayer):
                continue
            nodes.append(Node(node.operation, list(node.input_tensors), list(node.output_tensors)))
    return nodes


def _is_op(operation: Any) -> bool:
    """An elementwise keras.ops operation (not a layer) of the graph."""
    return not isinstance(operation, keras.layers.Layer) and type(operation).__name__ in ELEMENTWISE_OPS


def _keeps_last_axis(layer: Any, node: Node) -> bool:
    """A Reshape that leaves the channel axis as it is (only the spatial axes change)."""
    if not isinstance(layer, keras.layers.Reshape) or len(node.inputs) != 1:
        return False
    before, after = node.inputs[0].shape, node.outputs[0].shape
    return before[-1] is not None and before[-1] == after[-1]


def _whole(chan: Chan, graph: ChannelGraph) -> int | None:
    """The group id if `chan` is one whole group in order, else None."""
    if not chan:
        return None
    g = chan[0][0]
    if len(chan) == graph.groups[g].size and all(c == (g, i) for i, c in enumerate(chan)):
        return g
    return None


def analyse(model: keras.Model) -> ChannelGraph:
    """Find the channel groups of `model` and which of them may be pruned."""
    nodes = ordered_nodes(model)
    graph = ChannelGraph(model, nodes, {}, {}, {}, [])
    uses: dict[str, int] = {}
    for node in nodes:
        uses[node.layer.name] = uses.get(node.layer.name, 0) + 1

    def freeze(chan: Chan, reason: str) -> None:
        for g in {graph.find(g) for g, _ in chan or []}:
            graph.groups[g].frozen = graph.groups[g].frozen or reason

    def new_group(layer: keras.layers.Layer, size: int, tensor: Any) -> list[tuple[int, int]]:
        gid = len(graph.groups)
        graph.groups[gid] = Group(gid, size, producers=[layer.name], tensors=[tensor])
        graph.parent[gid] = gid
        return [(gid, i) for i in range(size)]

    for node in nodes:
        layer, ins = node.layer, [graph.chan(t) for t in node.inputs]
        out: Chan = None
        name = type(layer).__name__
        if uses[layer.name] > 1:
            for chan in ins:
                freeze(chan, f"{layer.name} is shared by several calls")
            graph.skipped.append({"layer": layer.name, "reason": "shared layer"})
        elif isinstance(layer, SEPARABLE) or (isinstance(layer, PRODUCERS) and getattr(layer, "groups", 1) == 1):
            if isinstance(layer, SEPARABLE) and layer.depth_multiplier != 1:
                freeze(ins[0], f"{layer.name} has depth_multiplier {layer.depth_multiplier}")
            out = new_group(layer, int(node.outputs[0].shape[-1]), node.outputs[0])
        elif isinstance(layer, RECURRENT):
            if len(node.outputs) == 1 and not layer.stateful:
                out = new_group(layer, int(layer.units), node.outputs[0])
            else:
                freeze(ins[0], f"{layer.name} returns its states or is stateful")
                graph.skipped.append({"layer": layer.name, "reason": f"{name} returning states is not pruned"})
        elif isinstance(layer, keras.layers.MultiHeadAttention) and len(node.outputs) == 1:
            for chan in ins:  # the widths around the layer stay; only the number of heads changes
                freeze(chan, f"MultiHeadAttention {layer.name} keeps the width of its inputs (its heads are pruned)")
            graph.heads[layer.name] = len(graph.groups)
            new_group(layer, int(layer.num_heads), None)
            graph.groups[graph.heads[layer.name]].tensors = []
            out = new_group(layer, int(node.outputs[0].shape[-1]), node.outputs[0])
            graph.groups[out[0][0]].producers = [f"{layer.name}:output"]
            freeze(out, f"MultiHeadAttention {layer.name} keeps the width of its output projection")
        elif isinstance(layer, DEPTHWISE) and layer.depth_multiplier == 1:
            out = ins[0]
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, len(node.inputs[0].shape) - 1):
            out = ins[0]
        elif isinstance(layer, PASS_THROUGH) or (_is_op(layer) and len(ins) == 1):
            out = ins[0]
        elif _keeps_last_axis(layer, node) and ins[0] is not None:
            out = ins[0]  # squeeze-excite's Reshape of a pooled vector to (1, 1, C)
        elif _is_op(layer) or isinstance(
            layer,
            keras.layers.Add
            | keras.layers.Subtract
            | keras.layers.Multiply
            | keras.layers.Maximum
            | keras.layers.Minimum
            | keras.layers.Average,
        ):
            wholes = [_whole(c, graph) for c in ins]
            if all(w is not None for w in wholes) and len({graph.groups[w].size for w in wholes if w is not None}) == 1:
                root = wholes[0]
                assert root is not None
                for other in wholes[1:]:
                    assert other is not None
                    a, b = graph.find(root), graph.find(other)
                    if a != b:
                        graph.parent[b] = a
                        ga, gb = graph.groups[a], graph.groups[b]
                        ga.producers += gb.producers
                        ga.tensors += gb.tensors
                        ga.frozen = ga.frozen or gb.frozen
                out = graph.chan(node.inputs[0])
            else:
                for chan in ins:
                    freeze(chan, f"{name} {layer.name} joins tensors that are not whole channel groups")
                graph.skipped.append({"layer": layer.name, "reason": f"{name} of mixed channel groups"})
        elif isinstance(layer, keras.layers.Concatenate) and layer.axis in (-1, len(node.outputs[0].shape) - 1):
            if all(c is not None for c in ins):
                out = [pair for chan in ins for pair in (chan or [])]
            else:
                for chan in ins:
                    freeze(chan, f"Concatenate {layer.name} has an input of unknown channels")
        elif isinstance(layer, keras.layers.Flatten) and ins[0] is not None:
            spatial = prod(int(d) for d in node.inputs[0].shape[1:-1])
            out = list(ins[0]) * spatial
        else:
            for chan in ins:
                freeze(chan, f"{name} {layer.name} is not supported by channel pruning")
            if any(chan for chan in ins):
                graph.skipped.append({"layer": layer.name, "reason": f"{name} is not supported by channel pruning"})
        if out is not None and len(node.outputs) == 1:
            graph.chans[id(node.outputs[0])] = out
            whole = _whole(out, graph)
            if whole is not None and isinstance(layer, keras.layers.Activation | keras.layers.ReLU):
                graph.groups[whole].tensors.append(node.outputs[0])
    functional = _functional(model)
    for tensor in functional.outputs:
        freeze(graph.chan(tensor), "feeds the model output")
    return graph


def keep_indices(chan: Chan, kept: dict[int, set[int]]) -> list[int] | None:
    """Positions of `chan` that survive, given the kept indices per group; None keeps all."""
    if chan is None:
        return None
    return [pos for pos, (g, i) in enumerate(chan) if g not in kept or i in kept[g]]
