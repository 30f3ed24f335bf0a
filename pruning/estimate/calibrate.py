"""Host constants from micro-benchmarks (`python -m pruning.estimate calibrate-host`): overheads, bandwidths, peak
MACs/cycle, per-class efficiency, per-element cycles and channel tiles of this CPU, in the estimator's own form."""

from __future__ import annotations

from typing import Any

import numpy as np

from contract.devices import MAC_CLASSES
from pruning.estimate.costs import OpCost, analyse, padded_inputs, padded_macs, padded_work, table_op
from pruning.estimate.fit import INPUT_CLASSES, fit_class, own_efficiencies, own_per_output
from pruning.estimate.graph import parse
from pruning.estimate.microbench import (
    chain_tflite,
    first_op_overheads,
    interleaved_cases,
    loop_overheads,
    matmul_kind,
    micro_cases,
    op_overheads,
    single_op_tflite,
    stable_time_us,
    weight_sweep,
)
from pruning.estimate.runtime_bench import runtime_overheads

OWN_EFFICIENCY = ("BATCH_MATMUL",)
"""Ops of a MAC class whose kernel is not the class's own: timed apart, with an efficiency of their own."""
PEAK_MIN_NET_US = 5.0  # the peak rate comes from cases whose net time is at least this (when there are any)
MIN_US = 0.05  # timings below this (a timer's resolution) are floored: no division by zero, ever
DEFAULT_BUDGET_S = 170.0
SECOND_PASS_SHARE = 0.35  # the second timing pass may run this share of the budget past it (60 s of the default)


class CalibrationError(Exception):
    """Calibration could not produce tables; the message says why (printed without a traceback)."""


