"""Published device figures (bench/device_zoo.py part 2, and `--calibrate`): the rows of
../shared/reference/published-latency.csv (MLPerf Tiny on the Cortex-M4F, EfficientNet-Lite and MobileNet on
the Cortex-A76/A75) against the estimate, and the fit of the TFLite Micro and XNNPACK-Arm tables to them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import csv  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402

from bench.device_harness import tflite_for  # noqa: E402
from bench.device_models import LITE, _apps, ad_autoencoder, efficientnet_lite, kws_dscnn, resnet8, vww_mobilenet  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402

_REF = Path("shared") / "reference" / "published-latency.csv"  # beside the checkout (or a worktree's checkout)
PUBLISHED = next((p / _REF for p in ROOT.parents if (p / _REF).exists()), ROOT.parent / _REF)


PUBLISHED_MODELS: dict[str, tuple[Any, str]] = {
    "mlperf-tiny-kws-dscnn": (kws_dscnn, "mlperf_kws_dscnn"),
    "mlperf-tiny-vww-mobilenetv1-0.25": (vww_mobilenet, "mlperf_vww_mobilenet_0.25"),
    "mlperf-tiny-ic-resnet8": (resnet8, "mlperf_ic_resnet8"),
    "mlperf-tiny-ad-fc-autoencoder": (ad_autoencoder, "mlperf_ad_autoencoder"),
    **{
        f"efficientnet-lite{i}": ((lambda i=i: efficientnet_lite(i)), f"efficientnet_lite{i}_{LITE[i][2]}")
        for i in range(5)
    },
    "mobilenet-v1-1.0-224": (_apps("MobileNet", alpha=1.0, input_shape=(224, 224, 3)), "mobilenet_v1_1.0_224"),
    "mobilenet-v2-1.0-224": (_apps("MobileNetV2", alpha=1.0, input_shape=(224, 224, 3)), "mobilenet_v2_1.0_224"),
}


A75_PER_CLOCK = 1.26


def published_profile(row: dict[str, str]) -> tuple[Any, str]:
    """The profile a published row is compared with, and how it was adapted to the row's device."""
    threads = int(row["threads"])
    core, clock = row["core"], float(row["clock_mhz"])
    if core.startswith("cortex-m4f"):
        return get_profile("cortex-m4f-120mhz-tflm2020"), "cortex-m4f-120mhz-tflm2020"  # the v0.5 rows' runtime
    name = "cortex-a76-2400mhz" + ("" if threads == 1 else f"-{threads}t")
    profile = get_profile(name)
    note = name
    if abs(profile.clock_mhz - clock) > 1:
        profile = dataclasses.replace(profile, clock_mhz=clock)
        note += f" at {clock:g} MHz"
    if "big core" in core and "a76" not in core:
        # Pixel 3a: Kryo 360 Gold = Cortex-A75. Same 2x128-bit NEON as the A76 but lower IPC: Arm's A76
        # launch figure is +35% performance at 3.0 GHz vs the A75 at 2.8 GHz, i.e. ~1.26x per clock.
        profile = dataclasses.replace(profile, clock_mhz=clock / A75_PER_CLOCK)
        note += f", A75 = A76 / {A75_PER_CLOCK:g} per clock"
    return profile, note


