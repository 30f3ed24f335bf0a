"""Leave-one-family-out validation of the host estimator (issue 14 item 2).

    .venv/bin/python bench/device_families.py           # all families, writes docs/benchmarks.md's section
    .venv/bin/python bench/device_families.py --quick   # one model per family, no docs

The zoo (bench/device_family_models.py) is split into eleven architecture families, each exported float32 and
int8. Every export is measured on this machine (pruning.host.measure_latency, LiteRT + XNNPACK, 1 thread;
lowest median of passes repeated until stable, bench/device_harness.py) and estimated with the host tables.

Held out, named before anything was tuned: every family's rows are estimated only with
1. the host tables of this CPU, which come from single-op micro-benchmarks (`python -m pruning.estimate
   calibrate-host`: generic per-op shapes, no zoo model was ever timed to make them), and
2. (second table) a per-(cost class, dtype) correction of the op times fitted on the OTHER ten families' rows
   (log least squares, ridge towards 1), never on the family itself: leave-one-family-out.
Estimator changes made while this bench was written were decided from the micro-benchmarks alone.

Exports are cached in bench/out/device_families/. Results: bench/out/device_families.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import write_section  # noqa: E402
from bench.device_family_models import FAMILIES, QUICK_FAMILIES  # noqa: E402
from bench.device_harness import load_average, measure_exports, table, tflite_for  # noqa: E402
from contract import host_tables  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402

CACHE = ROOT / "bench" / "out" / "device_families"
OUT = ROOT / "bench" / "out" / "device_families.json"
SECTION = "## Host estimator, leave-one-family-out (issue 14)"
CLASSES = ["conv", "conv1x1", "depthwise", "fully_connected", "pool", "elementwise", "transcendental", "memory"]
RIDGE = 0.3  # pull of each log-correction towards 0 (factor 1): a class seen in few rows barely moves


def _key(cls: str, dtype: str) -> str:
    return f"{cls}/{'int8' if dtype in ('int8', 'int16', 'uint8') else 'float32'}"


KEYS = [_key(c, d) for c in CLASSES for d in ("float32", "int8")]


def class_times(data: bytes) -> dict[str, float]:
    """Microseconds of the host estimate per (class, dtype) key, plus the rest (invoke, DRAM) under `fixed`."""
    host = get_profile("host")
    total = est.estimate(data, host)["estimate_ms"] * 1000.0
    out: dict[str, float] = {}
    for op in est.breakdown(data, host):
        k = _key(op["cls"], op.get("dtype", "float32"))
        out[k] = out.get(k, 0.0) + op["us"]
    out["fixed"] = max(total - sum(out.values()), 0.0)
    return out


def _predict(theta: np.ndarray, parts: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    return fixed + parts @ np.exp(theta)


def fit_correction(rows: list[dict[str, Any]]) -> np.ndarray:
    """Log-corrections per key minimising sum(log(pred / measured)^2) + RIDGE * |theta|^2 (Gauss-Newton)."""
    parts = np.array([[r["parts"].get(k, 0.0) for k in KEYS] for r in rows])
    fixed = np.array([r["parts"]["fixed"] for r in rows])
    meas = np.array([r["measured_ms"] * 1000.0 for r in rows])
    theta = np.zeros(len(KEYS))
    for _ in range(50):
        pred = _predict(theta, parts, fixed)
        resid = np.log(pred / meas)
        jac = parts * np.exp(theta)[None, :] / pred[:, None]
        a = jac.T @ jac + RIDGE * np.eye(len(KEYS))
        g = jac.T @ resid + RIDGE * theta
        step = np.linalg.solve(a, g)
        theta = np.clip(theta - step, -2.0, 2.0)
        if np.max(np.abs(step)) < 1e-6:
            break
    return theta


def summary(ratios: list[float]) -> dict[str, Any]:
    errs = np.abs(np.array(ratios) - 1.0)
    if not len(errs):
        return {"n": 0}
    out = {f"within_{p}": float(np.mean(errs <= p / 100)) for p in (10, 15, 30)}
    return out | {"n": int(len(errs)), "median": float(np.median(errs)), "max": float(np.max(errs))}


def run(families: dict[str, dict[str, Any]], passes: int, reuse: dict[str, Any] | None = None) -> dict[str, Any]:
    """Export, measure (or take the measurements of `reuse`, a saved run), estimate, leave-one-family-out."""
    t0 = time.perf_counter()
    exports, meta, failed = [], {}, []
    for family, models in families.items():
        for name, build in models.items():
            for quant, label in (("none", "float32"), ("int8", "int8")):
                try:
                    if family == "recurrent" and quant == "int8":
                        _export_in_child(family, name, quant)  # the converter segfaults on some int8 RNNs
                    data = tflite_for(name, build, quant, CACHE)
                except Exception as exc:  # noqa: BLE001 - reported, not hidden
                    print(f"export failed {name} {label}: {str(exc)[:200]}", flush=True)
                    failed.append(f"{name} {label}: {str(exc)[:120]}")
                    continue
                exports.append((name, label, data))
                meta[(name, label)] = family
    built_s = time.perf_counter() - t0
    if reuse is None:
        measured = measure_exports(exports, passes)
    else:  # the estimator changed, the machine did not: re-estimate against the saved measurements
        saved = {(r["model"], r["dtype"]): r["measured_all_ms"] for r in reuse["rows"]}
        measured = {k: [{"measured_ms": ms} for ms in sorted(saved[k])] for k in meta if k in saved}
        exports = [e for e in exports if (e[0], e[1]) in measured]
    host = get_profile("host")
    rows = []
    for name, label, data in exports:
        best = measured[(name, label)][0]
        e = est.estimate(data, host)
        graph, costs = est.parsed(data)
        rows.append({"family": meta[(name, label)], "model": name, "dtype": label,
                     "macs_m": round(sum(c.macs for c in costs) / 1e6, 2), "ops": len(graph.ops),
                     "estimate_ms": e["estimate_ms"], "measured_ms": round(best["measured_ms"], 4),
                     "measured_all_ms": [round(m["measured_ms"], 4) for m in measured[(name, label)]],
                     "ratio": round(e["estimate_ms"] / best["measured_ms"], 3), "parts": class_times(data),
                     "fallback": "FALLBACK" in e["basis"]})  # fmt: skip
    for fam in families:
        train = [r for r in rows if r["family"] != fam]
        theta = fit_correction(train)
        for r in rows:
            if r["family"] == fam:
                parts = np.array([r["parts"].get(k, 0.0) for k in KEYS])
                pred = float(_predict(theta, parts[None, :], np.array([r["parts"]["fixed"]]))[0])
                r["lofo_ratio"] = round(pred / 1000.0 / r["measured_ms"], 3)
                r["lofo_correction"] = {k: round(float(np.exp(t)), 3) for k, t in zip(KEYS, theta, strict=True)
                                        if abs(t) > 1e-3 and r["parts"].get(k)}  # fmt: skip
        shown = {k: round(float(np.exp(t)), 2) for k, t in zip(KEYS, theta, strict=True) if abs(t) > 0.02}
        print(f"{fam}: correction fitted without it: {shown}", flush=True)
    for r in rows:
        print(f"{r['family']:22s} {r['model']:28s} {r['dtype']:7s} est {r['estimate_ms']:9.3f} meas "
              f"{r['measured_ms']:9.3f} ratio {r['ratio']:5.2f} lofo {r['lofo_ratio']:5.2f}", flush=True)  # fmt: skip
    data, origin, same = host_tables.load()
    return {"rows": rows, "export_failed": failed, "export_s": round(built_s, 1),
            "seconds": round(time.perf_counter() - t0, 1),
            "load_average_end": round(load_average(), 2), "uptime": _uptime(),
            "host_tables": {"origin": origin, "same_cpu": same, "calibration": data.get("calibration"),
                            "fingerprint": (data.get("machine") or {}).get("fingerprint")}}  # fmt: skip


def _export_in_child(family: str, name: str, quant: str) -> None:
    """Export in a child process first, so a converter crash is a reported failure, not the bench's end."""
    import subprocess

    if (CACHE / f"{name}.{quant}.tflite").exists():
        return
    code = (f"from bench.device_family_models import FAMILIES; from bench.device_families import CACHE, tflite_for; "
            f"tflite_for({name!r}, FAMILIES[{family!r}][{name!r}], {quant!r}, CACHE)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the converter failed (exit {done.returncode}): {done.stderr.strip()[-160:]}")