def calibrate_host(
    log: Any = print,
    timer: Any = None,
    quick: bool = False,
    budget_s: float = DEFAULT_BUDGET_S,
    cases: list[Any] | None = None,
) -> dict[str, Any]:
    """Re-derive the host profile from single-op micro-benchmarks; returns the host.json content.

    `timer(tflite, budget_s) -> microseconds` (default: `stable_time_us`, medians repeated until stable).
    `quick`: one case per class and a short bandwidth sweep (tests, smoke checks). `budget_s` bounds the
    timing work: once spent, the remaining cases are skipped and every class/dtype without samples keeps the
    fallback table (contract/profiles/host.json), listed under `calibration.filled_from_fallback`. Raises
    `CalibrationError` with a reason (never ZeroDivisionError) when the timer gives nothing usable."""
    import os
    import platform
    import shutil
    import time

    from contract import host_tables

    started = time.monotonic()
    deadline = started + budget_s
    timer = timer or stable_time_us
    per_case_s = 0.05 if quick else 0.4
    second_pass_s = SECOND_PASS_SHARE * budget_s

    def timed(tfl: bytes, budget: float = per_case_s) -> float:
        us = float(timer(tfl, budget))
        if not np.isfinite(us) or us < 0:
            raise CalibrationError(f"the timer returned {us!r} us")
        return max(us, MIN_US)

    clock = _host_clock_mhz()
    quant = {"float32": "none", "int8": "int8", "hybrid": "dynamic_int8"}
    # 1. invoke overhead and per-op overhead: chains of 1 and 33 tiny ADDs, the median of repeated readings
    per_op, invoke, per_op_readings = op_overheads(timed, chain_tflite, 1 if quick else 3, log)
    # 2. what an inference pays once when it runs a MAC class's ops (chains of 1 and 9 small ops)
    chained: dict[tuple[str, str], list[Any]] = {}  # small ops' marginal times in chains: fit samples too
    first_op = {} if quick else first_op_overheads(timed, invoke, log, chained)
    loop_fixed, loop_iteration = (0.0, 0.0) if quick else loop_overheads(timed, invoke, per_op, log)
    around = {} if quick else runtime_overheads(timed, per_op, log, invoke, first_op)  # TFLite kernels, GEMM rows ...

    def first(cls: str, dtype: str) -> float:
        return float(first_op.get(cls, {}).get("int8" if dtype in ("hybrid", "int16") else dtype, 0.0))

    # 3. every case, every dtype: time minus overheads (floored)
    samples: dict[tuple[str, str], list[tuple[OpCost, float]]] = {}
    op_samples: dict[tuple[str, str], list[tuple[OpCost, float]]] = {}
    rows: list[dict[str, Any]] = []
    todo = interleaved_cases(cases if cases is not None else micro_cases())
    if quick:  # one case per class, and one per BATCH_MATMUL kernel (apart from their class's fit)
        todo = list({(case[0], matmul_kind(case[1])): case for case in reversed(todo)}.values())
    skipped, built = 0, []
    for cls, desc, shapes, build in todo:  # pass 1: build and time every case
        for dtype, q in quant.items():
            if dtype == "hybrid" and cls not in MAC_CLASSES:
                continue
            if time.monotonic() > deadline:
                skipped += 1
                continue
            try:
                tfl = single_op_tflite(shapes, build, q)
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
            built.append([cls, desc, c, real, tfl, timed(tfl)])
            log(f"{cls:15s} {real:8s} {desc:34s} {built[-1][5]:9.2f} us  macs {c.macs:>10d}  work {c.work:>8d}")
    if not quick:  # read again at the end: the median of all readings (a passing state at the start is outvoted)
        _, late_invoke, late = op_overheads(timed, chain_tflite, 2, log)
        per_op_readings += late
        per_op, invoke = float(np.median(per_op_readings)), float(np.median([invoke, late_invoke]))
        # pass 2, a minute or more later: every case again, the lower reading kept. On an idle AMD EPYC two
        # calibrations minutes apart read single cases 30-80% apart (conv1x1 28x28x128 int8 282 / 391 us; 282 in
        # every later process), a slow spell of the shared host lasting the repeats of one case
        for entry in built:
            entry[5] = min(entry[5], timed(entry[4])) if time.monotonic() < deadline + second_pass_s else entry[5]
    for cls, desc, c, real, _, us in built:
        net = max(us - invoke - per_op - first(cls, real), MIN_US)
        # an op of a MAC class other than the class's own kernel (BATCH_MATMUL in fully_connected) gets
        # its own efficiency, fitted after the class's; it does not move the class's fit
        (op_samples if c.op in OWN_EFFICIENCY else samples).setdefault((cls, real), []).append((c, net))
        rows.append({"case": desc, "op": table_op(c), "class": cls, "dtype": real, "us": round(us, 3),
                     "macs": c.macs, "work": c.work})  # fmt: skip
    for key, pts in chained.items():
        samples.setdefault(key, []).extend((c, max(us - per_op, MIN_US)) for c, us in pts)
    if skipped:
        log(f"budget of {budget_s:.0f} s spent: {skipped} case(s) skipped (their tables fall back)")
    if not rows:
        raise CalibrationError("no micro-benchmark could be built and timed on this machine")
    if float(np.median([r["us"] for r in rows])) <= MIN_US:
        raise CalibrationError(
            f"the timer returned at most {MIN_US} us for most micro-benchmarks (below its resolution): "
            "no usable timings, so the tables cannot be fitted"
        )
    # 4. bandwidths. Cache: the fastest stream (bytes read + written per second) any single-op case reached,
    #    so the per-op memory floor only binds where an op moves more data than the caches deliver. The weight
    #    stream sweep: float FULLY_CONNECTED ops with 0.25..128 MiB of weights, each timed in a loop, so a stream of
    #    that size is cycled once per inference as a whole model cycles its weights: the rate falls from the core's
    #    own cache to the shared last-level cache to DRAM (`weight_stream`, read by pruning.estimate.memory).
    #    DRAM: the rate at 128 MiB; the effective LLC: the largest size >= 4 MiB still streamed at >= 80% of the best
    #    rate at >= 4 MiB.
    bw_gbps = max((c.act_bytes + c.weight_bytes) / (n * 1e3) for pts in samples.values() for c, n in pts)
    sweep = weight_sweep(timed, quick, log, single_op_tflite)
    big = [(size, r) for size, r in sweep if size >= 4 * 2**20] or sweep
    best_rate = max(r for _, r in big)
    llc = max(size for size, r in big if r >= 0.8 * best_rate)
    dram_gbps = sweep[-1][1]
    log(f"bandwidth: cache {bw_gbps:.1f} GB/s, DRAM {dram_gbps:.1f} GB/s, effective LLC {llc / 2**20:.1f} MiB")
    # 5. peak MACs/cycle per dtype = the best single-op CONV rate among the cases timed well above the
    #    overheads subtracted from them (a sub-microsecond net time is mostly timer noise, and one such case
    #    made a 389 MACs/cycle "peak" on a Xeon); class tables relative to it
    mpc: dict[str, float] = {}
    for dtype in ("float32", "int8", "hybrid"):
        timed_ops = [(c, net) for (cls, d), pts in samples.items()
                     if d == dtype and cls in ("conv", "conv1x1") for c, net in pts if c.macs]  # fmt: skip
        solid = [(c, net) for c, net in timed_ops if net >= PEAK_MIN_NET_US]
        rates = [c.macs / (net * clock) for c, net in solid or timed_ops]
        if rates:
            mpc[dtype] = round(float(max(rates)), 3)
    fb = host_tables.fallback()
    filled: list[str] = []
    for dtype, value in fb["profile"]["macs_per_cycle"].items():
        if dtype not in mpc and dtype != "float16":
            mpc[dtype] = value
            filled.append(f"macs_per_cycle.{dtype}")
    mpc["float16"] = mpc["float32"]
    efficiency: dict[str, dict[str, float]] = {}
    cpe: dict[str, dict[str, float]] = {}
    tiles: dict[str, dict[str, list[int]]] = {}
    per_op_cycles: dict[str, dict[str, float]] = {}
    per_input: dict[str, dict[str, float]] = {}  # GEMM classes: cycles per input-operand element (0 if absent)
    op_cpe: dict[str, dict[str, float]] = {}
    for (cls, dtype), pts in sorted(samples.items()):
        if cls in MAC_CLASSES:
            fixed = invoke + per_op + first(cls, dtype)
            tile, eff, per_el, setup, err, per_in = fit_class(cls, pts, clock, mpc[dtype], bw_gbps, fixed)
            if cls in INPUT_CLASSES:
                per_input.setdefault(cls, {})[dtype] = round(per_in, 4)
            efficiency.setdefault(cls, {})[dtype] = round(eff, 4)
            cpe.setdefault(cls, {})[dtype] = round(per_el, 4)
            per_op_cycles.setdefault(cls, {})[dtype] = round(setup, 1)
            tiles.setdefault(cls, {})[dtype] = list(tile)
            log(f"fit {cls} {dtype}: tile {tile}, efficiency {eff:.3f}, cycles/output {per_el:.3f}, "
                f"cycles/input {per_in:.3f}, setup {setup:.0f} cycles, rms log error {err:.3f}")  # fmt: skip
            continue
        _, _, per_el, _, err, _ = fit_class(cls, pts, clock, 1.0, bw_gbps, invoke + per_op)
        cpe.setdefault(cls, {})[dtype] = round(per_el, 4)
        log(f"fit {cls} {dtype}: cycles/element {per_el:.3f}, rms log error {err:.3f}")
        by_op: dict[str, list[tuple[OpCost, float]]] = {}
        for c, n in pts:
            by_op.setdefault(c.op, []).append((c, n))
        for op, vals in by_op.items():
            op_cpe.setdefault(op, {})[dtype] = round(fit_class(op, vals, clock, 1.0, bw_gbps, invoke + per_op)[2], 4)
    op_eff = own_efficiencies(op_samples, mpc, efficiency, per_op_cycles, clock)
    two_term_eff, op_cpo = own_per_output(op_samples, mpc, per_op_cycles, clock, op_eff)
    for op, row in two_term_eff.items():
        op_eff[op].update(row)
    for op, row in op_eff.items():
        log(f"fit {op}: efficiency {row}, cycles/output {op_cpo.get(op, {})}")
    tables: dict[str, dict[str, dict[str, Any]]]  # floats, and [nr, kr] for tiles
    tables = {"efficiency": efficiency, "cycles_per_element": cpe, "tiles": tiles, "cycles_per_op": per_op_cycles,
              "op_cycles_per_element": op_cpe, "op_efficiency": op_eff}  # fmt: skip
    for name, table in tables.items():
        for cls, row in fb["runtime"].get(name, {}).items():
            for dtype, value in row.items():
                if dtype not in table.setdefault(cls, {}):
                    table[cls][dtype] = value
                    filled.append(f"{name}.{cls}.{dtype}")
    if filled:
        log(f"{len(filled)} table entries without micro-benchmarks here keep the fallback's values")
    # how well the fitted tables reproduce the micro-benchmarks themselves
    flat = [(c, net) for pts in [*samples.values(), *op_samples.values()] for c, net in pts]
    for r in rows:
        cls, dtype = r["class"], r["dtype"]
        match = next(c for c, _ in flat if c.macs == r["macs"] and c.work == r["work"] and table_op(c) == r["op"]
                     and c.cls == cls and ("int8" if c.dtype == "int16" else c.dtype) == dtype)  # fmt: skip
        if cls in MAC_CLASSES:
            own = op_eff.get(r["op"], {})  # as costs.op_time_us reads the tables
            eff = own.get(dtype, efficiency[cls][dtype])
            padding = [1, 1] if dtype in own else tiles[cls][dtype]
            cyc = padded_macs(match, padding) / (mpc[dtype] * eff)
            cyc += per_op_cycles[cls][dtype] + match.work * op_cpo.get(r["op"], {}).get(dtype, 0.0)
            if dtype not in own:  # an op with its own efficiency has no per-output or per-input term
                cyc += padded_work(match, padding) * cpe[cls][dtype]
                cyc += padded_inputs(match, padding) * per_input.get(cls, {}).get(dtype, 0.0)
        else:
            cyc = r["work"] * op_cpe.get(r["op"], {}).get(dtype, cpe[cls][dtype])
        floor = (match.act_bytes + match.weight_bytes) / (bw_gbps * 1e3)
        r["fit_us"] = round(max(cyc / clock, floor) + invoke + per_op + first(cls, dtype), 3)
    log(f"macs/cycle @ {clock:.0f} MHz: {mpc}")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    how = (
        "python -m pruning.estimate calibrate-host: single-op .tflite models "
        "(pruning/estimate/microbench.py micro_cases), LiteRT 1 thread, lowest median once two agree within 3%"
    )
    return {
        "_doc": "The CPU named by machine.fingerprint, derived by `python -m pruning.estimate calibrate-host` "
        "from single-op micro-benchmarks (never fitted to whole models). `micro_benchmarks` lists every timed case "
        "with the time the fitted tables give back (fit_us).",
        "tables_version": host_tables.TABLES_VERSION,
        "machine": {
            "cpu": _cpu_name(),
            "platform": platform.platform(),
            "litert": _litert_version(),
            "fingerprint": host_tables.fingerprint(),
        },  # fmt: skip
        "calibration": {
            "seconds": round(time.monotonic() - started, 1),
            "quick": quick,
            "budget_s": budget_s,
            "cases_timed": len(rows),
            "cases_skipped_for_budget": skipped,
            "per_op_readings_us": per_op_readings,
            "filled_from_fallback": filled,
        },  # fmt: skip
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
            "weight_stream": [[int(size), round(rate, 2)] for size, rate in sweep],
            "per_op_overhead_us": round(per_op, 4),
            "invoke_overhead_us": round(invoke, 3),
            "loop_fixed_us": loop_fixed,
            "loop_iteration_us": loop_iteration,
            **around,
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
                "weight_stream": "micro-benchmark: (weight bytes, GB/s) of float FULLY_CONNECTED ops with 0.25..128 "
                "MiB of weights, each in a loop; a model's weights are re-read at the rate of its working set's size",
                "per_op_overhead_us": "micro-benchmark: slope of time over a chain of 1 vs 33 tiny ADD ops",
                "invoke_overhead_us": "micro-benchmark: intercept of the chain of ADDs (invoke + delegate entry)",
                "loop_iteration_us": "micro-benchmark: WHILE loops of 1 and 33 iterations, slope minus the body's ops",
                **dict.fromkeys(around, "micro-benchmark: pruning.estimate.runtime_bench.runtime_overheads"),
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
            "op_efficiency": op_eff,
            "op_cycles_per_output": op_cpo,
            "tiles": tiles,
            "padded_outputs": True,
            "first_op_us": first_op,
            "cycles_per_input": per_input,
            "cycles_per_op": per_op_cycles,
            "parallel_efficiency": 0.9,
            "thread_overhead_us": 3.0,
            "runtime_flash_bytes": 4 * 1024 * 1024,
            "sources": {
                "efficiency": how + "; per class/dtype NNLS of (time - overheads) on (tile-padded MACs, outputs)",
                "cycles_per_element": how + "; NNLS coefficient of the output (pools: window) element count",
                "op_cycles_per_element": how + "; the same fit per op name (ops XNNPACK does not take, e.g. "
                "int8 RELU6/HARD_SWISH/AVERAGE_POOL_2D, run as TFLite reference kernels and are much slower)",
                "op_efficiency": how + "; per op of a MAC class run by another kernel (BATCH_MATMUL: its int8 "
                "kernel is not XNNPACK's), the median share of peak left after the class's setup and per-output "
                "terms",
                "op_cycles_per_output": how + "; per output of such an op, when two terms (MACs, outputs) tell its "
                "cases clearly better than its efficiency alone (fit.own_per_output)",
                "tiles": how + "; the channel tile (nr, kr) that best explains odd channel counts",
                "cycles_per_input": how + "; per element of a GEMM's input operand (im2col matrix), fitted for the "
                "chosen tile (absent: 0)",
                "first_op_us": "micro-benchmark: intercept of chains of 1 and 9 small ops of the class minus the "
                "invoke overhead: paid once per inference (the largest of the model's classes)",
                "padded_outputs": "the per-element term of MAC classes counts outputs padded to the tile's nr (the "
                "kernels requantise and store whole register tiles)",
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
    """/proc/cpuinfo's `cpu MHz` (x86), else cpufreq's maximum (aarch64 has no MHz line), else 2000."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="utf-8") as fh:
            sys_mhz = float(fh.read().strip()) / 1000.0
    except (OSError, ValueError):
        sys_mhz = 0.0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("cpu MHz") and float(line.split(":")[1]) > 0:
                    return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return sys_mhz or 2000.0


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