def run_published(cache: Path) -> list[dict[str, Any]]:
    rows = []
    with PUBLISHED.open() as fh:
        for row in csv.DictReader(fh):
            builder, key = PUBLISHED_MODELS[row["model"]]
            quant = "int8" if row["precision"] == "int8" else "none"
            data = tflite_for(key, builder, quant, cache)
            profile, note = published_profile(row)
            e = est.estimate(data, profile)
            published = float(row["latency_ms"])
            out = {
                "model": row["model"],
                "precision": row["precision"],
                "device": f"{row['device']} ({row['core']}, {row['clock_mhz']} MHz, {row['threads']}t)",
                "profile": note,
                "estimate_ms": e["estimate_ms"],
                "published_ms": published,
                "ratio": round(e["estimate_ms"] / published, 3),
                "macs_m": round(sum(c.macs for c in est.analyse(est.parse(data))) / 1e6, 2),
            }
            rows.append(out)
            print(
                f"{row['model']:34s} {row['precision']:5s} est {out['estimate_ms']:9.2f} ms  "
                f"published {published:8.2f} ms  ratio {out['ratio']:5.2f}  [{note}]",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------------------------------------
# Calibration of the non-host runtimes against the published rows (`--calibrate`)

PROFILES = ROOT / "contract" / "profiles"


def _published_rows() -> list[dict[str, str]]:
    with PUBLISHED.open() as fh:
        return list(csv.DictReader(fh))


def _loglsq(ratios: list[float]) -> float:
    return float(sum(math.log(r) ** 2 for r in ratios))


def _golden(f: Any, lo: float, hi: float, iters: int = 40) -> float:
    """Minimise a unimodal f on [lo, hi] (log-spaced golden section)."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(iters):
        if f(math.exp(c)) < f(math.exp(d)):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return math.exp((a + b) / 2)


def calibrate(cache: Path) -> dict[str, Any]:
    """Fit TFLite Micro int8 efficiencies (MLPerf Tiny on the M4F) and the XNNPACK-Arm level per dtype and
    parallel efficiency (A76/A75 rows); write them into contract/profiles/runtimes.json."""
    from contract import devices

    est.estimator.CACHE_SIZE = 64  # the parse cache lives in pruning/estimate/estimator.py
    runtimes = json.loads((PROFILES / "runtimes.json").read_text())
    host = json.loads((PROFILES / "host.json").read_text())
    rows = _published_rows()
    models = {}
    for row in rows:
        builder, key = PUBLISHED_MODELS[row["model"]]
        quant = "int8" if row["precision"] == "int8" else "none"
        models[(row["model"], row["precision"])] = tflite_for(key, builder, quant, cache)

    def ratios(filter_fn: Any) -> list[tuple[dict[str, str], float]]:
        devices.clear_cache()
        out = []
        for row in rows:
            if filter_fn(row):
                profile, _ = published_profile(row)
                e = est.estimate(models[(row["model"], row["precision"])], profile)
                out.append((row, e["estimate_ms"] / float(row["latency_ms"])))
        return out

    def write() -> None:
        (PROFILES / "runtimes.json").write_text(json.dumps(runtimes, indent=1) + "\n")

    # 1. TFLite Micro + CMSIS-NN, int8: conv (= conv1x1: the same im2col/mat-mult core), depthwise and
    #    fully-connected efficiencies; the per-element and overhead constants stay as documented.
    tflm = runtimes["runtimes"]["tflm-cmsis-nn"]

    def is_m4(r: dict[str, str]) -> bool:
        return r["core"].startswith("cortex-m4f")

    def m4_models(*names: str) -> Any:
        return lambda r: is_m4(r) and r["model"] in names

    def set_tflm(v: dict[str, float]) -> None:
        eff = tflm["efficiency"]
        eff["conv"]["int8"] = eff["conv1x1"]["int8"] = round(v["conv"], 5)
        eff["depthwise"]["int8"] = round(v["depthwise"], 5)
        eff["fully_connected"]["int8"] = round(v["fully_connected"], 5)
        write()

    def fit(values: dict[str, float], key: str, setter: Any, rows_of: Any, lo: float, hi: float) -> None:
        def loss(x: float) -> float:
            setter(values | {key: x})
            return _loglsq([r for _, r in ratios(rows_of)])

        values[key] = _golden(loss, lo, hi)
        setter(values)

    v = {"conv": 0.1, "depthwise": 0.05, "fully_connected": 0.1}
    for _ in range(3):  # coordinate descent: each class has the model(s) it dominates
        fit(v, "fully_connected", set_tflm, m4_models("mlperf-tiny-ad-fc-autoencoder"), 0.005, 1.0)
        fit(v, "conv", set_tflm, m4_models("mlperf-tiny-ic-resnet8"), 0.005, 1.0)
        fit(
            v, "depthwise", set_tflm, m4_models("mlperf-tiny-kws-dscnn", "mlperf-tiny-vww-mobilenetv1-0.25"), 0.002, 1.0
        )
    m4 = ratios(is_m4)
    conv, dw, fc = v["conv"], v["depthwise"], v["fully_connected"]
    print("TFLM int8 efficiencies:", v)
    for row, r in m4:
        print(f"  {row['model']:34s} ratio {r:.3f}")

    # 2. XNNPACK on Arm: per-class shape from the host micro-benchmarks, level per dtype; int8 depthwise
    #    runs 16-bit MACs (twice the float32 lanes) rather than SDOT.
    arm = runtimes["runtimes"]["xnnpack-arm"]
    host_eff = host["runtime"]["efficiency"]
    arm["cycles_per_element"] = host["runtime"]["cycles_per_element"]
    arm["op_cycles_per_element"] = host["runtime"]["op_cycles_per_element"]
    arm["reference_macs_per_cycle"] = {k: host["profile"]["macs_per_cycle"][k] for k in ("float32", "int8")}

    def set_arm(a: dict[str, float]) -> None:
        eff: dict[str, dict[str, float]] = {}
        for cls, row in host_eff.items():
            eff[cls] = {"float32": round(min(1.0, a["k32"] * row["float32"]), 4)}
            eff[cls]["int8"] = round(min(1.0, a["k8"] * row["int8"]), 4)
        # 8 int16 lanes per 128-bit MAC vs 32 int8 MACs/cycle with SDOT, 8 float32: 2x the float32 rate
        eff["depthwise"]["int8"] = round(min(1.0, eff["depthwise"]["float32"] * 2 * 8 / 32), 4)
        for cls in eff:
            eff[cls]["hybrid"] = eff[cls]["int8"]
        arm["efficiency"] = eff
        arm["parallel_efficiency"] = round(a["par"], 4)
        write()

    def one_thread(r: dict[str, str]) -> bool:
        return not is_m4(r) and int(r["threads"]) == 1

    def lite(precision: str) -> Any:
        return lambda r: r["model"].startswith("efficientnet-lite") and r["precision"] == precision

    a = {"k32": 0.5, "k8": 0.5, "par": 0.8}
    for _ in range(3):
        fit(a, "k32", set_arm, one_thread, 0.05, 2.0)
        fit(a, "par", set_arm, lite("fp32"), 0.05, 1.0)
        fit(a, "k8", set_arm, lite("int8"), 0.02, 2.0)
    k32, k8, par = a["k32"], a["k8"], a["par"]
    a76 = ratios(lambda r: not is_m4(r))
    print(f"XNNPACK-Arm: float32 level {k32:.3f}, int8 level {k8:.3f}, parallel efficiency {par:.3f}")
    for row, r in a76:
        print(f"  {row['model']:34s} {row['precision']:5s} {row['threads']}t ratio {r:.3f}")
    record = {
        "tflm-cmsis-nn": {"efficiency_int8": {"conv": conv, "depthwise": dw, "fully_connected": fc},
                          "rows": {row["model"]: round(r, 3) for row, r in m4}},
        "xnnpack-arm": {"float32_level": k32, "int8_level": k8, "parallel_efficiency": par,
                        "rows": {f"{r['model']} {r['precision']} {r['threads']}t": round(x, 3) for r, x in a76}},
        "command": ".venv/bin/python bench/device_zoo.py --calibrate",
    }  # fmt: skip
    runtimes["calibration"] = record
    write()
    devices.clear_cache()
    return record
