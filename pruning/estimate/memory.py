"""Memory: peak live activations (a linear scan of tensor lifetimes), weights as XNNPACK packs them,
the RAM a model needs on a device, and the time lost re-reading what does not fit the last-level cache."""

from __future__ import annotations

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
    total = 0
    for c in costs:
        if c.cls in MAC_CLASSES:
            total += c.weight_elements * (1 if c.dtype in ("int8", "hybrid") else 4)
    return total


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
