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
    "- Reading of the run recorded here: an Intel Xeon (KVM guest, 2 vCPUs, 2.6 GHz nominal, AVX512-VNNI and "
    "AMX-INT8, 2 MiB L2 per core) shared with two nice'd training jobs. The table holds the measurements of 23:23 "
    "UTC (load 2.5), re-estimated with `--reuse` by version-4 host tables (calibrated at 00:26 UTC: 193 s at load "
    "4.9-5.5). Micro-benchmark tables alone: 74% of rows within ±15%, 94% within ±30% (float32 76% / 88%, int8 72% / "
    "100%), median error 7%, max 33%: target missed. On the same measurements: the final version-3 tables (00:02 UTC) "
    "gave 74% / 96% (float32 76% / 92%, int8 72% / 100%, median 8%, max 33%), version 2 34% / 60%; the version-3 "
    "tables with only (8) below added 74% / 96% (the int8 transformers 0.78 -> 0.84 and 0.75 -> 0.83, nothing else "
    "moves); another version-4 calibration (00:22 UTC, 156 s at load 3.7) 76% / 92% (float32 68% / 84%, int8 84% / "
    "100%): calibration to calibration, under this load, rows move by up to 0.25 (resnet50 float 0.79 -> 0.64 as "
    "the sweep's 64 MiB rate read 23 instead of 6 GB/s; GRU/LSTM int8 0.76-0.79 -> 0.99-1.03 as the int8 "
    "FULLY_CONNECTED fit traded its per-input term for a per-output one). A fresh measurement with the final "
    "version-3 tables (00:05-00:07 UTC, load 4.7 -> 3.9) gave 68% / 90%: the small models measured within 1-3% of "
    "23:23, the memory-heavy float ones 1.3-1.75x slower (resnet50 28.6 vs 16.4 ms, inception_v3 23.2 vs 15.1, "
    "densenet121 10.4 vs 7.1, efficientnet_b0 3.5 vs 2.7) as the co-tenants loaded the shared last-level cache and "
    "DRAM; a fresh run at 23:46 (load 2.9 -> 4.4) with an earlier version-3 calibration gave 66% / 96%.",
    "- What changed for this CPU, each cause found on the zoo and each fix calibrated from micro-benchmarks only "
    "(not held out in that sense: the zoo's failure here is what sent us to them). (1) int8 convolutions run on "
    "XNNPACK's AMX kernels, which take 64 output channels and 64-byte reduction blocks at a time (a 16x16 3x3 conv "
    "with 8 and with 32 channels both take 11 us); the fit's channel tiles stopped at 32, so it had put 20,000 setup "
    "cycles (7.7 us) on every int8 conv: har_cnn int8 4.6x, conv1d_net 2.6x, audio_conv1d 2.2x, now 0.85-1.07. Tiles "
    "go to 64 and the per-output term counts tile-padded outputs (int8 conv1x1 fit 0.44 -> 0.09 rms log error). (2) "
    "Weights that do not stay in the core's cache between inferences: the sweep of float FULLY_CONNECTED ops "
    "(0.25-128 MiB of weights, each in a loop) falls from ~100 GB/s up to 1.5 MiB to 22-37 GB/s at 3-32 MiB and 6-11 "
    "GB/s at 64-128 MiB; a model re-reads its weights at the rate of its working set's size, on top of the ops' "
    "cache-hot times (chains of 16 distinct 1 MiB 1x1 convs: +27 us an op at 1x1 and at 4x4 pixels, where the "
    "compute takes 67 us, so the stream does not hide behind it). Float MobileNets and EfficientNets 0.42-0.69 -> "
    "0.83-1.00, mlp_784 float 0.53 -> 1.00, resnet50 float 0.61 -> 0.79. (3) What an inference pays once for int8 "
    "GEMMs (0.25-0.30 us from chains of 1 and 9 small ops; a conv chain followed by a FULLY_CONNECTED chain pays it "
    "once), which the fit had spread over every op as setup (int8 FULLY_CONNECTED runs on TFLite's own kernel with "
    "this LiteRT, not XNNPACK): GRU/LSTM int8 1.38 -> 0.73-0.77, the int8 autoencoder 1.50 -> 0.94. (4) WHILE loops "
    "cost 0.24 us an iteration and 1.3-1.5 us a loop beyond their bodies' ops (loops of 1 and 33 iterations): "
    "GRU/LSTM float 0.53-0.59 -> 0.67-0.72. (5) Four small convolutions (2D and 1D-as-2D, shapes unlike the zoo's) "
    "joined the micro-benchmarks: the float conv setup had been extrapolated from cases of 7 us and more (har_cnn "
    "float 1.6x -> 1.04). (6) A per-element term of a GEMM's input operand (the im2col matrix), kept only where it "
    "fits the micro-benchmarks clearly better: float conv 0.14 -> 0.09 rms log error; a 3x3 32x32x48->12 conv timed "
    "alone, never fitted, 0.75x -> 0.92x (mini_densenet float 0.70 -> 0.77). (7) BATCH_MATMUL's own efficiency no "
    "longer borrows FULLY_CONNECTED's per-output term (fitted on 8-256 outputs, one calibration made it double the "
    "float attention matmuls). (8) Version 4: int8 BATCH_MATMUL on TFLite's reference kernel (a right-hand zero "
    "point other than 0) pays per output as well as per MAC (it requantises each output on its own): its three "
    "micro-benchmarks take 74, 89 and 138 us at 0.31-0.32 M MACs and 5,000, 9,604 and 20,000 outputs, which one "
    "efficiency cannot tell apart (20,000 outputs fitted at 0.67x); two terms, fitted on them when they explain the "
    "cases clearly better, give 11.0 cycles an output (two calibrations: 11.04, 11.03) and reproduce all three "
    "within 2%; three 4D and 3D shapes timed alone, never fitted, 0.84-1.17x -> 0.99-1.01x. "
    "int8 transformers 0.75-0.78 -> 0.82-0.83.",
    "- Left: densenet121 float 0.67 and the DenseNets' 0.77-0.83: besides the run-to-run spread above, 3x3 convs "
    "with 12-32 output channels are still under-estimated; resnet50 float 0.79: a GEMM with more pixels than its row "
    "tile re-reads weights that do not fit the core's cache once per tile (16 chained 1 MiB 1x1 convs at 16x16 "
    "re-streamed ~37 MiB each), not modelled. Float GRU/LSTM 0.67-0.70 and int8 0.76-0.79 (one "
    "calibration 1.0), int8 transformers 0.82-0.83: not delegate partitions. The ops XNNPACK leaves to TFLite "
    "(read from the interpreter's DELEGATE nodes) split the int8 transformers into 19-22 partitions (float 9-10, "
    "efficientnet_b0 17, mobilenet_v3 int8 20; the shape arithmetic of Dense on 3D inputs: SHAPE, GATHER, "
    "REDUCE_PROD, CONCATENATION, PACK, RESHAPE; in int8 also BATCH_MATMUL, SQUARED_DIFFERENCE, RSQRT, SOFTMAX, GELU; "
    "int8 FULLY_CONNECTED is delegated), but a partition costs next to nothing here: chains of 2k ADDs with k GATHERs "
    "between them (k partitions) against the same ops with the GATHERs after them (1 partition), k = 4 and 16, "
    "float32 and int8, take 0.024-0.027 us more per partition on 128-byte tensors and 0.00-0.01 us on 6 KB ones, "
    "and a dynamic RESHAPE before a chain of 8 or 32 ADDs costs the same as one after it (no re-preparation): at "
    "most ~0.7 us of the transformers' 35-120 us gap, so no partition term was shipped. What is left of them is in "
    "the ops TFLite runs itself; the recurrent float gap (13 us on 40) is not found. "
    "The LOFO correction (one factor per class and dtype) is reported, not shipped; the estimator ships "
    "the micro-benchmark tables only.",
    "- Previous host (AMD EPYC, 2 cores, AVX512-VNNI; host tables version 2; measured 2026-12-06 21:03 UTC at load "
    "~1): 72% within ±15%, 96% within ±30%, har_cnn float32 and int8 beyond (1.34, 1.42); its tables per family and "
    "per model are kept in the next section. Not re-run with version 3 (no EPYC here).",
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
