"""Per-op work and time: the cost class, compute dtype, MACs, traffic and weight sparsity of every
operator (`analyse`), MACs padded to the kernels' channel tiles, and the time of one op on a device
profile (`op_time_us`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from contract.devices import MAC_CLASSES, DeviceProfile
from pruning.estimate.graph import CONVS, ELEMENTWISE, POOLS, TRANSCENDENTAL, VIEWS, Graph, Op, Tensor

_MAX_ITEMS_FOR_ZEROS = 1 << 26


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
    reference: bool = False  # XNNPACK does not take it: TFLite's reference kernel runs it (own table entry)
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
                # XNNPACK takes an int8 BATCH_MATMUL only with a symmetric right-hand side (zero point 0;
                # measured: the others run 5-20x slower, on the reference kernel)
                cost.reference = len(ins) > 1 and ins[1].dtype == "int8" and ins[1].zero_point != 0
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
            if name == "WHILE":  # control only: its body's ops follow it in the graph, once per iteration
                cost.work, cost.act_bytes, cost.note = 0, 0, "loop"
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


T = TypeVar("T")


def _table(table: Mapping[str, Mapping[str, T]], cls: str, dtype: str, default: T) -> T:
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


def padded_work(cost: OpCost, tile: tuple[int, int] | list[int]) -> int:
    """Output elements after rounding the output channels up to the kernel's nr: a GEMM kernel
    requantises and stores whole nr-wide register tiles (XNNPACK's x86 int8 AMX kernels: 64 channels)."""
    nr, d = int(tile[0]), cost.dims
    if not d or nr <= 1 or cost.cls not in MAC_CLASSES:
        return cost.work
    return d[0] * _ceil_to(d[1], nr)


def padded_inputs(cost: OpCost, tile: tuple[int, int] | list[int]) -> int:
    """Elements of a GEMM's input operand (conv: pixels x taps x input channels, the im2col matrix; fully
    connected: rows x depth), input channels rounded up to the tile's kr; 0 for other classes."""
    kr, d = int(tile[1]), cost.dims
    if not d or cost.cls not in ("conv", "conv1x1", "fully_connected"):
        return 0
    if cost.cls == "fully_connected":
        return d[0] * _ceil_to(d[2], kr)
    return d[0] * d[2] * _ceil_to(d[3], kr)


def table_op(cost: OpCost) -> str:
    """The op's key in the per-op tables: its name, marked when the reference kernel runs it."""
    return f"{cost.op}/reference" if cost.reference else cost.op


def as_run(cost: OpCost, profile: DeviceProfile) -> OpCost:
    """The op as `profile`'s runtime runs it: on XNNPACK a FULLY_CONNECTED of several rows (a Dense on a sequence)
    runs on the GEMM kernels of a 1x1 convolution and is costed with `conv1x1`'s tables; only a one-row one keeps
    the 1-row kernel the `fully_connected` tables were fitted on (bench/host_fc_rows.py). The converse: a 1x1
    convolution of one output pixel (a squeeze-excite's, a head on a pooled 1x1 map) is a GEMM of one row, run
    as a FULLY_CONNECTED is, and costed with its tables (bench/host_weight_stream.py's one-pixel chains)."""
    d = cost.dims
    if not profile.runtime_key.startswith("xnnpack"):
        return cost
    if cost.op == "FULLY_CONNECTED" and len(d) == 3 and d[0] > 1:
        return replace(cost, cls="conv1x1", dims=(d[0], d[1], 1, d[2]))
    if cost.op == "CONV_2D" and cost.cls == "conv1x1" and len(d) == 4 and d[0] == 1:
        return replace(cost, cls="fully_connected", dims=(1, d[1], d[3]))
    return cost


GEMM_ROWS_REFERENCE = 256
"""Rows (output pixels) at which `DeviceProfile.gemm_rows` is 1: among the sizes the conv tables are fitted on."""
GEMM_ROWS_DTYPES = {"float32": "float32", "float16": "float32", "int8": "int8"}
"""The dtypes whose GEMM kernels the calibration times by rows (float16 weights run as float32); hybrid and int16
run other kernels, not measured: no factor."""


def rows_slowdown(cost: OpCost, profile: DeviceProfile, dtype: str) -> float:
    """How many times slower a MAC of this CONV_2D (or FULLY_CONNECTED of several rows, run as a 1x1 one) is than the
    tables say, by its GEMM's rows (output pixels), from the calibration's 1x1 convolutions of few rows (`gemm_rows`,
    host tables v10): interpolated in log rows up to 1 at `GEMM_ROWS_REFERENCE`, the fewest-row figure below its
    rows. 3x3 convolutions run on the same GEMM kernels (indirect) and were measured to slow down alike (AMD EPYC,
    AVX-512, 2026-12-07, 512 channels: 0.54-0.59x of the tables' speed at 2x2 pixels, 0.73-0.78x at 4x4,
    0.87-0.92x at 8x8, float and int8, as the 1x1 ones). Depthwise, transposed and 3D convolutions, other dtypes,
    and profiles without the table: 1."""
    if cost.cls not in ("conv", "conv1x1") or cost.op not in ("CONV_2D", "FULLY_CONNECTED") or not cost.dims:
        return 1.0
    # ascending, rows > 0 (contract.devices reads them so)
    points = [(r, f) for r, f in profile.gemm_rows.get(GEMM_ROWS_DTYPES.get(dtype, ""), ()) if r < GEMM_ROWS_REFERENCE]
    if not points:
        return 1.0
    rows = cost.dims[0]
    pts = [*points, (GEMM_ROWS_REFERENCE, 1.0)]
    if rows <= pts[0][0]:
        return float(pts[0][1])
    for (r0, s0), (r1, s1) in zip(pts, pts[1:], strict=False):
        if rows <= r1:
            t = (math.log(rows) - math.log(r0)) / (math.log(r1) - math.log(r0))
            return float(s0 + t * (s1 - s0))
    return 1.0


def op_time_us(cost: OpCost, profile: DeviceProfile, sparse_factor: float = 1.0) -> float:
    """Time of one op on `profile`, microseconds."""
    if cost.init_time or cost.fused:
        return 0.0
    cost = as_run(cost, profile)
    if cost.note == "view":
        return profile.per_op_overhead_us * 0.5
    peak, table_dtype = _peak(profile, cost.dtype)
    eff_dtype = table_dtype
    cycles = 0.0
    override = profile.op_cycles_per_element.get(cost.op, {})
    work = cost.work
    own_kernel = False  # an op with a kernel of its own, on tables whose efficiency covers its whole time
    if cost.cls in MAC_CLASSES and cost.macs:
        own = profile.op_efficiency.get(table_op(cost), {})  # an op with a kernel of its own (BATCH_MATMUL)
        own_kernel = eff_dtype in own and profile.padded_outputs  # host tables v3+ (fit.own_efficiencies)
        eff = own[eff_dtype] if eff_dtype in own else _table(profile.efficiency, cost.cls, eff_dtype, 0.5)
        factor = sparse_factor if cost.cls == "conv1x1" and cost.op == "CONV_2D" else 1.0  # XNNPACK's sparse 1x1
        tile = [1, 1] if eff_dtype in own else _table(profile.tiles, cost.cls, eff_dtype, [1, 1])
        cycles += padded_macs(cost, tile) * factor / (peak * eff) * rows_slowdown(cost, profile, eff_dtype)
        if profile.padded_outputs:  # tables fitted on tile-padded outputs (host calibrations since version 3)
            work = padded_work(cost, tile)
        per_input = profile.cycles_per_input.get(cost.cls, {})  # no float32 fallback: absent is 0
        if eff_dtype not in own and eff_dtype in per_input:
            cycles += padded_inputs(cost, tile) * per_input[eff_dtype]
    cycles += _table(profile.cycles_per_op, cost.cls, eff_dtype, 0.0)
    if own_kernel:  # its own efficiency (and, tables v4+, its own per-output term) covers all but the setup
        cycles += cost.work * profile.op_cycles_per_output.get(table_op(cost), {}).get(eff_dtype, 0.0)
    elif eff_dtype in override or (eff_dtype == "hybrid" and "int8" in override):
        cycles += work * override.get(eff_dtype, override.get("int8", 0.0))
    else:
        cycles += work * _table(profile.cycles_per_element, cost.cls, eff_dtype, 1.0)
    threads = max(1, profile.threads)
    speedup = 1.0 + (threads - 1) * profile.parallel_efficiency
    compute_us = cycles / profile.clock_mhz / speedup
    traffic = cost.act_bytes + cost.weight_bytes
    memory_us = traffic / ((profile.cache_bandwidth_gbps or profile.mem_bandwidth_gbps) * 1e3)
    overhead = profile.per_op_overhead_us + (profile.thread_overhead_us if threads > 1 else 0.0)
    return max(compute_us, memory_us) + overhead


def first_op_us(costs: list[OpCost], profile: DeviceProfile) -> float:
    """What an inference pays once for running ops of a MAC class, beyond the invoke overhead and the ops' own
    times (host calibration's chains of 1 and 9 small ops; on a Xeon about 0.3 us for int8 GEMMs): the largest
    over the model's MAC ops, paid once however many follow."""
    table = profile.first_op_us
    if not table:
        return 0.0
    return max(
        (
            _table(table, as_run(c, profile).cls, c.dtype, 0.0)
            for c in costs
            if c.cls in MAC_CLASSES and c.macs and not c.init_time
        ),
        default=0.0,
    )
