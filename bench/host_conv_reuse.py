"""1x1 convolutions of few pixels, alone and in chains: the host estimate against LiteRT (issue 14).

    .venv/bin/python bench/host_conv_reuse.py            # measure, print, save bench/out/host_conv_reuse.json
    .venv/bin/python bench/host_conv_reuse.py --render   # the saved run into docs/benchmarks.md

Why: on the AVX-512 EPYC the large zoo networks are estimated 0.67-0.87x of their measured time, and what the
estimate is short by is ~30-39 us per MiB of packed weights across them (docs, "Host estimator,
leave-one-family-out", a lead read off the evaluation zoo). Their late stages are 1x1 convolutions of many
channels on 2x2-4x4 pixels: GEMMs of 4-16 rows, while the calibration's conv1x1 micro-benchmarks are 7x7 pixels
(49 rows) and more. This bench tests the lead on models neither the zoo nor the calibration holds: eight 1x1
convolutions of C -> C channels in a row, each with weights of its own, on P x P pixels (each weight used P^2
times an inference), float32 and int8, with 2, 8 and 32 MiB of weights in all; and single convolutions of 256 and
512 channels at 2-8 pixels a side, whose weights (64 KiB - 1 MiB) stay in the core's cache when repeated. A
shortfall that is the same for a single hot convolution as for a chain of 32 MiB is the kernel's, not the cache's.
Micro-benchmarks only: no zoo model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import markdown, write_section  # noqa: E402

OUT = ROOT / "bench" / "out" / "host_conv_reuse.json"
SECTION = "## Host 1x1 convolutions of few pixels (issue 14)"
OPS = 8
PIXELS = (2, 4, 8, 16)
MIB = (2, 8, 32)
SINGLE = ((256, (2, 4, 8)), (512, (2, 4, 8)))
"""Single 1x1 convolutions (channels, pixels a side)."""

READING = """Reading (2026-12-07, stop 29, the AMD EPYC with AVX-512 of the section above, idle). The table is the
run with host tables version 10 (22:52-22:53 UTC); the figures of the first run, with version 9 (22:16-22:18), are
quoted here.
- With version 9 the estimate fell short by the GEMM's rows, not by the weights' size: a single hot 1x1
  convolution (weights 64 KiB - 1 MiB, in the core's L2) at 2x2 pixels (4 rows) was estimated 0.58-0.62x of its
  time, at 4x4 (16 rows) 0.74-0.79x, at 8x8 (64 rows) 0.89-0.94x, float and int8 alike; chains of eight with 2
  or 8 MiB of weights read the same (0.55-0.57x at 2x2, 0.73-0.78x at 4x4), at 32 MiB a little lower (0.50-0.66x,
  0.63-0.67x). Measured throughput climbs with the rows (float 30-32 / 35-44 / 49-53 / 54-56 GMAC/s at 4 / 16 /
  64 / 256 rows, int8 94-123 / 138-166 / 184-196 / 210-215) where the estimate held ~55 and ~215 at every size:
  the calibration's conv1x1 micro-benchmarks were all 7x7 pixels or more. 3x3 convolutions of 256 and 512
  channels slow down alike (0.54-0.59x at 2x2, 0.73-0.78x at 4x4, 0.87-0.92x at 8x8; a one-off probe, not in
  this table).
- Version 10 (`gemm_rows`, pruning/estimate/runtime_bench.py) times single 1x1 convolutions of 512 channels at
  2x2, 4x4, 8x8 and 16x16 pixels in the calibration and scales every convolution's MAC time by its rows against
  256 (pruning.estimate.costs.rows_slowdown). With it (the table, 22:52-22:53 UTC): the single convolutions read
  0.91-1.03x, the chains of 2 and 8 MiB 0.83-1.03x; of 32 MiB float 0.86-1.29x and int8 0.77-0.93x (the 2x2
  float chain is now over-estimated: its weight-stream term and the rows factor overlap there)."""


def measure() -> list[dict[str, Any]]:
    import keras

    from contract.devices import get_profile
    from pruning import estimate as est
    from pruning.estimate.runtime_bench import conv_chain_tflite
    from pruning.host import measure_latency

    host = get_profile("host")
    cases = [(OPS, int(round((mib * 2**20 / (OPS * width)) ** 0.5 / 16)) * 16, p, quant)
             for quant, width in (("none", 4), ("int8", 1)) for mib in MIB for p in PIXELS]  # fmt: skip
    cases += [(1, c, p, quant) for quant in ("none", "int8") for c, ps in SINGLE for p in ps]
    rows: list[dict[str, Any]] = []
    for ops, channels, pixels, quant in cases:
        keras.utils.set_random_seed(0)
        tflite = conv_chain_tflite(channels, pixels, ops, quant)
        measured = min(measure_latency(tflite, threads=1)["measured_ms"] for _ in range(3))
        estimate = est.estimate(tflite, host)["estimate_ms"]
        size = ops * channels * channels * (4 if quant == "none" else 1) / 2**20
        macs = ops * pixels * pixels * channels * channels
        row = {"dtype": "float32" if quant == "none" else quant, "ops": ops, "pixels": pixels, "channels": channels,
               "weights_mib": size, "measured_ms": measured, "estimate_ms": estimate, "ratio": estimate / measured,
               "short_us_per_mib": (measured - estimate) * 1000 / size, "gmacs": macs / measured / 1e6}  # fmt: skip
        rows.append(row)
        print(f"{row['dtype']:8s} {ops} op(s) {pixels:2d}x{pixels:<2d} px  C {channels:5d}  {size:6.2f} MiB  "
              f"measured {measured:8.3f} ms  estimate {estimate:8.3f} ms  ratio {estimate / measured:.2f}  "
              f"{row['gmacs']:6.1f} GMAC/s", flush=True)  # fmt: skip
    return rows


def render(rows: list[dict[str, Any]]) -> None:
    table = markdown(
        ["dtype", "ops", "pixels", "channels", "weights MiB", "measured ms", "estimate ms", "ratio", "GMAC/s",
         "short us a MiB"],
        [[r["dtype"], r["ops"], f"{r['pixels']}x{r['pixels']}", r["channels"], round(r["weights_mib"], 2),
          round(r["measured_ms"], 4), round(r["estimate_ms"], 4), round(r["ratio"], 2), round(r["gmacs"], 1),
          round(r["short_us_per_mib"], 1)] for r in rows],
    )  # fmt: skip
    text = "\n\n".join([SECTION, "Command: `.venv/bin/python bench/host_conv_reuse.py` (then `--render`). LiteRT + "
                        "XNNPACK, 1 thread, the inference thread's CPU time, lowest of 3 medians. "
                        + (__doc__ or "").split("\n\n", 2)[2].strip(), table, READING])  # fmt: skip
    write_section(SECTION, text + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--render", action="store_true", help="write the saved run into docs/benchmarks.md")
    args = parser.parse_args()
    if not args.render:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(measure(), indent=1))
    render(json.loads(OUT.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
