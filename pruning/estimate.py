"""Latency, RAM and flash of a `.tflite` file on a device profile, estimated op by op.

How an estimate is made
-----------------------
1. The flatbuffer is parsed (operators in execution order, tensor shapes and types, constant
   buffers and the share of exact zeros in each weight tensor).
2. Each operator falls into a cost class: `conv` (general CONV_2D), `conv1x1` (pointwise),
   `depthwise`, `fully_connected`, `pool`, `elementwise` (ADD, MUL, ReLU-like), `transcendental`
   (LOGISTIC, TANH, EXP, ...), `memory` (RESHAPE, CONCATENATION, PAD, QUANTIZE/DEQUANTIZE, SOFTMAX,
   MEAN, ...). Its compute dtype is that of its input activation (`int8`, `float32`, or `hybrid` for
   float activations with int8 weights).
3. Its time is `max(compute, memory traffic / bandwidth) + per-op overhead`, where
   `compute = (MACs / (peak MACs/cycle[dtype] * efficiency[class][dtype]) + outputs * cycles_per_element
   [class][dtype]) / clock / thread speed-up`. Efficiencies and per-element cycles are per runtime
   (TFLite Micro + CMSIS-NN, XNNPACK on Arm, XNNPACK on this x86 host); see pruning/profiles/.
4. The inference is the sum over ops plus a fixed invoke overhead; `low_ms`/`high_ms` multiply it
   by the profile's `error_band`, which is the calibration error measured for that profile
   (docs/benchmarks.md, "Device estimates").

Sparsity is treated honestly: zeros stored densely never speed anything up. TFLite Micro has no
sparse kernels at all. XNNPACK has a sparse path only for float models whose weights are stored in
sparse form (DENSIFY operators), starting with a 3x3 stride-2 conv on 3 channels, ending in MEAN,
and whose 1x1 convolutions are at least 2/3 zeros (tensorflow/lite/delegates/xnnpack/README.md,
"Sparse Inference"); only then are the 1x1 convs costed at `min(1, 2 * density)` of their dense
time (sparse kernels reach roughly half the dense per-MAC throughput; Elsen et al., "Fast Sparse
ConvNets", 2019). Channel-pruned models are smaller graphs, so their estimates fall by themselves.

RAM is the peak of live activation memory over the execution order (a linear scan of tensor
lifetimes) plus the runtime's own RAM; on LiteRT + XNNPACK the weights are repacked into RAM too.
On TFLite Micro profiles the tensor arena is measured with the tflite-micro Python interpreter when
it can load the model (pruning/micro.py). Flash is the `.tflite` size plus the runtime's code size.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pruning.devices import MAC_CLASSES, DeviceProfile, get_profile

# TensorType -> (name, bytes per element)
_DTYPES: dict[int, tuple[str, float]] = {
    0: ("float32", 4),
    1: ("float16", 2),
    2: ("int32", 4),
    3: ("uint8", 1),
    4: ("int64", 8),
    5: ("string", 1),
    6: ("bool", 1),
    7: ("int16", 2),
    9: ("int8", 1),
    10: ("float64", 8),
    15: ("uint32", 4),
    16: ("uint16", 2),
    17: ("int4", 0.5),
    18: ("bfloat16", 2),
}
_NUMPY: dict[str, Any] = {
    "float32": np.float32,
    "float16": np.float16,
    "int32": np.int32,
    "uint8": np.uint8,
    "int64": np.int64,
    "int16": np.int16,
    "int8": np.int8,
}

ELEMENTWISE = {
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
    "LEAKY_RELU", "PRELU", "HARD_SWISH", "ABS", "NEG", "SQUARE", "SQUARED_DIFFERENCE", "FLOOR", "CEIL",
    "ROUND", "SIGN", "FLOOR_DIV", "FLOOR_MOD", "POW", "SELECT", "SELECT_V2", "LESS", "GREATER", "EQUAL",
    "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT", "ADD_N", "CAST",
}  # fmt: skip
TRANSCENDENTAL = {"LOGISTIC", "TANH", "EXP", "LOG", "GELU", "ELU", "SQRT", "RSQRT", "SIN", "COS", "LOG_SOFTMAX"}
POOLS = {"AVERAGE_POOL_2D", "MAX_POOL_2D", "L2_POOL_2D"}
CONVS = {"CONV_2D", "CONV_3D", "TRANSPOSE_CONV", "CONV_3D_TRANSPOSE"}
# Ops that only re-describe a buffer: LiteRT/TFLM do at most a copy, usually nothing.
VIEWS = {"RESHAPE", "SQUEEZE", "EXPAND_DIMS", "SHAPE", "PACK", "STRIDED_SLICE", "RANK", "IDENTITY"}
_MAX_ITEMS_FOR_ZEROS = 1 << 26


def _schema() -> Any:
    """The TFLite flatbuffer schema; tflite-micro's copy imports in ~0.1 s, TensorFlow's in seconds."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    except ImportError:  # pragma: no cover - tflite-micro is a dependency, TensorFlow the fallback
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    itemsize: float
    const: bool
    buffer: int

    @property
    def elements(self) -> int:
        return int(math.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return int(math.ceil(self.elements * self.itemsize))


@dataclass
class Op:
    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    size: int
    raw: bytes
    model: Any = None

    def const_values(self, t: Tensor) -> np.ndarray | None:
        """The values of a constant tensor (None when absent or of an unreadable type)."""
        dtype = _NUMPY.get(t.dtype)
        if dtype is None or not t.const:
            return None
        buffer = self.model.Buffers(t.buffer)
        if buffer.DataLength() > 0:
            raw = buffer.DataAsNumpy().tobytes()
        elif buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
            raw = self.raw[buffer.Offset() : buffer.Offset() + buffer.Size()]
        else:
            return None
        return np.frombuffer(raw, dtype=dtype)


def parse(tflite: bytes) -> Graph:
    """Operators (execution order) and tensors of the first subgraph of a `.tflite` file."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(tflite, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    graph = model.Subgraphs(0)
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        dtype, itemsize = _DTYPES.get(t.Type(), ("unknown", 4))
        buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        const = buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        shape = tuple(max(d, 1) for d in shape)  # dynamic (-1) batch -> 1
        name = (t.Name() or b"").decode(errors="replace")
        tensors.append(Tensor(i, name, shape, dtype, itemsize, const, t.Buffer()))
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = names.get(builtin, f"OP_{builtin}")
        if name == "CUSTOM":
            name = "CUSTOM:" + (code.CustomCode() or b"").decode(errors="replace")
        inputs = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(Op(i, name, inputs, outputs, _options(schema, name, op)))
    g_in = [int(x) for x in graph.InputsAsNumpy()] if graph.InputsLength() else []
    g_out = [int(x) for x in graph.OutputsAsNumpy()] if graph.OutputsLength() else []
    return Graph(tensors, ops, g_in, g_out, len(tflite), tflite, model)


def _options(schema: Any, name: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if name in POOLS:
        opts = schema.Pool2DOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"filter": (opts.FilterHeight(), opts.FilterWidth()), "stride": (opts.StrideH(), opts.StrideW())}
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opts = schema.Conv2DOptions() if name == "CONV_2D" else schema.DepthwiseConv2DOptions()
        opts.Init(table.Bytes, table.Pos)
        return {
            "stride": (opts.StrideH(), opts.StrideW()),
            "padding": "same" if opts.Padding() == 0 else "valid",
            "dilation": (opts.DilationHFactor(), opts.DilationWFactor()),
        }
    return {}


# ---------------------------------------------------------------------------------------------
# Per-op work


@dataclass
class OpCost:
    index: int
    op: str
    cls: str
    dtype: str
    macs: int = 0
    work: int = 0  # output elements (x window for pools): what cycles_per_element multiplies
    act_bytes: int = 0  # activation bytes read + written
    weight_bytes: int = 0
    weight_elements: int = 0
    zero_fraction: float = 0.0
    kernel: tuple[int, ...] = ()
    dims: tuple[
        int, ...
    ] = ()  # conv: (pixels, cout, taps, cin); depthwise: (pixels, ch, taps); fc: (rows, units, depth)
    init_time: bool = False  # folded at load time (e.g. DEQUANTIZE of a constant): no per-inference cost
    fused: bool = False  # fused into the next op by the runtime (e.g. PAD before a conv on XNNPACK)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (0, 0.0, "", (), False)} | {"op": self.op}


def _compute_dtype(act: Tensor | None, weight: Tensor | None) -> str:
    a = act.dtype if act is not None else "float32"
    if a in ("int8", "uint8"):
        return "int8"
    if a == "int16":
        return "int16"
    if a == "float32" and weight is not None and weight.dtype in ("int8", "uint8") and weight.const:
        return "hybrid"
    return "float32"


def analyse(graph: Graph) -> list[OpCost]:
    """Work, traffic and cost class of every operator, in execution order."""
    t = graph.tensors
    produced_by: dict[int, Op] = {}
    for op in graph.ops:
        for o in op.outputs:
            produced_by[o] = op
    # Weights dequantised from constants (float16 or int8 storage) are weights too.
    const_like = {x.index for x in t if x.const}
    for op in graph.ops:
        if op.name == "DEQUANTIZE" and op.inputs and op.inputs[0] in const_like:
            const_like.update(op.outputs)
    costs: list[OpCost] = []
    for op in graph.ops:
        ins = [t[i] for i in op.inputs if i >= 0]
        outs = [t[i] for i in op.outputs if i >= 0]
        acts = [x for x in ins if x.index not in const_like]
        weights = [x for x in ins if x.index in const_like and x.elements > 1]
        act_in = acts[0] if acts else (ins[0] if ins else None)
        out = outs[0] if outs else None
        out_elems = out.elements if out is not None else 0
        act_bytes = sum(x.nbytes for x in acts) + sum(x.nbytes for x in outs)
        weight = weights[0] if weights else None
        w_bytes = sum(x.nbytes for x in weights)
        w_elems = sum(x.elements for x in weights)
        # the stored weight (before DEQUANTIZE), for the zero count and the storage dtype
        stored = weight
        if weight is not None and not weight.const and weight.index in produced_by:
            src = produced_by[weight.index]
            stored = t[src.inputs[0]] if src.inputs else weight
        cost = OpCost(op.index, op.name, "memory", _compute_dtype(act_in, stored), work=out_elems, act_bytes=act_bytes)
        cost.weight_bytes = w_bytes
        cost.weight_elements = w_elems
        name = op.name
        if name in CONVS or name == "DEPTHWISE_CONV_2D":
            f = t[op.inputs[1]]
            if name == "DEPTHWISE_CONV_2D":
                kh, kw = (f.shape[1], f.shape[2]) if len(f.shape) == 4 else (1, 1)
                cost.cls, cost.macs, cost.kernel = "depthwise", out_elems * kh * kw, (kh, kw)
                ch = out.shape[-1] if out is not None and out.shape else 1
                cost.dims = (out_elems // max(ch, 1), ch, kh * kw)
            elif name == "TRANSPOSE_CONV":
                f = t[op.inputs[1]]
                cout, kh, kw, cin = f.shape
                x = t[op.inputs[2]]
                cost.cls, cost.macs, cost.kernel = "conv", x.elements * kh * kw * cout, (kh, kw)
                cost.dims = (x.elements // max(cin, 1), cout, kh * kw, cin)
                cost.act_bytes = x.nbytes + (out.nbytes if out else 0)
            else:
                spatial = f.shape[1:-1]
                cin = f.shape[-1]
                k = int(math.prod(spatial))
                cost.macs = out_elems * k * cin
                cost.kernel = tuple(spatial)
                cost.cls = "conv1x1" if k == 1 else "conv"
                cout = f.shape[0]
                cost.dims = (out_elems // max(cout, 1), cout, k, cin)
            cost.work = out_elems
        elif name in ("FULLY_CONNECTED", "BATCH_MATMUL"):
            w = t[op.inputs[1]]
            if name == "FULLY_CONNECTED":
                units, depth = (w.shape[0], w.shape[-1]) if w.shape else (1, 1)
                rows = max(1, (act_in.elements // depth) if act_in is not None and depth else 1)
                cost.macs = rows * units * depth
                cost.dims = (rows, units, depth)
            else:
                depth = act_in.shape[-1] if act_in is not None and act_in.shape else 1
                cost.macs = out_elems * depth
                units = out.shape[-1] if out is not None and out.shape else 1
                cost.dims = (out_elems // max(units, 1), units, depth)
            cost.cls, cost.work = "fully_connected", out_elems
        elif name in POOLS:
            fh, fw = op.options.get("filter", (1, 1))
            cost.cls, cost.work = "pool", out_elems * max(1, fh * fw)
        elif name in ELEMENTWISE:
            cost.cls = "elementwise"
        elif name in TRANSCENDENTAL:
            cost.cls = "transcendental"
        else:
            cost.cls = "memory"
            if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "SOFTMAX", "L2_NORMALIZATION"):
                cost.work = max(out_elems, act_in.elements if act_in is not None else 0)
            if name in VIEWS:
                cost.work, cost.act_bytes, cost.note = 0, 0, "view"
            if name == "DEQUANTIZE" and op.inputs and op.inputs[0] in const_like:
                cost.init_time, cost.note = True, "dequantises a constant once at load time"
            if name in ("QUANTIZE", "DEQUANTIZE") and not cost.init_time:
                cost.dtype = "int8"
        if stored is not None and cost.cls in MAC_CLASSES and stored.const and stored.elements >= 16:
            values = graph.const_values(stored) if stored.elements <= _MAX_ITEMS_FOR_ZEROS else None
            if values is not None and values.size:
                cost.zero_fraction = float(np.count_nonzero(values == 0) / values.size)
            if cost.dtype == "float32" and stored.dtype == "float16":
                cost.note = "float16 weights, float32 compute (dequantised at load time)"
        costs.append(cost)
    # XNNPACK fuses an explicit PAD into the following convolution or pool.
    by_input: dict[int, list[Op]] = {}
    for op in graph.ops:
        for i in op.inputs:
            by_input.setdefault(i, []).append(op)
    for op, cost in zip(graph.ops, costs, strict=True):
        if op.name in ("PAD", "PADV2") and op.outputs:
            users = by_input.get(op.outputs[0], [])
            if users and all(u.name in ("CONV_2D", "DEPTHWISE_CONV_2D", *POOLS) for u in users):
                cost.fused = True
    return costs


_CACHE: dict[str, tuple[Graph, list[OpCost]]] = {}
CACHE_SIZE = 4


def parsed(tflite: bytes) -> tuple[Graph, list[OpCost]]:
    """`parse` + `analyse`, remembered for the last few models (one model is estimated on many devices)."""
    import hashlib

    key = hashlib.sha1(tflite).hexdigest()
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        graph = parse(tflite)
        _CACHE[key] = (graph, analyse(graph))
    return _CACHE[key]


def sparse_path(graph: Graph, costs: list[OpCost]) -> tuple[bool, str]:
    """Whether XNNPACK's sparse inference path applies (its README's rules, see module docstring)."""
    names = [op.name for op in graph.ops]
    if "DENSIFY" not in names:
        return False, "weights are stored dense (no DENSIFY ops), so XNNPACK's sparse path does not apply"
    mac_ops = [c for c in costs if c.cls in MAC_CLASSES]
    if not mac_ops or mac_ops[0].dtype != "float32":
        return False, "XNNPACK's sparse path is float-only"
    first = graph.ops[mac_ops[0].index]
    f = graph.tensors[first.inputs[1]]
    if not (first.name == "CONV_2D" and f.shape[1:3] == (3, 3) and f.shape[-1] == 3):
        return False, "XNNPACK's sparse path needs the model to start with a 3x3 conv on 3 channels"
    if "MEAN" not in names:
        return False, "XNNPACK's sparse path needs the sparse subgraph to end in MEAN"
    pw = [c for c in costs if c.cls == "conv1x1"]
    total = sum(c.weight_elements for c in pw)
    zeros = sum(c.weight_elements * c.zero_fraction for c in pw)
    if not total or zeros / total < 2 / 3:
        return False, "XNNPACK's sparse path needs >= 2/3 zeros in the 1x1 convolutions"
    return True, f"XNNPACK sparse path: 1x1 convs {zeros / total:.0%} zeros"


# ---------------------------------------------------------------------------------------------
# Time


def _peak(profile: DeviceProfile, dtype: str) -> tuple[float, str]:
    """Peak MACs/cycle and the dtype whose efficiency table applies."""
    mpc = profile.macs_per_cycle
    if dtype == "int16" and "int8" in mpc:
        return mpc["int8"] / 2, "int8"
    if dtype == "hybrid":
        if profile.runtime_key.startswith("tflm"):
            return mpc.get("float32", 1.0), "float32"
        return mpc.get("int8", mpc.get("float32", 1.0)), "hybrid" if "hybrid" in mpc else "int8"
    if dtype in mpc:
        return mpc[dtype], dtype
    return mpc.get("float32", 1.0), "float32"


def _table(table: dict[str, dict[str, float]], cls: str, dtype: str, default: float) -> float:
    row = table.get(cls, {})
    if dtype in row:
        return row[dtype]
    if dtype == "hybrid" and "int8" in row:
        return row["int8"]
    if dtype in ("int16", "uint8") and "int8" in row:
        return row["int8"]
    return row.get("float32", default)


def _ceil_to(n: int, tile: int) -> int:
    return -(-n // tile) * tile if tile > 1 else n


def padded_macs(cost: OpCost, tile: tuple[int, int] | list[int]) -> int:
    """MACs after rounding channels up to the kernel's register tile (nr output channels, kr input channels)."""
    nr, kr = int(tile[0]), int(tile[1])
    d = cost.dims
    if not d or (nr <= 1 and kr <= 1):
        return cost.macs
    if cost.cls == "depthwise":
        return d[0] * _ceil_to(d[1], nr) * d[2]
    if cost.cls == "fully_connected":
        return d[0] * _ceil_to(d[1], nr) * _ceil_to(d[2], kr)
    return d[0] * _ceil_to(d[1], nr) * d[2] * _ceil_to(d[3], kr)


