"""Weights streamed by GEMMs of several rows (issue 14, host tables version 8): the check the change was decided on.

    .venv/bin/python bench/host_weight_stream.py     # prints the table; docs/benchmarks.md keeps it

Chains of eight float 1x1 convolutions (each with weights of its own) at 1x1 .. 8x8 pixels (GEMMs of 1 .. 64
rows), with 2, 8 and 96 MiB of weights in all (the core's cache, the last-level cache, DRAM): micro-benchmarks,
not zoo models. Each is measured on this host (pruning.estimate.microbench.stable_time_us) and estimated with
this host's tables twice: as version 7 read every weight (the one-row FULLY_CONNECTED sweep, `weight_stream`)
and as version 8 does (weights of several-row ops at `weight_stream_rows`). bench/device_families.py's zoo was
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
from pruning.estimate.microbench import stable_time_us  # noqa: E402
from pruning.estimate.runtime_bench import conv_chain_tflite  # noqa: E402


def main() -> None:
    host = get_profile("host")
    if not host.weight_stream_rows:
        raise SystemExit(
            "these host tables have no weight_stream_rows: run `python -m pruning.estimate calibrate-host`"
        )
    one_row = dataclasses.replace(host, weight_stream_rows=())
    print("| weights MiB | rows | measured ms | v7 estimate ms | v7 ratio | v8 estimate ms | v8 ratio |")
    print("|---|---|---|---|---|---|---|")
    errors: dict[str, list[float]] = {"v7": [], "v8": []}
    for channels in (256, 512, 1776):
        for pixels in (1, 2, 3, 4, 6, 8):
            tfl = conv_chain_tflite(channels, pixels)
            measured = stable_time_us(tfl, 0.4) / 1e3
            old, new = est.estimate(tfl, one_row)["estimate_ms"], est.estimate(tfl, host)["estimate_ms"]
            errors["v7"].append(abs(old / measured - 1))
            errors["v8"].append(abs(new / measured - 1))
            mib = 8 * channels * channels * 4 / 2**20
            print(
                f"| {mib:.0f} | {pixels * pixels} | {measured:.3f} | {old:.3f} | {old / measured:.2f} | {new:.3f} | "
                f"{new / measured:.2f} |",
                flush=True,
            )
    for k, v in errors.items():
        print(error_summary(k, v))


if __name__ == "__main__":
    main()