def _uptime() -> str:
    import subprocess

    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def _calibration(res: dict[str, Any]) -> str:
    cal = res["host_tables"].get("calibration") or {}
    if not cal:
        return "calibration details not recorded"
    return (f"{cal.get('cases_timed')} micro-benchmarks timed, {cal.get('cases_skipped_for_budget')} skipped for "
            f"the {cal.get('budget_s'):.0f} s budget, {cal.get('seconds'):.0f} s")  # fmt: skip


def _pct(x: float) -> str:
    return f"{x:.0%}"


READING = [
    "- Reading of the run recorded here (2026-12-08, stop 30, 01:29-01:32 UTC, the last of five runs of version 11, "
    "each after its own calibration): the AMD EPYC with AVX-512 and VNNI (KVM guest, 2 vCPUs at 2596 MHz, 1 MiB L2 a "
    "core, 32 MiB L3; fingerprint amd-epyc-2c-ab5da7f4f5), idle. Host tables **version 11**: several-row weight "
    'streams timed on 16-row GEMMs, float32 and int8, by dtype (docs "Host weight stream of 16-row GEMMs"), '
    "each chain in two rounds, lowest kept; the once-per-inference cost read in three interleaved rounds, lowest "
    "kept (pruning.estimate.microbench.first_op_overheads); a 1x1 convolution of one pixel costed as a one-row GEMM. "
    "This run: 92% / 100% within ±15% / ±30% (calibration 144 s; outside ±15%: inception_v3 int8 0.81, "
    "efficientnet_b0 int8 1.19, tiny_vit int8 1.16, mini_densenet int8 0.84).",
    "- All five version-11 runs with the three-round once-per-inference reading (idle, 00:42-01:32 UTC): **94%, 94%, "
    "92%, 88%, 92% within ±15%, 100% within ±30% in all five: the item-2 target met in four of five** (the third "
    "with the one-pixel change, the last two with it and the two-round sweep; the 88% run measured inception_v3 "
    "int8 at 3.35 ms and efficientnet_b0 float at 3.01 ms, against 2.90-3.11 and 2.68-2.83 in the others: the "
    "host's state). The large networks, version 10 -> 11 over those runs: resnet50 float / int8 0.87-0.96 / "
    "0.74-0.83 -> 0.99-1.25 / 0.90-1.05, inception_v3 0.90-0.92 / 0.69-0.81 -> 0.94-1.10 / 0.76-0.87, densenet121 "
    "0.83-0.88 / 0.74-0.81 -> 0.93-1.05 / 0.87-0.93, efficientnet float 0.75-0.84 -> 0.82-0.96.",
    "- Runs of this session not counted above, all idle: version 10 at the session's start 80% / 94% (inception_v3 "
    "int8 0.70, gru_net / lstm_net float 0.65-0.66) and, from a worktree of the commit before version 11 for "
    "comparison, 92% / 100% (resnet50 int8 0.83, inception_v3 int8 0.81, efficientnet float 0.82-0.84); version 11 "
    "with the once-per-inference cost still read once: 70% / 98% and 82% / 98%: the large networks as above, but "
    "small ones low (mlp_784 float 0.79-0.80, mobilenet_v3_small float 0.72-0.78) and har_cnn float 1.96 once, "
    "because that single reading gave 0.59-0.79 us and 3.02 us for float FC / conv chains where the others read "
    "0-0.03: taken off every conv and FC case of the fit, it moved the small models' tables.",
    "- Where it still misses: the unrolled float recurrent nets (gru_net / lstm_net, 356-400 ops: 0.75-0.97 over "
    "the five runs; a chain of 69 STRIDED_SLICEs measured 2.61 us against 1.2 estimated, the estimator taking them "
    "as views); inception_v3 int8 0.76-0.87 (its measurement moves 2.9-3.35 ms between runs); resnet50 float up to "
    '1.25 (the 16-row sweep applied to its 4-row conv5 layers, docs "Host weight stream of 16-row GEMMs").',
    "- What version 10 changed, and how it was found. The large networks were estimated low in every version-9 "
    "run (resnet50 float / int8 0.73-0.78 / 0.67-0.70, inception_v3 0.78-0.87 / 0.63-0.73, densenet121 "
    "0.76-0.85 / 0.79-0.85, efficientnet float 0.64-0.78). That lead came from this zoo; the cause was then "
    'measured on convolutions it does not hold (bench/host_conv_reuse.py, docs "Host 1x1 convolutions of few '
    'pixels", and the same for 3x3 convolutions of 256 and 512 channels): a GEMM of few rows runs far below the '
    "tables' rate, 0.54-0.62x at 2x2 pixels, 0.73-0.79x at 4x4, 0.87-0.94x at 8x8, float and int8, hot or "
    "streamed, while the calibration's convolutions were all 7x7 pixels or more. Version 10 times single 1x1 "
    "convolutions of 512 channels at 2x2, 4x4, 8x8 and 16x16 pixels (the last the reference) and scales the MAC "
    "time of every CONV_2D and several-row FULLY_CONNECTED, float32 and int8, by its rows, interpolated in log rows "
    "(1 from 256 rows up; pruning.estimate.costs.rows_slowdown). Its figures here: float 1.72-1.76x at 4 rows, "
    "1.30x at 16, 1.07-1.08x at 64; int8 1.70-1.74x, 1.24-1.30x, 1.05-1.08x. No zoo model was used to fit them. "
    "Now: resnet50 float / int8 0.96 / 0.82, inception_v3 0.92 / 0.69-0.84, densenet121 0.88 / 0.81, efficientnet "
    "float 0.79-0.88.",
    "- Noise (stop 28): between two calibrations the estimates moved by up to 17% (mobilenet_v3_small float 0.239 -> "
    "0.280 ms, resnet50 float 6.83 -> 7.48 ms), the measurements by up to 14% (efficientnet_lite0 float 2.55 -> "
    "2.20 ms, inception_v3 int8 3.39 -> 3.05 ms), the small models within 1%. Nothing was tuned on this zoo; no "
    "estimator change was made after these runs.",
    "- Small ops in two states (why version 6): on this EPYC (05:31-05:39 UTC, stop 25) the per-op overhead of a "
    "chain of tiny ADDs read 0.058-0.064 us for about eight minutes in every process and on both vCPUs, and 0.022 "
    "us before and after, while a 553 us convolution did not move. Version 6 takes the per-op overhead as the "
    "median of six readings at the start and four at the end of the calibration (`calibration.per_op_readings_us` "
    "lists them), so a state that changes during a calibration no longer decides it alone.",
    "- Previous hosts, kept in the next sections: the Intel Xeon with AVX-512 VNNI and AMX (version 8, stop 26): "
    "74% / 98%, 60% / 94%, 60% / 96% in three runs, large int8 and float networks low (resnet50 int8 0.62-0.69), "
    "not re-run with version 9; the AVX2-only AMD EPYC (version 9, stop 27): 94% / 100% and 96% / 100%; this CPU "
    "with version 7 (stop 25): 76% / 100%.",
]
"""What the recorded run shows (docs/benchmarks.md); written for the run the section holds."""


