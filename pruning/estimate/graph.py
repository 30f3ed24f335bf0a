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
