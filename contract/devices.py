"""Device profiles: the numbers the latency/RAM/flash estimator (`pruning.estimate`) works from.

Pure Python on purpose: the API process imports this module to serve `GET /v1/devices`, so it must
not pull in TensorFlow, Keras, NumPy-heavy code or LiteRT, even indirectly.

The data lives in `contract/profiles/`:

- `runtimes.json`: per-runtime tables shared by every device on that runtime: the efficiency of
  each op class (share of the core's peak MACs/cycle that the runtime's kernels reach) and the
  cycles spent per output element (requantisation, activation, store; or the whole cost for ops
  without multiply-accumulates). Each table says where it comes from.
- `devices.json`: one entry per device (clock, RAM, flash, bandwidth, overheads, ...), each number
  with its source in `sources`.
- `host.json`: the fallback host tables (another machine's calibration). The `host` profile uses the
  tables calibrated on this CPU when the cache has them (`contract.host_tables`), written by
  `python -m pruning.estimate calibrate-host` from single-op micro-benchmarks (never fitted to whole models).

- `products.json`: devices as users name them (`galaxy-watch5`, `pixel-8-mid`, `raspberry-pi-5`, ...),
  each `based_on` a core profile of devices.json, with its own cited clock, memory, threads, power, battery.

Naming: `<core>-<clock>mhz` runs on one thread; a `-2t` / `-4t` suffix is the same core with two /
four threads (LiteRT + XNNPACK only; TFLite Micro is single-threaded).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from contract import host_tables
from contract.errors import PruningError

KINDS = ("host", "mcu", "watch", "phone", "sbc")

# Op classes the estimator costs separately (see pruning/estimate/ for which TFLite ops fall in each).
MAC_CLASSES = ("conv", "conv1x1", "depthwise", "fully_connected")
OTHER_CLASSES = ("pool", "elementwise", "transcendental", "memory")
OP_CLASSES = MAC_CLASSES + OTHER_CLASSES

REQUIRED_SOURCES = (
    "clock_mhz",
    "ram_bytes",
    "flash_bytes",
    "runtime",
    "threads",
    "macs_per_cycle",
    "mem_bandwidth_gbps",
    "per_op_overhead_us",
    "runtime_ram_bytes",
    "sparse_speedup",
    "efficiency",
    "cycles_per_element",
    "runtime_flash_bytes",
    "error_band",
)


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    kind: str  # "host" | "mcu" | "watch" | "phone" | "sbc"
    core: str
    clock_mhz: float
    ram_bytes: int
    flash_bytes: int
    runtime: str  # e.g. "TFLite Micro + CMSIS-NN", "LiteRT + XNNPACK"
    threads: int
    macs_per_cycle: dict[str, float]  # peak by dtype: "int8", "float32", "float16"
    mem_bandwidth_gbps: float
    per_op_overhead_us: float
    runtime_ram_bytes: int  # runtime overhead added to peak activation memory
    sparse_speedup: bool  # True only where a sparse kernel path exists (XNNPACK sparse inference)
    sources: dict[str, str]  # field -> where the number comes from
    # Beyond the fields above (all have defaults so a profile can be built by hand):
    runtime_key: str = ""  # key into runtimes.json ("tflm-cmsis-nn", "xnnpack-arm", "xnnpack-x86")
    efficiency: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> dtype -> share of peak
    cycles_per_element: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> dtype -> cycles
    op_cycles_per_element: dict[str, dict[str, float]] = field(default_factory=dict)  # op name -> dtype -> cycles
    op_cycles_per_output: dict[str, dict[str, float]] = field(default_factory=dict)  # own kernels (host v4+)
    op_efficiency: dict[str, dict[str, float]] = field(default_factory=dict)  # op name -> dtype -> share of peak
    tiles: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # class -> dtype -> [nr, kr] channel tiles
    cycles_per_op: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> dtype -> fixed setup cycles
    parallel_efficiency: float = 0.0  # each extra thread adds this share of one thread's speed
    thread_overhead_us: float = 0.0  # per parallelised op, when threads > 1
    invoke_overhead_us: float = 0.0  # once per inference
    loop_fixed_us: float = 0.0  # once per WHILE loop (a recurrent layer), beyond its body's ops (host calibration)
    loop_iteration_us: float = 0.0  # per WHILE iteration: condition, loop state, the body's delegate invoke
    loop_var_us: float = 0.0  # per WHILE iteration and loop variable beyond two (host tables v7+)
    builtin_op_us: float = 0.0  # an op XNNPACK leaves to TFLite's own kernel, beyond its table time (host v7+)
    partition_us: float = 0.0  # each delegate partition beyond one (host tables v7+)
    runtime_flash_bytes: int = 0  # runtime code size added to the .tflite size
    error_band: tuple[float, float] = (0.5, 2.0)  # low/high multipliers from the measured calibration error
    arena_tool: bool = False  # measure the tensor arena with the tflite-micro interpreter
    cache_bandwidth_gbps: float = 0.0  # streams that stay in cache (the per-op memory floor); 0 = mem_bandwidth_gbps
    llc_bytes: int = 0  # weights + activations beyond this stream from DRAM every inference; 0 = not modelled
    # (bytes, GB/s) pairs, ascending: the rate a weight stream of that size is read at, cycled once per inference
    # (host calibration sweep of FULLY_CONNECTED ops); when given it replaces the llc_bytes DRAM spill term
    weight_stream: tuple[tuple[int, float], ...] = ()
    # dtype -> the same for weights read by GEMMs of several rows (a conv's output pixels; host tables v8+): chains
    # of 1x1 convolutions (v11: at 4x4 pixels, float32 and int8; v8-v10: 2x2, float32 only), whose weights leave
    # the caches slower than a one-row FULLY_CONNECTED's (a Xeon, v8's 4-row chains: 9.7 against 14.6 GB/s at 96
    # MiB); a dtype without a sweep reads float32's; empty = `weight_stream` for all weights
    weight_stream_rows: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    # (ops, us) pairs, ascending: what a graph of that many ops costs beyond `per_op_overhead_us` for each (host
    # tables v9: chains of 129 and 401 tiny ADDs against 33); empty = nothing beyond it
    graph_op_overhead: tuple[tuple[int, float], ...] = ()
    # dtype -> (rows, slowdown) pairs, ascending: a MAC of a GEMM of that many rows (a convolution's output pixels)
    # takes this many times its time at 256 rows, where the conv tables hold (host tables v10: single 1x1
    # convolutions at 2x2 .. 16x16 pixels); empty = every GEMM at the tables' rate
    gemm_rows: dict[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)
    first_op_us: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> dtype -> once per inference
    cycles_per_input: dict[str, dict[str, float]] = field(default_factory=dict)  # GEMM class -> dtype -> cycles
    padded_outputs: bool = False  # the per-element term of MAC classes counts tile-padded outputs (host tables v3+)
    notes: str = ""
    active_power_mw: float = 0.0  # while one thread runs an inference; 0 = no figure (no energy estimate)
    power_per_extra_thread_mw: float = 0.0  # added per extra busy core
    power_band: tuple[float, float] = (1.0, 1.0)  # uncertainty of the power figure, multiplied into the energy band
    battery_mah: float = 0.0  # 0 = no battery (per-mAh figures still given at battery_voltage_v)
    battery_voltage_v: float = 0.0
    based_on: str = ""  # products.json: the core profile whose tables this product uses
    tables_basis: str = ""  # host only: whose calibration the tables are, and whether they are this CPU's

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_band"] = list(self.error_band)
        out["power_band"] = list(self.power_band)
        return out


def _read(name: str) -> Any:
    return json.loads(resources.files("contract").joinpath("profiles", name).read_text(encoding="utf-8"))


def _rows_sweeps(raw: Any) -> dict[str, tuple[tuple[int, float], ...]]:
    """`weight_stream_rows` as tables v11 write it (dtype -> [[bytes, GB/s], ...]) or v8-v10 did (one float32 list)."""
    sweeps = raw if isinstance(raw, dict) else ({"float32": raw} if raw else {})
    return {str(d): tuple((int(b), float(r)) for b, r in pts) for d, pts in sweeps.items() if pts}


def _merge(base: dict[str, dict[str, float]], extra: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {k: dict(v) for k, v in base.items()}
    for cls, table in extra.items():
        out.setdefault(cls, {}).update(table)
    return out


def _scaled(
    table: dict[str, dict[str, float]], ref: dict[str, float], peak: dict[str, float]
) -> dict[str, dict[str, float]]:
    """Per-element cycles measured on a reference core, moved to a core with another SIMD peak.

    A runtime's `reference_macs_per_cycle` says at which peak MACs/cycle (per dtype) its
    per-element tables were obtained; elementwise/pool/copy loops are as wide as the MAC loops, so
    a core with twice the peak spends half the cycles per element."""
    if not ref:
        return table
    out: dict[str, dict[str, float]] = {}
    for cls, row in table.items():
        out[cls] = {}
        for dtype, cycles in row.items():
            key = "int8" if dtype in ("hybrid", "int16") else dtype
            r, p = ref.get(key), peak.get(key)
            out[cls][dtype] = round(cycles * r / p, 4) if r and p else cycles
    return out


def _build(name: str, raw: dict[str, Any], runtimes: dict[str, Any]) -> DeviceProfile:
    runtime = runtimes[raw["runtime_key"]]
    peak = {k: float(v) for k, v in raw["macs_per_cycle"].items()}
    ref = runtime.get("reference_macs_per_cycle", {})
    sources = dict(raw.get("sources", {}))
    sources.setdefault("efficiency", runtime["sources"]["efficiency"])
    sources.setdefault("cycles_per_element", runtime["sources"]["cycles_per_element"])
    for key in (
        "parallel_efficiency",
        "thread_overhead_us",
        "op_cycles_per_element",
        "op_efficiency",
        "tiles",
        "cycles_per_op",
        "runtime_flash_bytes",
    ):
        if key in runtime["sources"]:
            sources.setdefault(key, runtime["sources"][key])
    return DeviceProfile(
        name=name,
        kind=raw["kind"],
        core=raw["core"],
        clock_mhz=float(raw["clock_mhz"]),
        ram_bytes=int(raw["ram_bytes"]),
        flash_bytes=int(raw["flash_bytes"]),
        runtime=runtime["name"],
        threads=int(raw.get("threads", 1)),
        macs_per_cycle=peak,
        mem_bandwidth_gbps=float(raw["mem_bandwidth_gbps"]),
        per_op_overhead_us=float(raw["per_op_overhead_us"]),
        runtime_ram_bytes=int(raw["runtime_ram_bytes"]),
        sparse_speedup=bool(raw.get("sparse_speedup", runtime.get("sparse_speedup", False))),
        sources=sources,
        runtime_key=raw["runtime_key"],
        efficiency=_merge(runtime["efficiency"], raw.get("efficiency", {})),
        cycles_per_element=_merge(_scaled(runtime["cycles_per_element"], ref, peak), raw.get("cycles_per_element", {})),
        op_cycles_per_element=_merge(
            _scaled(runtime.get("op_cycles_per_element", {}), ref, peak), raw.get("op_cycles_per_element", {})
        ),
        op_efficiency=_merge(runtime.get("op_efficiency", {}), raw.get("op_efficiency", {})),
        op_cycles_per_output=_merge(runtime.get("op_cycles_per_output", {}), raw.get("op_cycles_per_output", {})),
        tiles=_merge(runtime.get("tiles", {}), raw.get("tiles", {})),  # type: ignore[arg-type]
        cycles_per_op=_merge(runtime.get("cycles_per_op", {}), raw.get("cycles_per_op", {})),
        parallel_efficiency=float(raw.get("parallel_efficiency", runtime.get("parallel_efficiency", 0.0))),
        thread_overhead_us=float(raw.get("thread_overhead_us", runtime.get("thread_overhead_us", 0.0))),
        invoke_overhead_us=float(raw.get("invoke_overhead_us", 0.0)),
        loop_fixed_us=float(raw.get("loop_fixed_us", 0.0)),
        loop_iteration_us=float(raw.get("loop_iteration_us", 0.0)),
        loop_var_us=float(raw.get("loop_var_us", 0.0)),
        builtin_op_us=float(raw.get("builtin_op_us", 0.0)),
        partition_us=float(raw.get("partition_us", 0.0)),
        runtime_flash_bytes=int(raw.get("runtime_flash_bytes", runtime.get("runtime_flash_bytes", 0))),
        error_band=(float(raw["error_band"][0]), float(raw["error_band"][1])),
        arena_tool=bool(runtime.get("arena_tool", False)),
        cache_bandwidth_gbps=float(raw.get("cache_bandwidth_gbps", 0.0)),
        llc_bytes=int(raw.get("llc_bytes", 0)),
        weight_stream=tuple((int(b), float(r)) for b, r in raw.get("weight_stream", [])),
        weight_stream_rows=_rows_sweeps(raw.get("weight_stream_rows", {})),
        graph_op_overhead=tuple((int(n), float(e)) for n, e in raw.get("graph_op_overhead", [])),
        gemm_rows={
            str(d): tuple(sorted((int(r), float(f)) for r, f in pts if int(r) > 0))
            for d, pts in raw.get("gemm_rows", {}).items()
        },  # fmt: skip
        first_op_us=_merge(runtime.get("first_op_us", {}), raw.get("first_op_us", {})),
        cycles_per_input=_merge(runtime.get("cycles_per_input", {}), raw.get("cycles_per_input", {})),
        padded_outputs=bool(runtime.get("padded_outputs", False)),
        notes=str(raw.get("notes", "")),
        active_power_mw=float(raw.get("active_power_mw", 0.0)),
        power_per_extra_thread_mw=float(raw.get("power_per_extra_thread_mw", 0.0)),
        power_band=(float(raw.get("power_band", [1, 1])[0]), float(raw.get("power_band", [1, 1])[1])),
        battery_mah=float(raw.get("battery_mah", 0.0)),
        battery_voltage_v=float(raw.get("battery_voltage_v", 0.0)),
        based_on=str(raw.get("based_on", "")),
        tables_basis=str(raw.get("tables_basis", "")),
    )


def _expand_threads(name: str, raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A device entry with `thread_variants: [2, 4]` also yields `<name>-2t`, `<name>-4t`."""
    out = {name: raw}
    for n in raw.get("thread_variants", []):
        variant = dict(raw, threads=n)
        variant.pop("thread_variants", None)
        variant["sources"] = dict(raw.get("sources", {}))
        variant["sources"]["threads"] = f"{n} threads: variant of {name} (same core, LiteRT num_threads={n})"
        if f"error_band_{n}t" in raw:
            variant["error_band"] = raw[f"error_band_{n}t"]
            variant["sources"]["error_band"] = raw["sources"].get(f"error_band_{n}t", raw["sources"]["error_band"])
        out[f"{name}-{n}t"] = variant
    return out


