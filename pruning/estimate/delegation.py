"""Which ops LiteRT's XNNPACK delegate takes, and how many delegate partitions a graph splits into.

XNNPACK runs each maximal set of ops it takes as one partition (one DELEGATE node); an op it does not take runs
on TFLite's own kernel between two partitions. On an AVX-512 EPYC a GATHER splitting a chain of 16 ADDs adds
0.3 us: 0.24 us the op on TFLite's kernel, 0.02 us the extra partition (pruning.estimate.runtime_bench).
Read off ai-edge-litert 2.x on the host zoo (bench/device_family_models.py: which ops end up in a DELEGATE
node) and kept as rules rather than a list of models: shape arithmetic (int32/int64/bool results: SHAPE, PACK,
REDUCE_PROD ...) stays on TFLite; a RESHAPE or STRIDED_SLICE whose shape or bounds are computed at run time
stays too; int8 ops without a quantised XNNPACK path (SOFTMAX, HARD_SWISH, AVERAGE_POOL_2D, ...) stay; and any
op this module does not name as taken. tests/pruning/test_delegation.py checks the partition count against
LiteRT's own on real models."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from pruning.estimate.graph import Graph, Op

TAKEN = {
    "ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LEAKY_RELU",
    "PRELU", "HARD_SWISH", "ABS", "NEG", "SQUARE", "SQUARED_DIFFERENCE", "FLOOR", "CEIL", "ROUND", "LOGISTIC", "TANH",
    "GELU", "ELU", "SQRT", "RSQRT", "EXP", "AVERAGE_POOL_2D", "MAX_POOL_2D", "CONV_2D", "DEPTHWISE_CONV_2D",
    "TRANSPOSE_CONV", "FULLY_CONNECTED", "BATCH_MATMUL", "CONCATENATION", "MEAN", "SUM", "REDUCE_MAX", "SOFTMAX", "PAD",
    "RESHAPE", "SPLIT", "SLICE", "STRIDED_SLICE", "TRANSPOSE", "DEQUANTIZE", "QUANTIZE", "RESIZE_BILINEAR",
    "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "EXPAND_DIMS", "SQUEEZE",
}  # fmt: skip
"""Ops XNNPACK takes in float32 (with static shapes)."""
INT8_NOT_TAKEN = {
    "AVERAGE_POOL_2D", "BATCH_MATMUL", "GELU", "HARD_SWISH", "RSQRT", "SOFTMAX", "SQUARED_DIFFERENCE", "DIV", "EXP",
    "SQRT",
}  # fmt: skip
"""Ops that XNNPACK takes in float32 but leaves to TFLite in int8 (seen on the zoo's int8 exports)."""
_DYNAMIC_ARGS = {"RESHAPE": (1,), "STRIDED_SLICE": (1, 2, 3), "SLICE": (1, 2), "PAD": (1,)}
"""Inputs that must be constants for XNNPACK to take the op (a shape, bounds or paddings)."""


def taken(graph: Graph, op: Op) -> bool:
    """Whether XNNPACK takes `op` (else TFLite's own kernel runs it, between two delegate partitions)."""
    t = graph.tensors
    if op.name not in TAKEN or not op.outputs:
        return False
    if any(o >= 0 and t[o].dtype not in ("float32", "float16", "int8", "uint8") for o in op.outputs):
        return False  # shape arithmetic
    for k in _DYNAMIC_ARGS.get(op.name, ()):
        if k < len(op.inputs) and op.inputs[k] >= 0 and not t[op.inputs[k]].const:
            return False
    act = next((t[i] for i in op.inputs if i >= 0 and not t[i].const), None)
    return not (act is not None and act.dtype in ("int8", "uint8") and op.name in INT8_NOT_TAKEN)


def partitions(ops: Sequence[Op], is_taken: Sequence[bool]) -> int:
    """Delegate partitions of one subgraph's `ops`, as TFLite forms them (PartitionGraphIntoIndependentNodeSubsets):
    every op of one kind (taken / not taken) whose inputs are ready, as long as any is, then the other kind."""
    producer = {o: k for k, op in enumerate(ops) for o in op.outputs if o >= 0}
    users: list[list[int]] = [[] for _ in ops]
    waiting = [0] * len(ops)
    for k, op in enumerate(ops):
        for p in {producer[i] for i in op.inputs if i in producer and producer[i] != k}:
            users[p].append(k)
            waiting[k] += 1
    ready: dict[bool, deque[int]] = {True: deque(), False: deque()}
    for k in range(len(ops)):
        if not waiting[k]:
            ready[is_taken[k]].append(k)
    count, kind, left = 0, bool(is_taken[0]) if ops else True, len(ops)
    while left and (ready[True] or ready[False]):
        if ready[kind]:
            count += int(kind)
            while ready[kind]:
                k = ready[kind].popleft()
                left -= 1
                for u in users[k]:
                    waiting[u] -= 1
                    if not waiting[u]:
                        ready[is_taken[u]].append(u)
        kind = not kind
    return count


def extra_partitions(graph: Graph) -> tuple[int, list[str]]:
    """Delegate partitions beyond one per subgraph run (the main graph, and each inlined loop iteration, whose
    first partition the loop's per-iteration cost already holds), and the names of the ops left to TFLite."""
    if "partitions" not in graph.memo:
        graph.memo["partitions"] = _extra_partitions(graph)
    extra, left = graph.memo["partitions"]
    return int(extra), list(left)


def taken_flags(graph: Graph) -> list[bool]:
    """`taken` for every op of the graph, in order (derived once per parsed graph)."""
    if "taken" not in graph.memo:
        graph.memo["taken"] = [taken(graph, op) for op in graph.ops]
    return list(graph.memo["taken"])


def _extra_partitions(graph: Graph) -> tuple[int, list[str]]:
    flags = taken_flags(graph)
    left = sorted({op.name for op, f in zip(graph.ops, flags, strict=True) if not f and op.name != "WHILE"})
    extra = 0
    for segment in graph.segments or [list(range(len(graph.ops)))]:
        ops = [graph.ops[k] for k in segment]
        extra += max(partitions(ops, [flags[k] for k in segment]) - 1, 0)
    return extra, left
