"""Microcontroller runtimes (issue 14 item 3): the CMSIS-NN 2022+ kernel tables against MLPerf Tiny v1.0/v1.1.

    .venv/bin/python bench/device_mcu.py            # check only, writes docs/benchmarks.md's section
    .venv/bin/python bench/device_mcu.py --fit      # re-fit the three int8 efficiencies, then check

Rows: bench/published_mcu.csv (each with its URL and `use`). Named before fitting: the NUCLEO-L4R5ZI
(Cortex-M4F, 120 MHz) rows are the only ones the fit sees (three int8 efficiencies of the runtime
`tflm-cmsis-nn-2022`: conv = 1x1 conv, depthwise, fully connected); the nRF5340 (Cortex-M33, 128 MHz) rows of
two submitters are only checked, on the cortex-m33-160mhz profile moved to 128 MHz. The 2020 tables
(`tflm-cmsis-nn`, TFLite Micro v2.3.1, fitted on the v0.5 reference rows) stay as the `*-tflm2020` profiles.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_section  # noqa: E402
from bench.device_harness import CACHE, table, tflite_for  # noqa: E402
from bench.device_published import PUBLISHED, PUBLISHED_MODELS, _golden  # noqa: E402
from contract import devices  # noqa: E402
from pruning import estimate as est  # noqa: E402

ROWS = ROOT / "bench" / "published_mcu.csv"
RUNTIMES = ROOT / "contract" / "profiles" / "runtimes.json"
SECTION = "## Microcontroller runtimes (issue 14)"
KEY = "tflm-cmsis-nn-2022"
BASE = {"cortex-m4f": "cortex-m4f-120mhz", "cortex-m33": "cortex-m33-160mhz"}


def rows() -> list[dict[str, str]]:
    with ROWS.open() as fh:
        return list(csv.DictReader(fh))


def profile_for(row: dict[str, str]) -> tuple[Any, str]:
    """The profile a row is compared with: its core's profile, at the row's clock."""
    name = BASE[row["core"]]
    p = devices.get_profile(name)
    clock = float(row["clock_mhz"])
    if abs(p.clock_mhz - clock) > 1:
        return dataclasses.replace(p, clock_mhz=clock), f"{name} at {clock:g} MHz"
    return p, name


def model(row: dict[str, str]) -> bytes:
    builder, key = PUBLISHED_MODELS[row["model"]]
    return tflite_for(key, builder, "int8", CACHE)


def ratios(selected: list[dict[str, str]]) -> list[tuple[dict[str, str], float, float, str]]:
    devices.clear_cache()
    out = []
    for row in selected:
        p, note = profile_for(row)
        ms = est.estimate(model(row), p)["estimate_ms"]
        published = 1000.0 / float(row["inferences_per_s"])
        out.append((row, ms, published, note))
    return out


def fit() -> dict[str, float]:
    """Coordinate descent on the log error of the fitted rows: each class has the model(s) it dominates."""
    est.estimator.CACHE_SIZE = 64
    runtimes = json.loads(RUNTIMES.read_text())
    fitted = [r for r in rows() if r["use"] == "fitted"]

    def set_eff(v: dict[str, float]) -> None:
        eff = runtimes["runtimes"][KEY]["efficiency"]
        eff["conv"]["int8"] = eff["conv1x1"]["int8"] = round(v["conv"], 5)
        eff["depthwise"]["int8"] = round(v["depthwise"], 5)
        eff["fully_connected"]["int8"] = round(v["fully_connected"], 5)
        RUNTIMES.write_text(json.dumps(runtimes, indent=1) + "\n")

    def loss_on(names: tuple[str, ...]) -> float:
        return sum(math.log(ms / pub) ** 2 for r, ms, pub, _ in ratios(fitted) if r["model"] in names)

    v = {"conv": 0.1, "depthwise": 0.05, "fully_connected": 0.1}
    plan = [("fully_connected", ("mlperf-tiny-ad-fc-autoencoder",)), ("conv", ("mlperf-tiny-ic-resnet8",)),
            ("depthwise", ("mlperf-tiny-kws-dscnn", "mlperf-tiny-vww-mobilenetv1-0.25"))]  # fmt: skip
    for _ in range(3):
        for key, names in plan:

            def loss(x: float, key: str = key, names: tuple[str, ...] = names) -> float:
                set_eff(v | {key: x})
                return loss_on(names)

            v[key] = _golden(loss, 0.002, 1.0)
            set_eff(v)
    runtimes["calibration"][KEY] = {"efficiency_int8": v, "fitted_rows": [f"{r['board']} {r['model']}" for r in fitted],
                                    "command": ".venv/bin/python bench/device_mcu.py --fit"}  # fmt: skip
    RUNTIMES.write_text(json.dumps(runtimes, indent=1) + "\n")
    devices.clear_cache()
    return v


def v05_rows() -> list[list[Any]]:
    """The 2020 runtime on its own rows (MLPerf Tiny v0.5 reference, TFLite Micro v2.3.1)."""
    out = []
    with PUBLISHED.open() as fh:
        for row in csv.DictReader(fh):
            if not row["core"].startswith("cortex-m4f"):
                continue
            builder, key = PUBLISHED_MODELS[row["model"]]
            data = tflite_for(key, builder, "int8", CACHE)
            old = est.estimate(data, devices.get_profile("cortex-m4f-120mhz-tflm2020"))["estimate_ms"]
            new = est.estimate(data, devices.get_profile("cortex-m4f-120mhz"))["estimate_ms"]
            pub = float(row["latency_ms"])
            out.append([row["model"], pub, round(old, 1), f"{old / pub:.2f}", round(new, 1), f"{new / pub:.2f}"])
    return out


def markdown(checked: list[tuple[dict[str, str], float, float, str]], v05: list[list[Any]], eff: Any) -> str:
    body = [[r["round"], r["submitter"], r["board"], r["runtime"], r["model"], r["use"], note, f"{pub:.2f}",
             f"{ms:.2f}", f"{ms / pub:.2f}"] for r, ms, pub, note in checked]  # fmt: skip
    only = [ms / pub for r, ms, pub, _ in checked if r["use"] == "checked"]
    worst = max(max(x, 1 / x) for x in only) if only else float("nan")
    return "\n".join(
        [
            SECTION,
            "",
            "Command: `.venv/bin/python bench/device_mcu.py` (estimates only; `--fit` re-fits). Rows: "
            "`bench/published_mcu.csv`, each with its results.txt URL in mlcommons/tiny_results_v1.0 / v1.1.",
            "",
            "Every MCU profile names its runtime: `cortex-m4f-120mhz`, `cortex-m7-216mhz`, `cortex-m33-160mhz` and the "
            "products on them now use **TFLite Micro + CMSIS-NN (2022+ kernels)** (`tflm-cmsis-nn-2022`); the 2020 "
            "tables stay as their own runtime **TFLite Micro v2.3.1 + CMSIS-NN (2020)** in the `*-tflm2020` profiles.",
            "",
            f"Fitted (named before fitting): three int8 efficiencies on the four NUCLEO-L4R5ZI rows only: {eff}. "
            "Checked, never fitted: the nRF5340 DK rows (another core, Cortex-M33 at 128 MHz, and two submitters).",
            "",
            table(
                [
                    "round",
                    "submitter",
                    "board",
                    "runtime of the row",
                    "model",
                    "use",
                    "profile",
                    "published ms",
                    "estimate ms",
                    "ratio",
                ],
                body,
            ),  # fmt: skip
            "",
            f"Checked rows: {len(only)}, ratios {min(only):.2f}..{max(only):.2f}; worst factor {worst:.2f}x "
            f"(target: every checked row within 1.5x: {'met' if worst <= 1.5 else 'NOT met'}).",
            "",
            "The 2020 runtime against its own rows (MLPerf Tiny v0.5 reference, TFLite Micro v2.3.1, NUCLEO-L4R5ZI), "
            "and the 2022+ tables on the same rows (they should be faster):",
            "",
            table(["model", "published ms (v0.5)", "tflm2020 estimate", "ratio", "2022+ estimate", "ratio"], v05),
            "",
            "What these rows are, exactly: the v1.0/v1.1 rows ran CMSIS-NN kernels (CMSIS_NN commit 51263182, 2022) "
            "under microTVM's ahead-of-time executor, not the TFLite Micro interpreter; the kernels are what TFLite "
            "Micro calls on Cortex-M, and the interpreter's per-op cost is kept from the 2020 table (4 us per op on "
            "the M4F, under 1% of these models). Not found: a TFLite Micro + CMSIS-NN MLPerf Tiny row on a plain "
            "Cortex-M CPU in v1.0-v1.3 (the only TFLite Micro rows are Silicon Labs' xG24, which runs its MVP "
            "accelerator, and Renesas' EK-RA8D1, a Cortex-M85 with Helium for which no profile exists here); "
            "CMSIS-NN's per-kernel cycle counts were not found in a citable form, so none is used. The Cortex-M7 "
            "profile has no row in any round with this runtime: moved from the M4F fit by its ISA peak, unchecked.",
            "",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true")
    args = parser.parse_args()
    eff = fit() if args.fit else json.loads(RUNTIMES.read_text())["calibration"][KEY]["efficiency_int8"]
    eff = {k: round(v, 4) for k, v in eff.items()}
    checked = ratios(rows())
    for r, ms, pub, note in checked:
        print(f"{r['board']:14s} {r['model']:34s} {r['use']:8s} est {ms:8.2f} published {pub:8.2f} "
              f"ratio {ms / pub:5.2f} [{note}]")  # fmt: skip
    text = markdown(checked, v05_rows(), eff)
    print(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
