"""The public estimate: latency band, RAM, flash and fit of a `.tflite` file on device profiles, with
the reasons (`basis`); the per-op breakdown; XNNPACK's sparse path; and the cache of parsed models."""

from __future__ import annotations

from typing import Any

from contract.devices import MAC_CLASSES, DeviceProfile, get_profile, load_profiles
from pruning.estimate.costs import OpCost, analyse, first_op_us, op_time_us
from pruning.estimate.delegation import extra_partitions, taken_flags
from pruning.estimate.graph import VIEWS, Graph, parse
from pruning.estimate.memory import cold_weights_us, ram_estimate

_CACHE: dict[str, tuple[Graph, list[OpCost]]] = {}
# Ops whose cost really is a copy or a reduction over their data (the `memory` class by design); any other op
# landing in `memory` has no cost model of its own and is flagged in `basis` as a fallback.
MEMORY_OPS = {
    "CONCATENATION", "PAD", "PADV2", "MIRROR_PAD", "QUANTIZE", "DEQUANTIZE", "SOFTMAX", "MEAN", "SUM", "REDUCE_MAX",
    "REDUCE_MIN", "REDUCE_PROD", "L2_NORMALIZATION", "TRANSPOSE", "SLICE", "SPLIT", "SPLIT_V", "UNPACK", "TILE",
    "GATHER", "GATHER_ND", "BROADCAST_TO", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "DENSIFY", "ARG_MAX", "ARG_MIN", "FILL", "ZEROS_LIKE",
    "ONES_LIKE", "REVERSE_V2", "WHILE",
}  # fmt: skip
CACHE_SIZE = 4


def parsed(tflite: bytes) -> tuple[Graph, list[OpCost]]:
    """`parse` + `analyse`, remembered for the last few models (one model is estimated on many devices)."""
    import hashlib

    key = hashlib.sha1(tflite).hexdigest()
    if key not in _CACHE:
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        graph = parse(tflite)
        _CACHE[key] = (graph, analyse(graph))
    return _CACHE[key]


def sparse_path(graph: Graph, costs: list[OpCost]) -> tuple[bool, str]:
    """Whether XNNPACK's sparse inference path applies (its README's rules, see the package docstring)."""
    names = [op.name for op in graph.ops]
    if "DENSIFY" not in names:
        return False, "weights are stored dense (no DENSIFY ops), so XNNPACK's sparse path does not apply"
    mac_ops = [c for c in costs if c.cls in MAC_CLASSES]
    if not mac_ops or mac_ops[0].dtype != "float32":
        return False, "XNNPACK's sparse path is float-only"
    first = graph.ops[mac_ops[0].index]
    f = graph.tensors[first.inputs[1]]
    if not (first.name == "CONV_2D" and f.shape[1:3] == (3, 3) and f.shape[-1] == 3):
        return False, "XNNPACK's sparse path needs the model to start with a 3x3 conv on 3 channels"
    if "MEAN" not in names:
        return False, "XNNPACK's sparse path needs the sparse subgraph to end in MEAN"
    pw = [c for c in costs if c.cls == "conv1x1"]
    total = sum(c.weight_elements for c in pw)
    zeros = sum(c.weight_elements * c.zero_fraction for c in pw)
    if not total or zeros / total < 2 / 3:
        return False, "XNNPACK's sparse path needs >= 2/3 zeros in the 1x1 convolutions"
    return True, f"XNNPACK sparse path: 1x1 convs {zeros / total:.0%} zeros"


# ---------------------------------------------------------------------------------------------
# Public API


def _model_dtype(costs: list[OpCost]) -> str:
    macs: dict[str, int] = {}
    for c in costs:
        if c.cls in MAC_CLASSES:
            macs[c.dtype] = macs.get(c.dtype, 0) + c.macs
    return max(macs, key=lambda k: macs[k]) if macs else "float32"


def breakdown(tflite: bytes, profile: DeviceProfile) -> list[dict[str, Any]]:
    """Per-op estimate (for debugging and the docs): op, class, dtype, MACs, microseconds."""
    graph, costs = parsed(tflite)
    applies, _ = sparse_path(graph, costs)
    factor = _sparse_factor(costs) if applies and profile.sparse_speedup else 1.0
    return [c.to_dict() | {"cls": c.cls, "us": round(op_time_us(c, profile, factor), 3)} for c in costs]