def markdown(res: dict[str, Any], cmd: str) -> str:
    rows = res["rows"]
    lines = [SECTION, "", f"Command: `{cmd}` ({res['seconds']:.0f} s here, exports {res['export_s']:.0f} s of it; "
             f"`{res['uptime']}` at the end). Raw rows: `bench/out/device_families.json`. Host tables: "
             f"{'calibrated on this CPU' if res['host_tables']['same_cpu'] else 'ANOTHER CPU'} "
             f"(`{(res['host_tables']['fingerprint'] or {}).get('id')}`; {_calibration(res)}).", "",
             "Held out: each family's rows are estimated from single-op micro-benchmarks (no zoo model timed) "
             "and, in the `LOFO-corrected` columns, a per-(class, dtype) correction fitted on the other ten "
             "families only. Measurement: LiteRT + XNNPACK, 1 thread, the inference thread's CPU time (pruning.host; "
             "host tables v5+), lowest median of >= 3 passes repeated until two agree within 5%.", ""]  # fmt: skip
    body = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        for dtype in ("float32", "int8"):
            sub = [r for r in rows if r["family"] == fam and r["dtype"] == dtype]
            if not sub:
                continue
            a, b = summary([r["ratio"] for r in sub]), summary([r["lofo_ratio"] for r in sub])
            body.append([fam, dtype, a["n"], _pct(a["within_10"]), _pct(a["within_15"]), _pct(a["within_30"]),
                         _pct(a["median"]), _pct(a["max"]), _pct(b["within_15"]), _pct(b["median"]),
                         _pct(b["max"])])  # fmt: skip
    for label, sub in [("all", rows), ("all float32", [r for r in rows if r["dtype"] == "float32"]),
                       ("all int8", [r for r in rows if r["dtype"] == "int8"])]:  # fmt: skip
        a, b = summary([r["ratio"] for r in sub]), summary([r["lofo_ratio"] for r in sub])
        body.append([f"**{label}**", "", a["n"], _pct(a["within_10"]), _pct(a["within_15"]),
                     _pct(a["within_30"]), _pct(a["median"]), _pct(a["max"]), _pct(b["within_15"]),
                     _pct(b["median"]), _pct(b["max"])])  # fmt: skip
    lines.append(table(["family", "dtype", "rows", "±10%", "±15%", "±30%", "median err", "max err",
                        "LOFO-corrected ±15%", "LOFO median", "LOFO max"], body))  # fmt: skip
    for label, key in (("micro-benchmark tables alone", "ratio"), ("LOFO-corrected", "lofo_ratio")):
        errs = [abs(r[key] - 1) for r in rows]
        within = sum(e <= 0.15 for e in errs) / len(errs)
        beyond = [f"{r['model']} {r['dtype']} ({r[key]:.2f})" for r in rows if abs(r[key] - 1) > 0.30]
        met = within >= 0.9 and not beyond
        lines.append(f"- {label}: {within:.0%} of {len(errs)} rows within ±15%, {len(beyond)} beyond ±30%"
                     f"{': ' + ', '.join(beyond) if beyond else ''}; target (>= 90% within ±15%, none beyond "
                     f"±30%) {'met' if met else 'NOT met'}.")  # fmt: skip
    fallback = [f"{r['model']} {r['dtype']}" for r in rows if r.get("fallback")]
    if fallback:
        lines.append(f"- Rows whose graph has ops without a cost model (`FALLBACK` in basis): {', '.join(fallback)}.")
    lines += READING
    if res.get("export_failed"):
        lines.append(f"- Not in the table (export failed, so nothing to estimate): {'; '.join(res['export_failed'])}.")
    lines += ["", "<details><summary>Per model</summary>", "",
              table(["family", "model", "dtype", "MMACs", "ops", "estimate ms", "measured ms", "ratio", "LOFO ratio"],
                    [[r["family"], r["model"], r["dtype"], r["macs_m"], r["ops"], r["estimate_ms"], r["measured_ms"],
                      r["ratio"], r["lofo_ratio"]] for r in rows]), "", "</details>", ""]  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one model per family; does not write the docs")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--docs-only", action="store_true", help="rewrite the docs section from the saved json")
    parser.add_argument("--reuse", action="store_true", help="re-estimate against the saved measurements")
    parser.add_argument("--out", default=str(OUT), help="where the results json is written")
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    cmd = ".venv/bin/python bench/device_families.py"
    if args.docs_only:
        res = json.loads(OUT.read_text())
    else:
        reuse = json.loads(Path(args.out).read_text()) if args.reuse else None
        res = run(QUICK_FAMILIES if args.quick else FAMILIES, args.passes, reuse)
        if reuse is not None:
            res["seconds"], res["export_s"], res["uptime"] = reuse["seconds"], reuse["export_s"], reuse["uptime"]
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))
    text = markdown(res, cmd)
    print(text)
    if not (args.quick or args.no_docs):
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