_BASE_ONLY = ("thread_variants", "notes")


def _product(name: str, raw: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """A product (products.json) on its core profile: the base's tables and figures, overridden by the product's
    own cited ones; overheads the product does not give scale with the clock."""
    out = {k: v for k, v in base.items() if k not in _BASE_ONLY and not k.startswith("error_band_")}
    out.update({k: v for k, v in raw.items() if k != "sources"})
    sources = dict(base.get("sources", {}))
    sources.update(raw.get("sources", {}))
    ratio = float(base["clock_mhz"]) / float(out["clock_mhz"])
    for key in ("per_op_overhead_us", "invoke_overhead_us"):
        if key not in raw and key in base:
            out[key] = round(float(base[key]) * ratio, 4)
            sources[key] = f"{base['sources'].get(key, key)}; scaled from {raw['based_on']} by clock ({ratio:.3f}x)"
    sources.setdefault("based_on", f"{name}: tables of {raw['based_on']} (contract/profiles/devices.json)")
    for n in raw.get("thread_variants", []):
        out[f"error_band_{n}t"] = raw.get(f"error_band_{n}t", raw.get("error_band", base["error_band"]))
    out["sources"] = sources
    return out


@lru_cache(maxsize=1)
def _load() -> dict[str, DeviceProfile]:
    runtimes = _read("runtimes.json")["runtimes"]
    entries: dict[str, dict[str, Any]] = {}
    host, origin, same = host_tables.load()
    entries["host"] = dict(host["profile"], tables_basis=host_tables.basis_note(host, origin, same))
    cores = _read("devices.json")["devices"]
    for name, raw in cores.items():
        entries.update(_expand_threads(name, raw))
    for name, raw in _read("products.json")["devices"].items():
        entries.update(_expand_threads(name, _product(name, raw, cores[raw["based_on"]])))
    runtimes = dict(runtimes)
    runtimes["xnnpack-x86"] = host["runtime"]
    return {name: _build(name, raw, runtimes) for name, raw in entries.items()}


def load_profiles() -> dict[str, DeviceProfile]:
    """Every device profile by name (`host` first)."""
    return dict(_load())


def get_profile(name: str) -> DeviceProfile:
    profiles = _load()
    if name not in profiles:
        known = ", ".join(sorted(profiles))
        raise PruningError("unknown_device", f"unknown device {name!r}; known devices: {known}")
    return profiles[name]


def device_names() -> list[str]:
    return list(_load())


def clear_cache() -> None:
    """Forget the loaded profiles (after `calibrate-host` rewrites host.json)."""
    _load.cache_clear()