def _sparse_factor(costs: list[OpCost]) -> float:
    pw = [c for c in costs if c.cls == "conv1x1"]
    total = sum(c.weight_elements for c in pw)
    density = 1 - (sum(c.weight_elements * c.zero_fraction for c in pw) / total if total else 0.0)
    return min(1.0, 2.0 * density)


def estimate(tflite: bytes, profile: DeviceProfile) -> dict[str, Any]:
    """Latency band, RAM, flash and whether the model fits `profile`; `basis` says what it rests on."""
    graph, costs = parsed(tflite)
    dtype = _model_dtype(costs)
    basis: list[str] = []
    is_tflm = profile.runtime_key.startswith("tflm")
    applies, why = sparse_path(graph, costs)
    zero = _weight_zero_fraction(costs)
    factor = 1.0
    if applies and profile.sparse_speedup:
        factor = _sparse_factor(costs)
        basis.append(why + f"; 1x1 convs costed at {factor:.2f}x their dense time")
    elif zero >= 0.05:
        if is_tflm:
            basis.append(f"{zero:.0%} of weights are zero, but TFLite Micro has no sparse kernels: no speed-up")
        elif not profile.sparse_speedup:
            basis.append(f"{zero:.0%} of weights are zero; this runtime has no sparse kernels: no speed-up")
        else:
            basis.append(f"{zero:.0%} of weights are zero; no speed-up: {why}")
    cold_us, cold_note = cold_weights_us(graph, costs, profile)
    if cold_note:
        basis.append(cold_note)
    total_us = profile.invoke_overhead_us + first_op_us(costs, profile) + cold_us + _loops_us(graph, profile)
    size_us, size_note = _graph_size_us(graph, profile)
    total_us += size_us
    if size_note:
        basis.append(size_note)
    split, left_to_tflite = extra_partitions(graph) if profile.runtime_key.startswith("xnnpack") else (0, [])
    total_us += split * profile.partition_us + _builtin_us(graph, costs, profile)
    total_us += sum(op_time_us(c, profile, factor) for c in costs)
    ms = total_us / 1000.0
    lo, hi = profile.error_band
    macs = sum(c.macs for c in costs)
    by_class: dict[str, float] = {}
    for c in costs:
        by_class[c.cls] = by_class.get(c.cls, 0.0) + op_time_us(c, profile, factor)
    top = sorted(by_class.items(), key=lambda kv: -kv[1])[:3]
    share = ", ".join(f"{k} {v / max(total_us, 1e-9):.0%}" for k, v in top)
    basis.insert(
        0,
        f"per-op model ({len(costs)} ops, {macs / 1e6:.2f} M MACs, {dtype}) on {profile.core} "
        f"@ {profile.clock_mhz:g} MHz, {profile.runtime}, {profile.threads} thread(s); time by class: {share}; "
        f"band x{lo:g}..x{hi:g} from the measured calibration error",
    )
    if profile.tables_basis:
        basis.append(profile.tables_basis)
    if split:
        basis.append(
            f"XNNPACK leaves {', '.join(left_to_tflite)} to TFLite's own kernels: the graph runs as {split} more "
            f"delegate partition(s) ({profile.partition_us:.2f} us each), an op on TFLite's kernel "
            f"{profile.builtin_op_us:.2f} us more than in XNNPACK"
        )
    if is_tflm and dtype == "float32":
        basis.append("float model on a microcontroller: costed with float32 reference kernels (no CMSIS-NN), slow")
    if is_tflm and dtype == "hybrid":
        basis.append("dynamic-range (hybrid) ops are not supported by TFLite Micro; costed as float32")
    if any(c.note.startswith("float16 weights") for c in costs) and not is_tflm:
        basis.append("float16 weights are unpacked to float32 by XNNPACK at load time: float32 speed")
    unknown = sorted({c.op for c in costs if c.cls == "memory" and c.op not in MEMORY_OPS and c.op not in VIEWS})
    if unknown:
        basis.append(
            f"FALLBACK: ops without a cost model ({', '.join(unknown)}) estimated as memory copies of their "
            "output, a lower bound: the real time may be higher"
        )
    basis += _loop_notes(graph)
    ram, ram_note = ram_estimate(tflite, graph, costs, profile)
    basis.append(ram_note)
    flash = graph.size + profile.runtime_flash_bytes
    basis.append(f"flash = .tflite {graph.size} B + runtime code {profile.runtime_flash_bytes} B ({profile.runtime})")
    fits = ram <= profile.ram_bytes and flash <= profile.flash_bytes
    if not fits:
        need = []
        if ram > profile.ram_bytes:
            need.append(f"RAM {ram} B > {profile.ram_bytes} B")
        if flash > profile.flash_bytes:
            need.append(f"flash {flash} B > {profile.flash_bytes} B")
        basis.append("does not fit: " + "; ".join(need))
    energy = energy_figures(ms, profile)
    basis.append(energy.pop("energy_basis"))
    return {
        "device": profile.name,
        "estimate_ms": round(ms, 4),
        "low_ms": round(ms * lo, 4),
        "high_ms": round(ms * hi, 4),
        "ram_bytes": int(ram),
        "flash_bytes": int(flash),
        "fits": bool(fits),
        **energy,
        "basis": "; ".join(basis),
    }


