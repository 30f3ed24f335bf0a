"""Weights streamed by GEMMs of several rows (issue 14, host tables versions 8 and 11): the check the change was
decided on.

    .venv/bin/python bench/host_weight_stream.py     # prints the table; docs/benchmarks.md keeps it

Chains of eight 1x1 convolutions (each with weights of its own) at 1x1 .. 8x8 pixels (GEMMs of 1 .. 64 rows),
float32 with 2, 8 and 96 MiB of weights in all and int8 with 2, 8 and 24 MiB (the core's cache, the last-level
cache, DRAM): micro-benchmarks, not zoo models. Each is measured on this host
(pruning.estimate.microbench.stable_time_us) and estimated with this host's tables twice: reading every weight at
the one-row FULLY_CONNECTED sweep (`weight_stream`, as version 7 did), and as the tables do (weights of several-row
ops at `weight_stream_rows`: version 8-10 a float 4-row sweep, version 11 16-row sweeps by dtype). The calibration
times 16-row chains of 0.5, 2, 8, 32 (and float 128) MiB: rows marked `calibration size` repeat one of its
points (4x4 pixels, 2 or 8 MiB); every other row is a chain it never timed. bench/device_families.py's zoo was
not used to decide it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import error_summary  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402
from pruning.estimate.microbench import GEMM_DTYPES, stable_time_us  # noqa: E402
from pruning.estimate.runtime_bench import conv_chain_tflite  # noqa: E402

CHAINS = {"float32": (256, 512, 1776), "int8": (512, 1024, 1776)}
"""Channels of the chains by dtype: 2, 8 and 96 MiB of float weights, 2, 8 and 24 MiB of int8 ones."""


def main() -> None:
    host = get_profile("host")
    if not host.weight_stream_rows:
        raise SystemExit(
            "these host tables have no weight_stream_rows: run `python -m pruning.estimate calibrate-host`"
        )
    one_row = dataclasses.replace(host, weight_stream_rows={})
    print("| dtype | weights MiB | rows | measured ms | one-row sweep ms | ratio | tables ms | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    errors: dict[str, list[float]] = {"one-row sweep": [], "tables": []}
    for dtype, channel_counts in CHAINS.items():
        width = 1 if dtype == "int8" else 4
        for channels in channel_counts:
            for pixels in (1, 2, 3, 4, 6, 8):
                tfl = conv_chain_tflite(channels, pixels, quantization=GEMM_DTYPES[dtype])
                measured = stable_time_us(tfl, 0.4) / 1e3
                old, new = est.estimate(tfl, one_row)["estimate_ms"], est.estimate(tfl, host)["estimate_ms"]
                mib = 8 * channels * channels * width / 2**20
                seen = pixels == 4 and round(mib) in (2, 8)
                if not seen:
                    errors["one-row sweep"].append(abs(old / measured - 1))
                    errors["tables"].append(abs(new / measured - 1))
                print(
                    f"| {dtype} | {mib:.0f} | {pixels * pixels}{' (calibration size)' if seen else ''} | "
                    f"{measured:.3f} | {old:.3f} | {old / measured:.2f} | {new:.3f} | {new / measured:.2f} |",
                    flush=True,
                )
    for k, v in errors.items():
        print(error_summary(f"{k} (chains the calibration did not time)", v))


if __name__ == "__main__":
    main()
