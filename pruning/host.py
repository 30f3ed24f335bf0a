"""Latency measured on this machine: LiteRT (XNNPACK), warm-up, then the median of repeated timed batches.

With one thread the figure is the calling thread's CPU time per inference (CLOCK_THREAD_CPUTIME_ID):
what the model costs a core, without the time the OS gave that core to other processes. On an idle
machine it is the wall time; on a shared worker or CI host the wall time grows with the load (a
ResNet50 at load 5 on 2 cores: wall median 16.7 ms, thread CPU time 11.5 ms, fastest wall 10.7 ms),
and both the estimator's calibration and the figures it is checked against are measured this way.
With several threads the work runs on pool threads this clock does not see, so the wall clock is used.
The wall-clock median is reported beside it either way.
"""

import time
from typing import Any

import numpy as np

from pruning.export import interpreter

BATCH_US = 300.0
"""A timed batch lasts at least this long: reading the CPU clock costs ~1 us here (a system call), so
inferences of a few microseconds are timed in batches and divided."""


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
    single = []
    for _ in range(3):
        start = time.perf_counter()
        interp.invoke()
        single.append(time.perf_counter() - start)
    batch = max(1, min(2000, int(BATCH_US * 1e-6 / max(min(single), 1e-9))))
    cpu_clock = threads == 1
    cpu: list[float] = []
    wall: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(wall) < runs and (len(wall) < 5 or time.perf_counter() < deadline):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        for _ in range(batch):
            interp.invoke()
        c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
        cpu.append((c1 - c0) / batch / 1e6)
        wall.append((w1 - w0) / batch / 1e6)
    times = cpu if cpu_clock else wall
    return {
        "measured_ms": float(np.median(times)),
        "p10_ms": float(np.percentile(times, 10)),
        "p90_ms": float(np.percentile(times, 90)),
        "wall_ms": float(np.median(wall)),
        "clock": "thread_cpu" if cpu_clock else "wall",
        "runs": len(times) * batch,
        "batch": batch,
        "threads": threads,
    }


def clock_phrase(measured: dict[str, Any]) -> str:
    """How a measurement was taken, for a report's `basis`."""
    clock = (
        "the inference thread's CPU time (time given to other processes excluded)"
        if measured["clock"] == "thread_cpu"
        else "wall time"
    )
    return (
        f"LiteRT (XNNPACK) on this machine, {measured['threads']} thread(s), median {clock} of "
        f"{measured['runs']} runs in batches of {measured['batch']} after warm-up "
        f"(wall-clock median {measured['wall_ms']:.4g} ms)"
    )