def energy_figures(ms: float, profile: DeviceProfile) -> dict[str, Any]:
    """Energy per inference (mJ) with the latency band times the power figure's band, and inferences per mAh
    at the battery voltage; None where the profile has no power figure (`energy_basis` says why)."""
    power = profile.active_power_mw + profile.power_per_extra_thread_mw * max(profile.threads - 1, 0)
    if power <= 0:
        none = {"energy_mj": None, "energy_low_mj": None, "energy_high_mj": None, "inferences_per_mah": None}
        return none | {"energy_basis": "energy: no active-power figure for this profile"}
    lo, hi = profile.error_band
    plo, phi = profile.power_band
    mj = ms * power / 1000.0  # ms x mW = uJ
    per_mah = 3600.0 * profile.battery_voltage_v / mj if mj > 0 and profile.battery_voltage_v else None
    battery = f", {profile.battery_mah:g} mAh battery" if profile.battery_mah else ""
    note = (
        f"energy = estimate x {power:g} mW active power ({profile.threads} thread(s); source in the profile's "
        f"sources.active_power_mw), band = latency band x power band x{plo:g}..x{phi:g}; inferences per mAh at "
        f"{profile.battery_voltage_v:g} V{battery}, compute only (sensors, radio, display and idle not counted)"
    )
    return {
        "energy_mj": round(mj, 6),
        "energy_low_mj": round(mj * lo * plo, 6),
        "energy_high_mj": round(mj * hi * phi, 6),
        "inferences_per_mah": None if per_mah is None else round(per_mah, 1),
        "energy_basis": note,
    }


def _graph_size_us(graph: Graph, profile: DeviceProfile) -> tuple[float, str]:
    """What the ops of a graph of hundreds cost beyond the per-op overhead (host tables v9, `graph_op_overhead`),
    interpolated at the ops the file holds (a WHILE body counts once: its few ops stay in cache however many
    iterations run), for every op executed."""
    points = [(33, 0.0), *profile.graph_op_overhead] if profile.graph_op_overhead else []
    executed = len(graph.ops)
    held = executed - sum(loop.body_ops * max(loop.inlined - 1, 0) for loop in graph.loops)
    if len(points) < 2 or held <= points[0][0]:
        return 0.0, ""
    (n0, e0), (n1, e1) = next(((a, b) for a, b in zip(points, points[1:], strict=False) if held <= b[0]), points[-2:])
    extra = (e0 + (e1 - e0) * (held - n0) / (n1 - n0)) * executed / held
    return extra, f"a graph of {held} ops: {extra:.2f} us beyond the per-op overhead (host calibration's chains of ops)"


def _loops_us(graph: Graph, profile: DeviceProfile) -> float:
    """The WHILE loops' own cost beyond their bodies' ops (host calibration: condition, loop state and the body's
    delegate invoke per iteration, and once per loop)."""
    return sum(
        profile.loop_fixed_us
        + loop.inlined * (profile.loop_iteration_us + max(loop.state_vars - 2, 0) * profile.loop_var_us)
        for loop in graph.loops
    )


