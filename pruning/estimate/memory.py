"""Memory: peak live activations (a linear scan of tensor lifetimes), weights as XNNPACK packs them,
the RAM a model needs on a device, and the time lost re-reading what does not fit the last-level cache."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from contract.devices import MAC_CLASSES, DeviceProfile
from pruning.estimate.costs import OpCost
from pruning.estimate.graph import VIEWS, Graph

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
    return packed_split(costs)[0]


def packed_split(costs: list[OpCost]) -> tuple[int, dict[str, int]]:
    """(all packed weight bytes, dtype -> the part read by ops of more than one output row: a conv's pixels, a
    FULLY_CONNECTED's rows), as `packed_weight_bytes`; int8 and hybrid GEMMs count as int8, the rest as float32."""
    total = 0
    rows: dict[str, int] = {}
    for c in costs:
        if c.cls in MAC_CLASSES:
            int8 = c.dtype in ("int8", "hybrid")
            size = c.weight_elements * (1 if int8 else 4)
            total += size
            if c.dims and c.dims[0] > 1:
                key = "int8" if int8 else "float32"
                rows[key] = rows.get(key, 0) + size
    return total, rows


def ram_estimate(tflite: bytes, graph: Graph, costs: list[OpCost], profile: DeviceProfile) -> tuple[int, str]:
    """RAM on `profile` and how it was obtained (tensor arena on TFLite Micro, activations + packed weights
    on LiteRT + XNNPACK), plus the runtime's own RAM."""
    peak = peak_activation_bytes(graph)
    if profile.runtime_key.startswith("tflm"):
        why = "tflite-micro could not load the model"
        if profile.arena_tool:
            from pruning import micro

            arena = None
            if micro.available():
                arena = micro.arena_bytes(tflite, hint=peak)
            else:  # an optional extra (shears[mcu]): its only wheels are for x86_64 Linux
                why = "tflite-micro is not installed on this worker (the extra shears[mcu], x86_64 Linux only)"
            if arena is not None:
                return arena + profile.runtime_ram_bytes, (
                    f"RAM = tensor arena {arena} B measured with the tflite-micro interpreter "
                    f"(64-bit host build: its bookkeeping structs are larger than on a 32-bit MCU) "
                    f"+ runtime {profile.runtime_ram_bytes} B"
                )
        persistent = 256 * len(graph.ops) + 64 * len(graph.tensors)
        return peak + persistent + profile.runtime_ram_bytes, (
            f"RAM = computed peak activations {peak} B + arena bookkeeping ~{persistent} B "
            f"+ runtime {profile.runtime_ram_bytes} B ({why})"
        )
    packed = packed_weight_bytes(graph, costs)
    return peak + packed + profile.runtime_ram_bytes, (
        f"RAM = peak activations {peak} B (linear scan over tensor lifetimes) + weights packed by XNNPACK "
        f"{packed} B + runtime {profile.runtime_ram_bytes} B"
    )


def stream_rate_gbps(points: tuple[tuple[int, float], ...] | list[tuple[int, float]], size: float) -> float:
    """The rate a weight stream of `size` bytes is read at, from the calibration's sweep `points` ((bytes, GB/s),
    ascending): time per byte interpolated in log-size; each point raised to the best rate of any larger one
    (a small stream is never slower than a bigger one: the smallest points are overhead-bound); the end points
    beyond the sweep."""
    pts = sorted(points)
    rates = [r for _, r in pts]
    for i in range(len(rates) - 2, -1, -1):
        rates[i] = max(rates[i], rates[i + 1])
    sizes = [float(b) for b, _ in pts]
    if size <= sizes[0]:
        return rates[0]
    if size >= sizes[-1]:
        return rates[-1]
    j = next(k for k in range(1, len(sizes)) if sizes[k] >= size)
    t = (np.log(size) - np.log(sizes[j - 1])) / (np.log(sizes[j]) - np.log(sizes[j - 1]))
    return float(1.0 / ((1 - t) / rates[j - 1] + t / rates[j]))


def streamed_weights_us(
    packed: int, working: int, profile: DeviceProfile, rows: Mapping[str, int] | None = None
) -> tuple[float, str]:
    """Time to re-read the weights each inference from where they live, beyond the time the single-op micro-
    benchmarks (weights hot in the core's own cache) already include.

    With a calibrated sweep (`profile.weight_stream`, host tables v3+): a model whose weights + activations are
    `working` bytes reads its `packed` weight bytes at the rate the sweep measured for a stream of that size
    (private cache, then the shared last-level cache, then DRAM), so it adds `packed * (1/rate(working) -
    1/rate(smallest))`; additive, as chains of convolutions with distinct weights measured (the weight stream does
    not hide behind the compute). `rows` (dtype -> bytes) of the `packed` bytes are read by GEMMs of several rows:
    with sweeps of those (`profile.weight_stream_rows`: tables v8+, by dtype since v11) they stream at their
    dtype's rate (float32's where the dtype has none, the one-row sweep's where neither has one), the rest at the
    one-row sweep's. Without a sweep: only what spills beyond `llc_bytes`, at DRAM rate."""
    if profile.weight_stream and packed > 0:
        sweeps = profile.weight_stream_rows
        parts: list[tuple[str, int, tuple[tuple[int, float], ...]]] = []
        several = {d: n for d, n in (rows or {}).items() if n > 0} if sweeps else {}
        for dtype, size in several.items():
            sweep = sweeps.get(dtype) or sweeps.get("float32") or profile.weight_stream
            parts.append((f"{dtype} ops of several rows", size, sweep))
        parts.insert(0, ("one-row ops", max(packed - sum(several.values()), 0), profile.weight_stream))
        us, said = 0.0, []
        for kind, size, sweep in parts:
            hot, rate = stream_rate_gbps(sweep, 0), stream_rate_gbps(sweep, working)
            extra = max(size / (rate * 1e3) - size / (hot * 1e3), 0.0)
            if extra > 0:
                us += extra
                said.append(f"{size / 2**20:.2f} MiB by {kind} at {rate:.1f} GB/s (cache-hot {hot:.1f})")
        if us <= 0:
            return 0.0, ""
        return us, (
            f"weights {packed / 2**20:.2f} MiB re-read each inference: a {working / 2**20:.2f} MiB working set "
            f"streams {' and '.join(said)} on this host (calibration sweeps), against the cache-hot "
            f"single-op micro-benchmarks: +{us / 1e3:.3f} ms"
        )
    if profile.llc_bytes <= 0:
        return 0.0, ""
    spill = working - profile.llc_bytes
    if spill <= 0:
        return 0.0, ""
    us = spill / (profile.mem_bandwidth_gbps * 1e3)
    return us, (
        f"weights + activations {working / 2**20:.1f} MiB exceed the {profile.llc_bytes / 2**20:.1f} MiB "
        f"effective last-level cache: {spill / 2**20:.1f} MiB re-read from DRAM each inference ({us / 1e3:.2f} ms)"
    )


def cold_weights_us(graph: Graph, costs: list[OpCost], profile: DeviceProfile) -> tuple[float, str]:
    """`streamed_weights_us` of a parsed model: its packed weights, and weights + peak activations as the
    working set (single-op micro-benchmarks keep their weights hot, a whole model does not)."""
    packed, rows = packed_split(costs)
    return streamed_weights_us(packed, packed + peak_activation_bytes(graph), profile, rows)
