"""Reading a `.tflite` flatbuffer: its constant tensors (weights) and how many are zero."""

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

_TYPES: dict[int, Any] = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8, 7: np.int16}


def stored_tensors(data: bytes | bytearray) -> Iterator[tuple[Any, NDArray[Any]]]:
    """(tensor, its stored bytes) for every tensor with data in the file's buffers. The bytes are a
    uint8 view into `data`, so writing them edits a `bytearray` in place."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(data, 0)
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for t in range(graph.TensorsLength()):
            tensor = graph.Tensors(t)
            buffer = model.Buffers(tensor.Buffer())
            if buffer is None:
                continue
            if buffer.DataLength() > 0:
                yield tensor, buffer.DataAsNumpy()
            elif buffer.Offset() > 1:  # large models keep buffers after the flatbuffer
                yield (
                    tensor,
                    np.frombuffer(memoryview(data)[buffer.Offset() : buffer.Offset() + buffer.Size()], np.uint8),
                )


def constant_tensors(tflite: bytes) -> list[tuple[str, NDArray[Any]]]:
    """(name, values) of every tensor stored in the file's buffers (weights, biases)."""
    return [
        (tensor.Name().decode(), np.frombuffer(raw.tobytes(), dtype=_TYPES[tensor.Type()]))
        for tensor, raw in stored_tensors(tflite)
        if tensor.Type() in _TYPES
    ]


def constant_elements(tflite: bytes) -> int:
    return sum(v.size for _, v in constant_tensors(tflite))


def zero_fraction(tflite: bytes, min_size: int = 64) -> float:
    """Share of exact zeros among the weights of tensors with at least `min_size` elements."""
    tensors = [v for _, v in constant_tensors(tflite) if v.size >= min_size]
    total = sum(v.size for v in tensors)
    return float(sum(int(np.count_nonzero(v == 0)) for v in tensors) / total) if total else 0.0