def _builtin_us(graph: Graph, costs: list[OpCost], profile: DeviceProfile) -> float:
    """What TFLite's own kernel adds for each op XNNPACK leaves to it whose time comes from the memory class's
    tables (shape arithmetic, GATHER, a RESHAPE with a computed shape: micro-benchmarked inside XNNPACK, if at
    all); ops with micro-benchmarks of their own (int8 SOFTMAX, HARD_SWISH ...) were timed on that kernel."""
    if not profile.builtin_op_us or not profile.runtime_key.startswith("xnnpack"):
        return 0.0
    flags = taken_flags(graph)
    own = profile.op_cycles_per_element  # ops timed by micro-benchmarks of their own, on the kernel that runs them
    left = sum(
        1
        for c, f in zip(costs, flags, strict=True)
        if not f and c.cls == "memory" and c.op != "WHILE" and c.dtype not in own.get(c.op, {})
    )
    return left * profile.builtin_op_us


def _loop_notes(graph: Graph) -> list[str]:
    notes = []
    for loop in graph.loops:
        if loop.trips is None:
            notes.append(
                f"FALLBACK: a WHILE loop without a constant trip count: its body ({loop.body_ops} ops) costed once, "
                "a lower bound"
            )
        elif loop.inlined < loop.trips:
            notes.append(f"a WHILE loop of {loop.trips} steps: its body costed {loop.inlined} times, a lower bound")
        else:
            notes.append(f"a WHILE loop (a recurrent layer): its body of {loop.body_ops} ops costed {loop.trips} times")
    return notes


def _weight_zero_fraction(costs: list[OpCost]) -> float:
    total = sum(c.weight_elements for c in costs if c.cls in MAC_CLASSES)
    zeros = sum(c.weight_elements * c.zero_fraction for c in costs if c.cls in MAC_CLASSES)
    return zeros / total if total else 0.0


APPLICATION_KINDS = ("watch", "phone", "sbc")
LEGACY_RUNTIMES = ("tflm-cmsis-nn",)  # the 2020 TFLite Micro tables (`*-tflm2020`): on request, not by default


def default_devices(tflite: bytes, also: tuple[str, ...] | list[str] = ()) -> tuple[list[str], str]:
    """A job's devices when it names none, and a sentence saying why: `host`, then every single-thread profile
    of the model's class that it fits. The class is the microcontrollers when the model fits at least one MCU
    profile, else the application processors (watches, phones, single-board computers). Thread variants
    (`-2t`, `-4t`) and the 2020 TFLite Micro profiles (`-tflm2020`) are left out so the report stays one screen;
    name them to get them. `also` (e.g. a latency target's device) is appended when missing."""
    profiles = load_profiles()
    single = [
        p for p in profiles.values() if p.threads == 1 and p.kind != "host" and p.runtime_key not in LEGACY_RUNTIMES
    ]
    mcu = [p.name for p in single if p.kind == "mcu" and estimate(tflite, p)["fits"]]
    if mcu:
        chosen, why = mcu, "a microcontroller-class model: every MCU profile it fits"
    else:
        chosen = [p.name for p in single if p.kind in APPLICATION_KINDS and estimate(tflite, p)["fits"]]
        why = "fits no microcontroller profile: every watch, phone and board profile it fits"
    names = list(dict.fromkeys(["host", *chosen, *also]))
    return names, f"devices not given; default for {why} (1 thread; {len(names)} profiles)"


def job_devices(
    given: tuple[str, ...] | list[str], tflite: bytes, also: tuple[str, ...] = (), say: Any = None
) -> list[str]:
    """A job's devices: `given`, or when it names none the default of the model's class (`default_devices`,
    plus `also`), said through `say`."""
    if given:
        return list(given)
    names, why = default_devices(tflite, also)
    if say is not None:
        say(f"{why}: {', '.join(names)}")
    return names


def profile_tflite(tflite: bytes, devices: list[str], measure_host: bool = True) -> list[dict[str, Any]]:
    """One entry per device: the estimate, and for `host` also `measured_ms` (LiteRT on this machine)."""
    out = []
    for name in devices:
        profile = get_profile(name)
        entry = estimate(tflite, profile)
        entry["measured_ms"] = None
        if name == "host" and measure_host:
            from pruning.host import clock_phrase, measure_latency

            measured = measure_latency(tflite, threads=profile.threads)
            entry["measured_ms"] = round(measured["measured_ms"], 4)
            entry["p10_ms"] = round(measured["p10_ms"], 4)
            entry["p90_ms"] = round(measured["p90_ms"], 4)
            entry["basis"] += f"; measured_ms: {clock_phrase(measured)}"
        out.append(entry)
    return out
