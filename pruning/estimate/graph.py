"""The `.tflite` flatbuffer parsed into plain Python: tensors (shape, dtype, constness), operators in
execution order (with the options the cost model needs) and the TFLite op-name sets the cost classes
are built from."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

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
    zero_point: int = 0  # of a quantized tensor (the first, for per-channel ones)

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


MAX_OPS = 200_000  # inlined loop iterations stop here (a loop of 10^6 steps is costed as this many ops)


@dataclass
class Loop:
    """A WHILE loop inlined by `parse`: its trip count (None when its condition has no constant bound),
    the iterations inlined, and the ops of one iteration."""

    trips: int | None
    inlined: int
    body_ops: int
    state_vars: int = 2  # tensors the loop carries from one iteration to the next (the WHILE op's inputs)


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    size: int
    raw: bytes
    model: Any = None
    loops: list[Loop] = field(default_factory=list)
    segments: list[list[int]] = field(default_factory=list)  # op indices of the main graph, of each loop iteration
    memo: dict[str, Any] = field(default_factory=dict)  # what is derived once from the graph (delegate partitions)

    def const_values(self, t: Tensor) -> NDArray[Any] | None:
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
    """Operators (execution order) and tensors of the main subgraph of a `.tflite` file, with the body of
    every WHILE loop inlined once per iteration (a recurrent layer converted as a loop): the loop's ops
    follow the WHILE op, `trips` times, on the body's own tensors appended to the list."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(tflite, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    tensors: list[Tensor] = []
    ops: list[Op] = []
    loops: list[Loop] = []
    segments: list[list[int]] = []

    def op_name(op: Any) -> str:
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "")
        if name == "CUSTOM":
            return "CUSTOM:" + (code.CustomCode() or b"").decode(errors="replace")
        return name or f"OP_{max(code.BuiltinCode(), code.DeprecatedBuiltinCode())}"

    def add_subgraph(k: int, times: int, depth: int) -> None:
        graph = model.Subgraphs(k)
        offset = len(tensors)
        for i in range(graph.TensorsLength()):
            tensors.append(_tensor(model, graph.Tensors(i), offset + i))

        def moved(xs: list[int]) -> list[int]:
            return [x + offset if x >= 0 else x for x in xs]

        for _ in range(times):
            segments.append([])
            segment = segments[-1]
            for i in range(graph.OperatorsLength()):
                op = graph.Operators(i)
                name = op_name(op)
                inputs = moved([int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else [])
                outputs = moved([int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else [])
                options = _options(schema, name, op)
                segment.append(len(ops))
                ops.append(Op(len(ops), name, inputs, outputs, options))
                if name == "WHILE" and depth < 4 and len(ops) < MAX_OPS:
                    trips = _trips(model, options["cond"], op_name)
                    body_ops = model.Subgraphs(options["body"]).OperatorsLength()
                    runs = max(1, min(trips or 1, (MAX_OPS - len(ops)) // max(body_ops, 1)))
                    loops.append(Loop(trips, runs, body_ops, len(inputs)))
                    add_subgraph(options["body"], runs, depth + 1)

    add_subgraph(0, 1, 0)
    main = model.Subgraphs(0)
    g_in = [int(x) for x in main.InputsAsNumpy()] if main.InputsLength() else []
    g_out = [int(x) for x in main.OutputsAsNumpy()] if main.OutputsLength() else []
    return Graph(tensors, ops, g_in, g_out, len(tflite), tflite, model, loops, segments)


def _tensor(model: Any, t: Any, index: int) -> Tensor:
    dtype, itemsize = _DTYPES.get(t.Type(), ("unknown", 4))
    buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
    const = buffer is not None and (buffer.DataLength() > 0 or buffer.Offset() > 1)
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
    shape = tuple(max(d, 1) for d in shape)  # dynamic (-1) batch -> 1
    name = (t.Name() or b"").decode(errors="replace")
    q = t.Quantization()
    zero_point = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else 0
    return Tensor(index, name, shape, dtype, itemsize, const, t.Buffer(), zero_point)


def _trips(model: Any, cond: int, op_name: Any) -> int | None:
    """A loop's trip count: the smallest integer constant its condition compares a counter against with
    LESS (a Keras recurrent layer's loop: `step < time_steps and iteration < max_iterations`)."""
    graph = model.Subgraphs(cond)
    bounds = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        if op_name(op) != "LESS" or op.InputsLength() < 2:
            continue
        t = graph.Tensors(int(op.Inputs(1)))
        dtype = {2: np.int32, 4: np.int64}.get(t.Type())
        buffer = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        if dtype is not None and buffer is not None and buffer.DataLength() > 0:
            values = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype)
            if values.size == 1:
                bounds.append(int(values[0]))
    return max(min(bounds), 0) if bounds else None


def _options(schema: Any, name: str, op: Any) -> dict[str, Any]:
    table = op.BuiltinOptions()
    if table is None:
        return {}
    if name in POOLS:
        opts = schema.Pool2DOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"filter": (opts.FilterHeight(), opts.FilterWidth()), "stride": (opts.StrideH(), opts.StrideW())}
    if name == "WHILE":
        opts = schema.WhileOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"cond": opts.CondSubgraphIndex(), "body": opts.BodySubgraphIndex()}
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        opts = schema.Conv2DOptions() if name == "CONV_2D" else schema.DepthwiseConv2DOptions()
        opts.Init(table.Bytes, table.Pos)
        return {
            "stride": (opts.StrideH(), opts.StrideW()),
            "padding": "same" if opts.Padding() == 0 else "valid",
            "dilation": (opts.DilationHFactor(), opts.DilationWFactor()),
        }
    return {}