def op_time_us(cost: OpCost, profile: DeviceProfile, sparse_factor: float = 1.0) -> float:
    """Time of one op on `profile`, microseconds."""
    if cost.init_time or cost.fused:
        return 0.0
    if cost.note == "view":
        return profile.per_op_overhead_us * 0.5
    peak, table_dtype = _peak(profile, cost.dtype)
    eff_dtype = table_dtype
    cycles = 0.0
    override = profile.op_cycles_per_element.get(cost.op, {})
    if cost.cls in MAC_CLASSES and cost.macs:
        eff = _table(profile.efficiency, cost.cls, eff_dtype, 0.5)
        factor = sparse_factor if cost.cls == "conv1x1" else 1.0
        tile = _table(profile.tiles, cost.cls, eff_dtype, [1, 1])  # type: ignore[arg-type]
        cycles += padded_macs(cost, tile) * factor / (peak * eff)
    cycles += _table(profile.cycles_per_op, cost.cls, eff_dtype, 0.0)
    if eff_dtype in override or (eff_dtype == "hybrid" and "int8" in override):
        cycles += cost.work * override.get(eff_dtype, override.get("int8", 0.0))
    else:
        cycles += cost.work * _table(profile.cycles_per_element, cost.cls, eff_dtype, 1.0)
    threads = max(1, profile.threads)
    speedup = 1.0 + (threads - 1) * profile.parallel_efficiency
    compute_us = cycles / profile.clock_mhz / speedup
    traffic = cost.act_bytes + cost.weight_bytes
    memory_us = traffic / ((profile.cache_bandwidth_gbps or profile.mem_bandwidth_gbps) * 1e3)
    overhead = profile.per_op_overhead_us + (profile.thread_overhead_us if threads > 1 else 0.0)
    return max(compute_us, memory_us) + overhead


