"""Energy per inference (issue 14): the MCU profiles' active power and energy against published MLPerf Tiny
energy rows (bench/published_energy.csv, each with its URL and whether it was used to set the power figure).

Two comparisons per row:
1. power: the row's mean power during inference (energy/inference x inferences/s) against the profile's
   `active_power_mw` (scaled by clock for the H7A3 rows, which set the M7 figures by clock scaling);
2. energy: the estimator's energy (TFLite Micro + CMSIS-NN latency estimate x active power) against the
   published energy. The published rows ran X-CUBE-AI, not TFLite Micro, so this ratio is mostly the two
   runtimes' speed ratio; it is reported, not fitted.

    .venv/bin/python bench/device_energy.py            # prints and writes docs/benchmarks.md's section
"""

from __future__ import annotations

import csv
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import write_section  # noqa: E402
from bench.device_harness import CACHE, tflite_for  # noqa: E402
from bench.device_published import PUBLISHED_MODELS  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402

ROWS = ROOT / "bench" / "published_energy.csv"
SECTION = "## Device energy (issue 14)"


def main() -> int:
    out = []
    with ROWS.open() as fh:
        for row in csv.DictReader(fh):
            profile = get_profile(row["profile"])
            scale = float(row["clock_mhz"]) / profile.clock_mhz
            implied = float(row["energy_uj"]) * float(row["inferences_per_s"]) / 1000.0
            power = profile.active_power_mw * scale
            builder, key = PUBLISHED_MODELS[row["model"]]
            e = est.estimate(tflite_for(key, builder, "int8", CACHE), profile)
            energy_uj = e["estimate_ms"] / scale * power  # the TFLM estimate at the row's clock x power
            pub_ms = 1000.0 / float(row["inferences_per_s"])
            out.append({**row, "implied_mw": implied, "profile_mw": power, "est_uj": energy_uj, "pub_ms": pub_ms,
                        "est_ms": e["estimate_ms"] / scale})  # fmt: skip
    lines = [
        SECTION,
        "",
        "`.venv/bin/python bench/device_energy.py` (estimates only, no timing: the machine's load does not "
        "matter). Rows: bench/published_energy.csv (MLPerf Tiny v1.1, Krai, "
        "github.com/mlcommons/tiny_results_v1.1 closed/Krai/results/README.md); `use` says which row set a "
        "power figure (fitted) and which only checks it.",
        "",
        "| board | runtime | benchmark | use | published power mW | profile mW | ratio | published uJ "
        "| estimated uJ (TFLM) | energy ratio | published ms | TFLM estimate ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in out:
        lines.append(
            f"| {r['board']} | {r['runtime']} | {r['benchmark']} | {r['use']} | {r['implied_mw']:.1f} | "
            f"{r['profile_mw']:.1f} | {r['profile_mw'] / r['implied_mw']:.2f} | {float(r['energy_uj']):.0f} | "
            f"{r['est_uj']:.0f} | {r['est_uj'] / float(r['energy_uj']):.2f} | {r['pub_ms']:.1f} | {r['est_ms']:.1f} |"
        )
    checked = [r["profile_mw"] / r["implied_mw"] for r in out if r["use"] == "checked"]
    lines += [
        "",
        f"Power, checked rows only ({len(checked)}): profile / published between {min(checked):.2f} and "
        f"{max(checked):.2f} (median {statistics.median(checked):.2f}). The energy ratio is the estimator's "
        "TFLite Micro latency over X-CUBE-AI's measured latency (same power): X-CUBE-AI is the faster runtime, "
        "so the TFLite Micro energy is higher by that factor; no published TFLite Micro energy row was found "
        "to check it directly. Watch, phone and board power figures are literature estimates (their sources "
        "are in each profile), not checked against a measurement.",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
