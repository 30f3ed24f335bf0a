"""Latency measured on this machine: LiteRT (XNNPACK), warm-up, then the median of repeated runs."""

import time
from typing import Any

import numpy as np

from pruning.export import interpreter


def measure_latency(
    tflite: bytes, *, threads: int = 1, warmup: int = 5, runs: int = 50, budget_s: float = 5.0
) -> dict[str, Any]:
    interp = interpreter(tflite, threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    sample = np.zeros(inp["shape"], dtype=inp["dtype"])
    interp.set_tensor(inp["index"], sample)
    for _ in range(warmup):
        interp.invoke()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < runs and (len(times) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - start) * 1000)
    return {
        "measured_ms": float(np.median(times)),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "runs": len(times),
        "threads": threads,
    }