# ---------------------------------------------------------------------------------------------
# Memory


def peak_activation_bytes(graph: Graph) -> int:
    """Largest sum of live non-constant tensors over the execution order (linear scan of lifetimes)."""
    t = graph.tensors
    n = len(graph.ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in graph.inputs:
        first[i] = 0
    for step, op in enumerate(graph.ops):
        for i in op.outputs:
            first.setdefault(i, step)
            last[i] = max(last.get(i, step), step)
        for i in op.inputs:
            if i < 0 or t[i].const:
                continue
            first.setdefault(i, step)
            last[i] = step
    for i in graph.outputs:
        last[i] = n
        first.setdefault(i, n)
    views = {op.outputs[0] for op in graph.ops if op.name in VIEWS and op.outputs}
    deltas = np.zeros(n + 2, dtype=np.int64)
    for i, start in first.items():
        if t[i].const or t[i].dtype in ("string", "unknown") or i in views:
            continue
        end = last.get(i, start)
        deltas[start] += t[i].nbytes
        deltas[end + 1] -= t[i].nbytes
    return int(np.max(np.cumsum(deltas))) if n else sum(t[i].nbytes for i in graph.inputs)


def packed_weight_bytes(graph: Graph, costs: list[OpCost]) -> int:
    """Weights as XNNPACK keeps them in RAM after packing (float16 weights unpacked to float32)."""
    total = 0
    for c in costs:
        if c.cls in MAC_CLASSES:
            total += c.weight_elements * (1 if c.dtype in ("int8", "hybrid") else 4)
    return total


# ---------------------------------------------------------------------------------------------
# Public API


def _model_dtype(costs: list[OpCost]) -> str:
    macs: dict[str, int] = {}
    for c in costs:
        if c.cls in MAC_CLASSES:
            macs[c.dtype] = macs.get(c.dtype, 0) + c.macs
    return max(macs, key=lambda k: macs[k]) if macs else "float32"


def breakdown(tflite: bytes, profile: DeviceProfile) -> list[dict[str, Any]]:
    """Per-op estimate (for debugging and the docs): op, class, dtype, MACs, microseconds."""
    graph, costs = parsed(tflite)
    applies, _ = sparse_path(graph, costs)
    factor = _sparse_factor(costs) if applies and profile.sparse_speedup else 1.0
    return [c.to_dict() | {"cls": c.cls, "us": round(op_time_us(c, profile, factor), 3)} for c in costs]


def _sparse_factor(costs: list[OpCost]) -> float:
    pw = [c for c in costs if c.cls == "conv1x1"]
    total = sum(c.weight_elements for c in pw)
    density = 1 - (sum(c.weight_elements * c.zero_fraction for c in pw) / total if total else 0.0)
    return min(1.0, 2.0 * density)


def estimate(tflite: bytes, profile: DeviceProfile) -> dict[str, Any]:
    """Latency band, RAM, flash and whether the model fits `profile`; `basis` says what it rests on."""
    graph, costs = parsed(tflite)
    dtype = _model_dtype(costs)
    basis: list[str] = []
    is_tflm = profile.runtime_key.startswith("tflm")
    applies, why = sparse_path(graph, costs)
    zero = _weight_zero_fraction(costs)
    factor = 1.0
    if applies and profile.sparse_speedup:
        factor = _sparse_factor(costs)
        basis.append(why + f"; 1x1 convs costed at {factor:.2f}x their dense time")
    elif zero >= 0.05:
        if is_tflm:
            basis.append(f"{zero:.0%} of weights are zero, but TFLite Micro has no sparse kernels: no speed-up")
        elif not profile.sparse_speedup:
            basis.append(f"{zero:.0%} of weights are zero; this runtime has no sparse kernels: no speed-up")
        else:
            basis.append(f"{zero:.0%} of weights are zero; no speed-up: {why}")
    cold_us, cold_note = cold_weights_us(graph, costs, profile)
    if cold_note:
        basis.append(cold_note)
    total_us = profile.invoke_overhead_us + sum(op_time_us(c, profile, factor) for c in costs) + cold_us
    ms = total_us / 1000.0
    lo, hi = profile.error_band
    macs = sum(c.macs for c in costs)
    by_class: dict[str, float] = {}
    for c in costs:
        by_class[c.cls] = by_class.get(c.cls, 0.0) + op_time_us(c, profile, factor)
    top = sorted(by_class.items(), key=lambda kv: -kv[1])[:3]
    share = ", ".join(f"{k} {v / max(total_us, 1e-9):.0%}" for k, v in top)
    basis.insert(
        0,
        f"per-op model ({len(costs)} ops, {macs / 1e6:.2f} M MACs, {dtype}) on {profile.core} "
        f"@ {profile.clock_mhz:g} MHz, {profile.runtime}, {profile.threads} thread(s); time by class: {share}; "
        f"band x{lo:g}..x{hi:g} from the measured calibration error",
    )
    if is_tflm and dtype == "float32":
        basis.append("float model on a microcontroller: costed with float32 reference kernels (no CMSIS-NN), slow")
    if is_tflm and dtype == "hybrid":
        basis.append("dynamic-range (hybrid) ops are not supported by TFLite Micro; costed as float32")
    if any(c.note.startswith("float16 weights") for c in costs) and not is_tflm:
        basis.append("float16 weights are unpacked to float32 by XNNPACK at load time: float32 speed")
    unknown = sorted({c.op for c in costs if c.cls == "memory" and c.op.startswith(("CUSTOM", "OP_"))})
    if unknown:
        basis.append(f"ops without a cost model ({', '.join(unknown)}) costed as memory copies")
    ram, ram_note = _ram(tflite, graph, costs, profile)
    basis.append(ram_note)
    flash = graph.size + profile.runtime_flash_bytes
    basis.append(f"flash = .tflite {graph.size} B + runtime code {profile.runtime_flash_bytes} B ({profile.runtime})")
    fits = ram <= profile.ram_bytes and flash <= profile.flash_bytes
    if not fits:
        need = []
        if ram > profile.ram_bytes:
            need.append(f"RAM {ram} B > {profile.ram_bytes} B")
        if flash > profile.flash_bytes:
            need.append(f"flash {flash} B > {profile.flash_bytes} B")
        basis.append("does not fit: " + "; ".join(need))
    return {
        "device": profile.name,
        "estimate_ms": round(ms, 4),
        "low_ms": round(ms * lo, 4),
        "high_ms": round(ms * hi, 4),
        "ram_bytes": int(ram),
        "flash_bytes": int(flash),
        "fits": bool(fits),
        "basis": "; ".join(basis),
    }


def cold_weights_us(graph: Graph, costs: list[OpCost], profile: DeviceProfile) -> tuple[float, str]:
    """Time to re-read, from DRAM, the part of the weights + activations that cannot stay in the last-level
    cache between inferences (single-op micro-benchmarks keep their weights hot, a whole model does not)."""
    if profile.llc_bytes <= 0:
        return 0.0, ""
    working = packed_weight_bytes(graph, costs) + peak_activation_bytes(graph)
    spill = working - profile.llc_bytes
    if spill <= 0:
        return 0.0, ""
    us = spill / (profile.mem_bandwidth_gbps * 1e3)
    return us, (
        f"weights + activations {working / 2**20:.1f} MiB exceed the {profile.llc_bytes / 2**20:.1f} MiB "
        f"effective last-level cache: {spill / 2**20:.1f} MiB re-read from DRAM each inference ({us / 1e3:.2f} ms)"
    )


def _weight_zero_fraction(costs: list[OpCost]) -> float:
    total = sum(c.weight_elements for c in costs if c.cls in MAC_CLASSES)
    zeros = sum(c.weight_elements * c.zero_fraction for c in costs if c.cls in MAC_CLASSES)
    return zeros / total if total else 0.0


def _ram(tflite: bytes, graph: Graph, costs: list[OpCost], profile: DeviceProfile) -> tuple[int, str]:
    peak = peak_activation_bytes(graph)
    if profile.runtime_key.startswith("tflm"):
        if profile.arena_tool:
            from pruning import micro

            arena = micro.arena_bytes(tflite, hint=peak)
            if arena is not None:
                return arena + profile.runtime_ram_bytes, (
                    f"RAM = tensor arena {arena} B measured with the tflite-micro interpreter "
                    f"(64-bit host build: its bookkeeping structs are larger than on a 32-bit MCU) "
                    f"+ runtime {profile.runtime_ram_bytes} B"
                )
        persistent = 256 * len(graph.ops) + 64 * len(graph.tensors)
        return peak + persistent + profile.runtime_ram_bytes, (
            f"RAM = computed peak activations {peak} B + arena bookkeeping ~{persistent} B "
            f"+ runtime {profile.runtime_ram_bytes} B (tflite-micro could not load the model)"
        )
    packed = packed_weight_bytes(graph, costs)
    return peak + packed + profile.runtime_ram_bytes, (
        f"RAM = peak activations {peak} B (linear scan over tensor lifetimes) + weights packed by XNNPACK "
        f"{packed} B + runtime {profile.runtime_ram_bytes} B"
    )


def profile_tflite(tflite: bytes, devices: list[str], measure_host: bool = True) -> list[dict[str, Any]]:
    """One entry per device: the estimate, and for `host` also `measured_ms` (LiteRT on this machine)."""
    out = []
    for name in devices:
        profile = get_profile(name)
        entry = estimate(tflite, profile)
        entry["measured_ms"] = None
        if name == "host" and measure_host:
            from pruning.host import measure_latency

            measured = measure_latency(tflite, threads=profile.threads)
            entry["measured_ms"] = round(measured["measured_ms"], 4)
            entry["p10_ms"] = round(measured["p10_ms"], 4)
            entry["p90_ms"] = round(measured["p90_ms"], 4)
            entry["basis"] += (
                f"; measured_ms: LiteRT (XNNPACK) on this machine, {measured['threads']} thread(s), "
                f"median of {measured['runs']} runs after warm-up"
            )
        out.append(entry)
    return out


def with_threads(profile: DeviceProfile, threads: int) -> DeviceProfile:
    return replace(profile, threads=threads, name=f"{profile.name}@{threads}t")


def timed_profile(tflite: bytes, devices: list[str]) -> tuple[list[dict[str, Any]], float]:
    """`profile_tflite` without the host measurement, and the seconds it took."""
    start = time.perf_counter()
    entries = profile_tflite(tflite, devices, measure_host=False)
    return entries, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# Host constants from single-op micro-benchmarks (`python -m pruning.estimate calibrate-host`)


def _micro_cases() -> list[tuple[str, str, list[tuple[int, ...]], Any]]:
    """(class, description, input shapes, builder) of one-op models: shapes typical of MobileNet,
    EfficientNet, ResNet layers and of the small MCU models, plus odd channel counts that expose the
    kernels' channel tiles. Each is exported float32, int8 and (MAC classes) dynamic-range int8."""
    import keras

    L = keras.layers  # noqa: N806
    cases: list[tuple[str, str, list[tuple[int, ...]], Any]] = []

    def one(layer_fn: Any) -> Any:
        return lambda xs: layer_fn()(xs[0])

    for h, cin, cout, s in [(56, 32, 32, 1), (28, 64, 64, 1), (14, 128, 128, 1), (7, 256, 256, 1), (28, 16, 16, 1),
                            (112, 3, 32, 2), (48, 3, 8, 2), (32, 16, 16, 1), (16, 32, 32, 1), (24, 12, 24, 1),
                            (16, 8, 8, 1), (25, 1, 64, 2)]:  # fmt: skip
        k = (10, 4) if cin == 1 else 3
        shape = (h * 2, 5 * 2, cin) if cin == 1 else (h * s, h * s, cin)
        cases.append(("conv", f"conv {k} {shape}->{cout} s{s}", [shape],
                      one(lambda c=cout, k=k, s=s: L.Conv2D(c, k, strides=s, padding="same"))))  # fmt: skip
    for h, cin, cout in [(56, 32, 64), (28, 128, 128), (14, 256, 512), (7, 512, 1024), (112, 32, 16), (14, 96, 24),
                         (28, 24, 144), (7, 160, 960), (25, 64, 64), (12, 8, 16), (28, 40, 20),
                         (14, 20, 40)]:  # fmt: skip
        cases.append(("conv1x1", f"conv1x1 {h}x{h}x{cin}->{cout}", [(h, h, cin)], one(lambda c=cout: L.Conv2D(c, 1))))
    for h, c, k, s in [(112, 32, 3, 1), (112, 96, 3, 2), (28, 144, 3, 1), (14, 384, 3, 1), (7, 960, 3, 1),
                       (14, 240, 5, 1), (56, 144, 5, 2), (25, 64, 3, 1), (48, 8, 3, 1), (40, 24, 3, 1),
                       (20, 20, 3, 1)]:  # fmt: skip
        cases.append(("depthwise", f"dw {k}x{k} {h}x{h}x{c} s{s}", [(h, h, c)],
                      one(lambda k=k, s=s: L.DepthwiseConv2D(k, strides=s, padding="same"))))  # fmt: skip
    # weights up to ~1 MiB (L2-resident); bigger weights are a memory effect (cache floor, cold-weight term)
    for din, dout in [(1024, 256), (512, 256), (256, 128), (640, 128), (128, 8), (64, 10), (1280, 128), (100, 12)]:
        cases.append(("fully_connected", f"fc {din}->{dout}", [(din,)], one(lambda d=dout: L.Dense(d))))
    add = lambda xs: L.Add()(xs)  # noqa: E731
    mul = lambda xs: L.Multiply()(xs)  # noqa: E731
    cat = lambda xs: L.Concatenate()(xs)  # noqa: E731
    cases += [
        ("pool", "maxpool 2x2 56x56x64", [(56, 56, 64)], one(lambda: L.MaxPooling2D(2))),
        ("pool", "maxpool 3x3 s2 28x28x128", [(28, 28, 128)], one(lambda: L.MaxPooling2D(3, 2, padding="same"))),
        ("pool", "avgpool 7x7 7x7x1024", [(7, 7, 1024)], one(lambda: L.AveragePooling2D(7))),
        ("pool", "avgpool 2x2 32x32x64", [(32, 32, 64)], one(lambda: L.AveragePooling2D(2))),
        ("elementwise", "add 56x56x64", [(56, 56, 64)] * 2, add),
        ("elementwise", "add 14x14x160", [(14, 14, 160)] * 2, add),
        ("elementwise", "mul 28x28x96", [(28, 28, 96)] * 2, mul),
        ("elementwise", "mul 14x14x480 by 1x1x480", [(14, 14, 480), (1, 1, 480)], mul),
        ("elementwise", "relu6 56x56x64", [(56, 56, 64)], one(lambda: L.ReLU(6.0))),
        ("elementwise", "relu 28x28x128", [(28, 28, 128)], one(lambda: L.ReLU())),
        ("elementwise", "hard_swish 28x28x96", [(28, 28, 96)], one(lambda: L.Activation("hard_swish"))),
        ("transcendental", "logistic 28x28x96", [(28, 28, 96)], one(lambda: L.Activation("sigmoid"))),
        ("transcendental", "tanh 56x56x32", [(56, 56, 32)], one(lambda: L.Activation("tanh"))),
        ("memory", "concat 28x28x64 x2", [(28, 28, 64)] * 2, cat),
        ("memory", "concat 14x14x128 x2", [(14, 14, 128)] * 2, cat),
        ("memory", "pad 56x56x32", [(56, 56, 32)], one(lambda: L.ZeroPadding2D(1))),
        ("memory", "mean 7x7x1280", [(7, 7, 1280)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "mean 14x14x256", [(14, 14, 256)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "mean 56x56x32", [(56, 56, 32)], one(lambda: L.GlobalAveragePooling2D())),
        ("memory", "softmax 1000", [(1000,)], one(lambda: L.Softmax())),
        ("memory", "softmax 10", [(10,)], one(lambda: L.Softmax())),
    ]
    return cases


def _single_op_tflite(shapes: list[tuple[int, ...]], build: Any, quantization: str) -> bytes:
    import keras

    from pruning.export import to_tflite

    xs = [keras.Input(s) for s in shapes]
    model = keras.Model(xs if len(xs) > 1 else xs[0], build(xs))
    rng = np.random.default_rng(0)
    if len(shapes) == 1:
        return to_tflite(model, quantization, rng.uniform(-1, 1, (4, *shapes[0])).astype(np.float32))
    return _to_tflite_multi(model, quantization, [rng.uniform(-1, 1, (4, *s)).astype(np.float32) for s in shapes])


def _to_tflite_multi(model: Any, quantization: str, reps: list[np.ndarray]) -> bytes:
    """pruning.export.to_tflite for models with several inputs (micro-benchmarks of binary ops)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "int8":

        def batches() -> Any:
            for i in range(len(reps[0])):
                yield [r[i : i + 1] for r in reps]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def _time_us(tflite: bytes, budget_s: float = 0.4, repeats: int = 3) -> float:
    """Median time of one inference (LiteRT, 1 thread), the lower of `repeats` medians, microseconds."""
    from pruning.host import measure_latency

    return min(
        measure_latency(tflite, threads=1, warmup=10, runs=400, budget_s=budget_s)["measured_ms"] * 1000.0
        for _ in range(repeats)
    )


def _chain_tflite(n: int, quantization: str) -> bytes:
    import keras

    from pruning.export import to_tflite

    x = keras.Input((1, 1, 8))
    y = x
    for _ in range(n):
        y = keras.layers.Add()([y, x])
    model = keras.Model(x, y)
    rep = np.random.default_rng(0).uniform(-1, 1, (4, 1, 1, 8)).astype(np.float32)
    return to_tflite(model, quantization, rep)


_TILE_CANDIDATES = {
    "conv": [(nr, kr) for nr in (1, 8, 16, 32) for kr in (1, 2, 4, 8)],
    "conv1x1": [(nr, kr) for nr in (1, 8, 16, 32) for kr in (1, 2, 4, 8)],
    "depthwise": [(nr, 1) for nr in (1, 4, 8, 16, 32, 64)],
    "fully_connected": [(nr, kr) for nr in (1, 4, 8, 16) for kr in (1, 4, 8, 16)],
}


_TILE_CANDIDATES = {
    "conv": [(nr, kr) for nr in (1, 8, 16, 32) for kr in (1, 2, 4, 8)],
    "conv1x1": [(nr, kr) for nr in (1, 8, 16, 32) for kr in (1, 2, 4, 8)],
    "depthwise": [(nr, 1) for nr in (1, 4, 8, 16, 32, 64)],
    "fully_connected": [(nr, kr) for nr in (1, 4, 8, 16) for kr in (1, 4, 8, 16)],
}


def _grid_fit(macs: np.ndarray, work: np.ndarray, floor_us: np.ndarray, net_us: np.ndarray, clock: float,
              peak: float) -> tuple[float, float, float]:  # fmt: skip
    """Efficiency and cycles per element minimising the RMS log error of
    `max((macs / (peak * eff) + work * cpe) / clock, floor)` against the measured times (the estimator's
    own form, so memory-bound cases do not inflate the compute constants)."""
    effs = np.geomspace(0.005, 3.0, 90) if macs.any() else np.array([1.0])
    cpes = np.concatenate([[0.0], np.geomspace(0.005, 60.0, 90)])
    best = (np.inf, 1.0, 0.0)
    for eff in effs:
        comp = macs / (peak * eff)
        pred = np.maximum((comp[None, :] + cpes[:, None] * work[None, :]) / clock, floor_us[None, :])
        err = np.sqrt(np.mean(np.log(np.maximum(pred, 1e-9) / net_us[None, :]) ** 2, axis=1))
        i = int(np.argmin(err))
        if err[i] < best[0]:
            best = (float(err[i]), float(eff), float(cpes[i]))
    return best[1], best[2], best[0]


def _grid_fit(
    macs: np.ndarray,
    work: np.ndarray,
    floor_us: np.ndarray,
    net_us: np.ndarray,
    clock: float,
    peak: float,
    fixed_us: float = 0.0,
) -> tuple[float, float, float, float]:
    """Efficiency, cycles per element and fixed cycles per op minimising the RMS log error of
    `max((macs / (peak * eff) + work * cpe + setup) / clock, floor)` against the measured times: the
    estimator's own form, so memory-bound cases do not inflate the compute constants. Errors are taken on
    the whole inference time (`fixed_us` = invoke + per-op overhead added back), so sub-microsecond ops
    do not dominate through the noise of a difference."""
    effs = np.geomspace(0.005, 3.0, 80) if macs.any() else np.array([1.0])
    cpes = np.concatenate([[0.0], np.geomspace(0.005, 60.0, 80)])
    setups = np.concatenate([[0.0], np.geomspace(20.0, 20000.0, 24)]) if macs.any() else np.array([0.0])
    best = (np.inf, 1.0, 0.0, 0.0)
    for eff in effs:
        comp = macs / (peak * eff)
        cyc = comp[None, None, :] + cpes[:, None, None] * work[None, None, :] + setups[None, :, None]
        pred = np.maximum(cyc / clock, floor_us[None, None, :])
        err = np.sqrt(np.mean(np.log((pred + fixed_us) / (net_us + fixed_us)) ** 2, axis=2))
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        if err[i, j] < best[0]:
            best = (float(err[i, j]), float(eff), float(cpes[i]), float(setups[j]))
    return best[1], best[2], best[3], best[0]


def _fit_class(
    cls: str, samples: list[tuple[OpCost, float]], clock: float, peak: float, bw_gbps: float, fixed_us: float = 0.0
) -> tuple[tuple[int, int], float, float, float, float]:
    """Channel tile, efficiency, cycles per element, setup cycles and RMS log error for one class and dtype."""
    net = np.array([n for _, n in samples])
    work = np.array([c.work for c, _ in samples], dtype=float)
    floor = np.array([(c.act_bytes + c.weight_bytes) / (bw_gbps * 1e3) for c, _ in samples])
    best: tuple[float, tuple[int, int], float, float, float] | None = None
    for tile in _TILE_CANDIDATES.get(cls, [(1, 1)]):
        macs = np.array([padded_macs(c, tile) for c, _ in samples], dtype=float)
        eff, cpe, setup, err = _grid_fit(macs, work, floor, net, clock, peak, fixed_us)
        # prefer the smaller tile unless a bigger one explains the data clearly better
        if best is None or err < best[0] * 0.97:
            best = (err, tile, eff, cpe, setup)
    assert best is not None
    return best[1], best[2], best[3], best[4], best[0]


def calibrate_host(log: Any = print) -> dict[str, Any]:
    """Re-derive the host profile from single-op micro-benchmarks; returns the host.json content."""
    import os
    import platform
    import shutil

    clock = _host_clock_mhz()
    quant = {"float32": "none", "int8": "int8", "hybrid": "dynamic_int8"}
    # 1. invoke overhead and per-op overhead: a chain of n tiny ADDs, n = 1 and 33
    overheads = {}
    for dtype in ("float32", "int8"):
        t1 = min(_time_us(_chain_tflite(1, quant[dtype])) for _ in range(3))
        t33 = min(_time_us(_chain_tflite(33, quant[dtype])) for _ in range(3))
        overheads[dtype] = (max((t33 - t1) / 32, 0.0), t1 - max((t33 - t1) / 32, 0.0))
        log(f"overhead {dtype}: per op {overheads[dtype][0]:.3f} us, invoke {overheads[dtype][1]:.3f} us")
    per_op = float(np.mean([v[0] for v in overheads.values()]))
    invoke = float(np.mean([v[1] for v in overheads.values()]))
    # 3. every case, every dtype: time minus overheads
    samples: dict[tuple[str, str], list[tuple[OpCost, float]]] = {}
    rows: list[dict[str, Any]] = []
    for cls, desc, shapes, build in _micro_cases():
        for dtype, q in quant.items():
            if dtype == "hybrid" and cls not in MAC_CLASSES:
                continue
            try:
                tfl = _single_op_tflite(shapes, build, q)
            except Exception as exc:  # noqa: BLE001 - a case the converter rejects is skipped
                log(f"skip {desc} {dtype}: {str(exc)[:100]}")
                continue
            costs = analyse(parse(tfl))
            main = [c for c in costs if c.cls == cls and not c.init_time]
            if len(main) != 1 or len(costs) - sum(c.init_time for c in costs) != 1:
                log(f"skip {desc} {dtype}: ops {[c.op for c in costs]}")
                continue
            c = main[0]
            real = "int8" if c.dtype == "int16" else c.dtype
            if dtype == "hybrid" and real != "hybrid":
                continue  # the converter kept float weights (too small to quantise)
            us = _time_us(tfl)
            net = max(us - invoke - per_op, 0.0)
            samples.setdefault((cls, real), []).append((c, net))
            rows.append({"case": desc, "op": c.op, "class": cls, "dtype": real, "us": round(us, 3),
                         "macs": c.macs, "work": c.work})  # fmt: skip
            log(f"{cls:15s} {real:8s} {desc:34s} {us:9.2f} us  macs {c.macs:>10d}  work {c.work:>8d}")
    # 4. bandwidths. Cache: the fastest stream (bytes read + written per second) any single-op case reached,
    #    so the per-op memory floor only binds where an op moves more data than the caches deliver. DRAM and
    #    the effective last-level cache: float FULLY_CONNECTED ops with 4..128 MiB of weights; the LLC is the
    #    largest size still streamed at >= 80% of the best rate, DRAM the rate at 128 MiB.
    bw_gbps = max((c.act_bytes + c.weight_bytes) / (n * 1e3) for pts in samples.values() for c, n in pts)
    import keras

    sweep = []
    for din, dout in [(1024, 1024), (2048, 1024), (2048, 2048), (4096, 2048), (4096, 4096), (8192, 4096)]:
        tfl = _single_op_tflite([(din,)], lambda xs, d=dout: keras.layers.Dense(d)(xs[0]), "none")
        size = din * dout * 4
        rate = size / (_time_us(tfl, 1.0) * 1e3)
        sweep.append((size, rate))
        log(f"weight stream {size / 2**20:6.1f} MiB: {rate:6.1f} GB/s")
    best_rate = max(r for _, r in sweep)
    llc = max(size for size, r in sweep if r >= 0.8 * best_rate)
    dram_gbps = sweep[-1][1]
    log(f"bandwidth: cache {bw_gbps:.1f} GB/s, DRAM {dram_gbps:.1f} GB/s, effective LLC {llc / 2**20:.1f} MiB")
    # 5. peak MACs/cycle per dtype = the best single-op CONV rate; class tables relative to it
    mpc: dict[str, float] = {}
    for dtype in ("float32", "int8", "hybrid"):
        rates = [c.macs / (net * clock) for (cls, d), pts in samples.items()
                 if d == dtype and cls in ("conv", "conv1x1")
                 for c, net in pts if c.macs]  # fmt: skip
        if rates:
            mpc[dtype] = round(float(max(rates)), 3)
    mpc["float16"] = mpc["float32"]
    efficiency: dict[str, dict[str, float]] = {}
    cpe: dict[str, dict[str, float]] = {}
    tiles: dict[str, dict[str, list[int]]] = {}
    per_op_cycles: dict[str, dict[str, float]] = {}
    op_cpe: dict[str, dict[str, float]] = {}
    for (cls, dtype), pts in sorted(samples.items()):
        if cls in MAC_CLASSES:
            tile, eff, per_el, setup, err = _fit_class(cls, pts, clock, mpc[dtype], bw_gbps, invoke + per_op)
            efficiency.setdefault(cls, {})[dtype] = round(eff, 4)
            cpe.setdefault(cls, {})[dtype] = round(per_el, 4)
            per_op_cycles.setdefault(cls, {})[dtype] = round(setup, 1)
            tiles.setdefault(cls, {})[dtype] = list(tile)
            log(f"fit {cls} {dtype}: tile {tile}, efficiency {eff:.3f}, cycles/output {per_el:.3f}, "
                f"setup {setup:.0f} cycles, rms log error {err:.3f}")  # fmt: skip
            continue
        _, _, per_el, _, err = _fit_class(cls, pts, clock, 1.0, bw_gbps, invoke + per_op)
        cpe.setdefault(cls, {})[dtype] = round(per_el, 4)
        log(f"fit {cls} {dtype}: cycles/element {per_el:.3f}, rms log error {err:.3f}")
        by_op: dict[str, list[tuple[OpCost, float]]] = {}
        for c, n in pts:
            by_op.setdefault(c.op, []).append((c, n))
        for op, vals in by_op.items():
            op_cpe.setdefault(op, {})[dtype] = round(_fit_class(op, vals, clock, 1.0, bw_gbps, invoke + per_op)[2], 4)
    # how well the fitted tables reproduce the micro-benchmarks themselves
    flat = [(c, net) for pts in samples.values() for c, net in pts]
    for r in rows:
        cls, dtype = r["class"], r["dtype"]
        match = next(c for c, _ in flat if c.macs == r["macs"] and c.work == r["work"] and c.op == r["op"]
                     and c.cls == cls and ("int8" if c.dtype == "int16" else c.dtype) == dtype)  # fmt: skip
        if cls in MAC_CLASSES:
            cyc = padded_macs(match, tiles[cls][dtype]) / (mpc[dtype] * efficiency[cls][dtype])
            cyc += r["work"] * cpe[cls][dtype] + per_op_cycles[cls][dtype]
        else:
            cyc = r["work"] * op_cpe.get(r["op"], {}).get(dtype, cpe[cls][dtype])
        floor = (match.act_bytes + match.weight_bytes) / (bw_gbps * 1e3)
        r["fit_us"] = round(max(cyc / clock, floor) + invoke + per_op, 3)
    log(f"macs/cycle @ {clock:.0f} MHz: {mpc}")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    how = (
        "python -m pruning.estimate calibrate-host: single-op .tflite models (pruning/estimate.py _micro_cases), "
        "LiteRT 1 thread, lowest of three medians"
    )
    return {
        "_doc": "This machine, re-derived by `python -m pruning.estimate calibrate-host` from single-op "
        "micro-benchmarks (never fitted to whole models). `micro_benchmarks` lists every timed case "
        "with the time the fitted tables give back (fit_us).",
        "machine": {"cpu": _cpu_name(), "platform": platform.platform(), "litert": _litert_version()},
        "profile": {
            "kind": "host",
            "core": _cpu_name(),
            "clock_mhz": round(clock, 1),
            "ram_bytes": int(mem),
            "flash_bytes": int(shutil.disk_usage("/").total),
            "runtime_key": "xnnpack-x86",
            "threads": 1,
            "macs_per_cycle": mpc,
            "mem_bandwidth_gbps": round(dram_gbps, 2),
            "cache_bandwidth_gbps": round(bw_gbps, 2),
            "llc_bytes": int(llc),
            "per_op_overhead_us": round(per_op, 4),
            "invoke_overhead_us": round(invoke, 3),
            "runtime_ram_bytes": 8 * 1024 * 1024,
            "sparse_speedup": False,
            "error_band": [0.85, 1.15],
            "sources": {
                "clock_mhz": "/proc/cpuinfo 'cpu MHz' (nominal; turbo makes the effective clock higher, "
                "which is absorbed in macs_per_cycle)",
                "ram_bytes": "os.sysconf SC_PHYS_PAGES * SC_PAGE_SIZE on this machine",
                "flash_bytes": "size of the root filesystem (where the .tflite file is stored)",
                "runtime": "ai_edge_litert Interpreter (XNNPACK delegate applied by default)",
                "threads": "LiteRT num_threads=1, as pruning.host.measure_latency",
                "macs_per_cycle": "micro-benchmark: best MACs/cycle over the single-op CONV_2D cases, per dtype "
                "(float16 weights run as float32)",
                "mem_bandwidth_gbps": "micro-benchmark: weight streaming rate of a float FULLY_CONNECTED with "
                "128 MiB of weights (DRAM)",
                "cache_bandwidth_gbps": "micro-benchmark: the highest (bytes read + written) / time reached by any "
                "single-op case (cache-resident streams; the per-op memory floor)",
                "llc_bytes": "micro-benchmark: largest FULLY_CONNECTED weight size (4..128 MiB) still streamed at "
                ">= 80% of the best rate (effective last-level cache of this VM)",
                "per_op_overhead_us": "micro-benchmark: slope of time over a chain of 1 vs 33 tiny ADD ops",
                "invoke_overhead_us": "micro-benchmark: intercept of the chain of ADDs (invoke + delegate entry)",
                "runtime_ram_bytes": "assumption: LiteRT + XNNPACK heap and code resident, ~8 MiB",
                "sparse_speedup": "off: the pip LiteRT interpreter applies XNNPACK with default options and our "
                "exporter stores zeros densely (no DENSIFY), so no sparse path is taken",
                "error_band": "host estimate vs measurement over bench/device_zoo.py (docs/benchmarks.md)",
            },
        },
        "runtime": {
            "name": "LiteRT + XNNPACK",
            "efficiency": efficiency,
            "cycles_per_element": cpe,
            "op_cycles_per_element": op_cpe,
            "tiles": tiles,
            "cycles_per_op": per_op_cycles,
            "parallel_efficiency": 0.9,
            "thread_overhead_us": 3.0,
            "runtime_flash_bytes": 4 * 1024 * 1024,
            "sources": {
                "efficiency": how + "; per class/dtype NNLS of (time - overheads) on (tile-padded MACs, outputs)",
                "cycles_per_element": how + "; NNLS coefficient of the output (pools: window) element count",
                "op_cycles_per_element": how + "; the same fit per op name (ops XNNPACK does not take, e.g. "
                "int8 RELU6/HARD_SWISH/AVERAGE_POOL_2D, run as TFLite reference kernels and are much slower)",
                "tiles": how + "; the channel tile (nr, kr) that best explains odd channel counts",
                "cycles_per_op": how + "; fixed setup cycles per op of a MAC class (same fit)",
                "parallel_efficiency": "assumption (2-core host; XNNPACK pthreadpool)",
                "thread_overhead_us": "assumption",
                "runtime_flash_bytes": "assumption: ai_edge_litert shared library size order (~4 MiB)",
            },
        },
        "micro_benchmarks": rows,
        "weight_streaming": [{"weights_bytes": z, "gbps": round(r, 2)} for z, r in sweep],
    }


def _host_clock_mhz() -> float:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("cpu MHz"):
                    return float(line.split(":")[1])
    except OSError:
        pass
    return 2000.0


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def _litert_version() -> str:
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m pruning.estimate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cal = sub.add_parser("calibrate-host", help="re-derive pruning/profiles/host.json from micro-benchmarks")
    cal.add_argument("--out", default=str(Path(__file__).parent / "profiles" / "host.json"))
    cal.add_argument("--keep-band", action="store_true", help="keep error_band from the existing file")
    est = sub.add_parser("estimate", help="estimate a .tflite on devices")
    est.add_argument("model")
    est.add_argument("--device", action="append", default=None)
    est.add_argument("--ops", action="store_true", help="print the per-op breakdown")
    args = parser.parse_args(argv)
    if args.cmd == "calibrate-host":
        data = calibrate_host()
        out = Path(args.out)
        if args.keep_band and out.exists():
            data["profile"]["error_band"] = json.loads(out.read_text())["profile"]["error_band"]
        out.write_text(json.dumps(data, indent=1) + "\n")
        return 0
    tflite = Path(args.model).read_bytes()
    from pruning.devices import device_names

    devices = args.device or device_names()
    for _entry in profile_tflite(tflite, devices, measure_host="host" in devices):
        pass
    if args.ops:
        for _row in breakdown(tflite, get_profile(devices[0])):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
