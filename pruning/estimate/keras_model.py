"""The per-op latency estimate of a Keras model without a TFLite round-trip.

Each Keras layer is mapped to the TFLite operators the export makes of it (BatchNormalization
folded into the convolution before it, ReLU/ReLU6 fused into the op that produces its input, Conv1D
as RESHAPE + CONV_2D + RESHAPE, Flatten as four view ops, Dropout gone), with the same `OpCost`
fields `costs.analyse` reads off a `.tflite` file; the time of each op is then `costs.op_time_us`,
the same cost model `estimator.estimate` uses. The latency search calls this for every proposal, and
`channels` lets it ask "what if these channels were gone" without rebuilding the model.

What it does not model: weight zeros (irrelevant for channel-pruned dense models: no sparse path),
and the cold-weight DRAM term only roughly (peak activations taken as the largest op's in + out).
tests/pruning/test_latency_search.py checks it against the `.tflite`-based estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import keras

from contract.devices import DeviceProfile
from pruning.estimate.costs import OpCost, first_op_us, op_time_us
from pruning.estimate.memory import packed_split, streamed_weights_us
from pruning.graph import DEPTHWISE, SEPARABLE, ordered_nodes

ChannelsFn = Callable[[Any], int]

_FUSABLE_ACTIVATIONS = ("relu", "relu6", "linear")
_VANISH = (
    keras.layers.Dropout,
    keras.layers.SpatialDropout1D,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.Identity,
    keras.layers.InputLayer,
)
_POOLS = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
)
_GLOBAL_POOLS = (
    keras.layers.GlobalAveragePooling1D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling1D,
    keras.layers.GlobalMaxPooling2D,
)
_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Maximum,
    keras.layers.Minimum,
    keras.layers.Average,
)


class _Builder:
    """Walks the layers in execution order and emits the TFLite ops each becomes."""

    def __init__(self, model: keras.Model, quantization: str, channels: ChannelsFn | None) -> None:
        self.quantization = quantization
        self.act_bytes = 1 if quantization == "int8" else 4
        self.channels = channels or (lambda t: int(t.shape[-1]))
        self.nodes = ordered_nodes(model)
        self.uses: dict[int, int] = {}
        self.consumers: dict[int, list[keras.layers.Layer]] = {}
        for node in self.nodes:
            for t in node.inputs:
                self.uses[id(t)] = self.uses.get(id(t), 0) + 1
                self.consumers.setdefault(id(t), []).append(node.layer)
        self.kind: dict[int, str] = {}  # id(tensor) -> "mac" | "add": what a BN or ReLU may fuse into
        self.costs: list[OpCost] = []

    # -- sizes

    def elements(self, t: Any) -> int:
        spatial = [int(d) for d in t.shape[1:-1]]
        return int(math.prod(spatial)) * self.channels(t) if len(t.shape) > 1 else 1

    def nbytes(self, t: Any) -> int:
        return self.elements(t) * self.act_bytes

    def dtype(self, weight_elements: int = 0) -> str:
        if self.quantization == "int8":
            return "int8"
        if self.quantization == "dynamic_int8" and weight_elements >= 1024:
            return "hybrid"  # the converter leaves small weight tensors in float
        return "float32"

    # -- ops

    def emit(self, op: str, cls: str, **fields: Any) -> OpCost:
        cost = OpCost(len(self.costs), op, cls, fields.pop("dtype", self.dtype()), **fields)
        self.costs.append(cost)
        return cost

    def view(self, op: str) -> None:
        self.emit(op, "memory", note="view")

    def mac_op(
        self, op: str, cls: str, ins: list[Any], out: Any, macs: int, dims: tuple[int, ...], kernel: int, bias: int
    ) -> None:
        elements = kernel + (bias if bias > 1 else 0)
        dtype = self.dtype(kernel)
        per_weight = 1 if dtype in ("int8", "hybrid") else 4
        weight_bytes = kernel * per_weight + (bias * 4 if bias > 1 else 0)
        self.emit(
            op,
            cls,
            dtype=dtype,
            macs=macs,
            work=self.elements(out),
            act_bytes=sum(self.nbytes(t) for t in ins) + self.nbytes(out),
            weight_bytes=weight_bytes,
            weight_elements=elements,
            dims=dims,
        )

    def activation(self, name: str, t_in: Any, t_out: Any) -> None:
        """A separate activation op, unless the converter fuses it into the op before."""
        if name in ("linear", None):
            self.kind[id(t_out)] = self.kind.get(id(t_in), "")
            return
        if name in ("relu", "relu6") and self.kind.get(id(t_in)) in ("mac", "add") and self.uses.get(id(t_in)) == 1:
            return
        work = self.elements(t_out)
        act = self.nbytes(t_in) + self.nbytes(t_out)
        if name == "softmax":
            self.emit("SOFTMAX", "memory", work=work, act_bytes=act)
        elif name in ("relu", "relu6", "leaky_relu"):
            self.emit(name.upper(), "elementwise", work=work, act_bytes=act)
        else:
            self.emit({"sigmoid": "LOGISTIC", "tanh": "TANH"}.get(name, name.upper()), "transcendental", work=work)

    def layer_activation(self, layer: keras.layers.Layer, t_out: Any) -> None:
        name = getattr(getattr(layer, "activation", None), "__name__", "linear")
        # A BatchNormalization folds only into a convolution without its own activation.
        self.kind[id(t_out)] = "mac" if name == "linear" else ""
        if name not in _FUSABLE_ACTIVATIONS:
            self.activation(name, t_out, t_out)

    def node(self, layer: keras.layers.Layer, ins: list[Any], outs: list[Any]) -> None:
        t_in, t_out = ins[0] if ins else None, outs[0] if outs else None
        if t_out is None or isinstance(layer, _VANISH):
            return
        one_d = len(t_out.shape) == 3
        if isinstance(layer, SEPARABLE):
            cin, cout = self.channels(t_in), self.channels(t_out)
            taps = int(math.prod(layer.kernel_size))
            pixels = self.elements(t_out) // max(cout, 1)
            if one_d:
                self.view("RESHAPE")
            self.mac_op(
                "DEPTHWISE_CONV_2D", "depthwise", [t_in], t_in, pixels * cin * taps, (pixels, cin, taps), taps * cin, 0
            )
            self.costs[-1].work = pixels * cin
            self.mac_op("CONV_2D", "conv1x1", [], t_out, pixels * cout * cin, (pixels, cout, 1, cin), cin * cout, cout)
            if one_d:
                self.view("RESHAPE")
            self.layer_activation(layer, t_out)
        elif isinstance(layer, DEPTHWISE):
            ch = self.channels(t_out)
            taps = int(math.prod(layer.kernel_size))
            pixels = self.elements(t_out) // max(ch, 1)
            if one_d:
                self.view("RESHAPE")
            bias = ch if layer.use_bias or self._folds_bn(t_out) or self.quantization == "int8" else 0
            self.mac_op(
                "DEPTHWISE_CONV_2D", "depthwise", [t_in], t_out, pixels * ch * taps, (pixels, ch, taps), taps * ch, bias
            )
            if one_d:
                self.view("RESHAPE")
            self.layer_activation(layer, t_out)
        elif isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D):
            cin, cout = self.channels(t_in), self.channels(t_out)
            taps = int(math.prod(layer.kernel_size))
            pixels = self.elements(t_out) // max(cout, 1)
            if one_d:
                self.view("RESHAPE")
            bias = cout if layer.use_bias or self._folds_bn(t_out) or self.quantization == "int8" else 0
            cls = "conv1x1" if taps == 1 else "conv"
            self.mac_op(
                "CONV_2D",
                cls,
                [t_in],
                t_out,
                pixels * cout * taps * cin,
                (pixels, cout, taps, cin),
                taps * cin * cout,
                bias,
            )
            if one_d:
                self.view("RESHAPE")
            self.layer_activation(layer, t_out)
        elif isinstance(layer, keras.layers.Dense):
            depth, units = self.channels(t_in), self.channels(t_out)
            rows = max(1, self.elements(t_in) // max(depth, 1))
            bias = units if layer.use_bias or self.quantization == "int8" else 0
            self.mac_op(
                "FULLY_CONNECTED",
                "fully_connected",
                [t_in],
                t_out,
                rows * units * depth,
                (rows, units, depth),
                units * depth,
                bias,
            )
            self.layer_activation(layer, t_out)
        elif isinstance(layer, keras.layers.BatchNormalization):
            if self.kind.get(id(t_in)) == "mac" and self.uses.get(id(t_in)) == 1:
                self.kind[id(t_out)] = "mac"  # folded into the convolution
                return
            ch = self.channels(t_out)
            for op in ("MUL", "ADD"):
                self.emit(op, "elementwise", work=self.elements(t_out), act_bytes=2 * self.nbytes(t_out),
                          weight_bytes=ch * 4, weight_elements=ch)  # fmt: skip
        elif isinstance(layer, keras.layers.ReLU):
            self.activation("relu6" if layer.max_value == 6 else "relu", t_in, t_out)
        elif isinstance(layer, keras.layers.Activation):
            self.activation(getattr(layer.activation, "__name__", "linear"), t_in, t_out)
        elif isinstance(layer, keras.layers.Softmax):
            self.activation("softmax", t_in, t_out)
        elif isinstance(layer, _POOLS):
            window = int(math.prod(layer.pool_size))
            if one_d:
                self.view("RESHAPE")
            op = "MAX_POOL_2D" if "Max" in type(layer).__name__ else "AVERAGE_POOL_2D"
            self.emit(op, "pool", work=self.elements(t_out) * window, act_bytes=self.nbytes(t_in) + self.nbytes(t_out))
            if one_d:
                self.view("RESHAPE")
        elif isinstance(layer, _GLOBAL_POOLS):
            op = "REDUCE_MAX" if "Max" in type(layer).__name__ else "MEAN"
            work = max(self.elements(t_out), self.elements(t_in))
            self.emit(op, "memory", work=work, act_bytes=self.nbytes(t_in) + self.nbytes(t_out))
        elif isinstance(layer, keras.layers.Flatten):
            for op in ("SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"):
                self.view(op)
        elif isinstance(layer, keras.layers.Reshape):
            self.view("RESHAPE")
        elif isinstance(layer, _MERGES):
            ops = {"Add": "ADD", "Subtract": "SUB", "Multiply": "MUL", "Maximum": "MAXIMUM", "Minimum": "MINIMUM"}
            act = sum(self.nbytes(t) for t in ins) + self.nbytes(t_out)
            self.emit(ops.get(type(layer).__name__, "ADD"), "elementwise", work=self.elements(t_out), act_bytes=act)
            self.kind[id(t_out)] = "add"
        elif isinstance(layer, keras.layers.Concatenate):
            act = sum(self.nbytes(t) for t in ins) + self.nbytes(t_out)
            self.emit("CONCATENATION", "memory", work=self.elements(t_out), act_bytes=act)
        elif isinstance(layer, keras.layers.ZeroPadding1D | keras.layers.ZeroPadding2D):
            cost = self.emit(
                "PAD", "memory", work=self.elements(t_out), act_bytes=self.nbytes(t_in) + self.nbytes(t_out)
            )
            users = self.consumers.get(id(t_out), [])
            cost.fused = bool(users) and all(
                isinstance(u, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | _POOLS) for u in users
            )
        else:
            # No mapping: costed as a copy of its output, like the .tflite estimate's unknown ops.
            self.emit(f"OP_{type(layer).__name__}", "memory", work=self.elements(t_out), act_bytes=self.nbytes(t_out))

    def _folds_bn(self, t: Any) -> bool:
        users = self.consumers.get(id(t), [])
        return len(users) == 1 and isinstance(users[0], keras.layers.BatchNormalization)


def keras_costs(model: keras.Model, quantization: str = "none", channels: ChannelsFn | None = None) -> list[OpCost]:
    """The `OpCost` of every TFLite op the converter would make of `model`, in execution order.

    `channels(tensor)` overrides a tensor's channel count (the last axis): what the model would be
    with some channels removed, without building it.
    """
    builder = _Builder(model, quantization, channels)
    for node in builder.nodes:
        builder.node(node.layer, node.inputs, node.outputs)
    return builder.costs


def estimate_keras_ms(
    model: keras.Model, profile: DeviceProfile, quantization: str = "none", channels: ChannelsFn | None = None
) -> float:
    """Estimated latency (ms) of `model` exported per `quantization`, on `profile`: the sum of the
    per-op times plus the invoke overhead, as `estimator.estimate` computes it from a `.tflite`."""
    costs = keras_costs(model, quantization, channels)
    total = profile.invoke_overhead_us + first_op_us(costs, profile) + sum(op_time_us(c, profile) for c in costs)
    packed, rows = packed_split(costs)
    peak = max((c.act_bytes for c in costs), default=0)
    total += streamed_weights_us(packed, packed + peak, profile, rows)[0]
    return total / 1000.0
