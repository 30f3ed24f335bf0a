"""FULLY_CONNECTED ops of several rows (issue 14): the check the change was decided on.

    .venv/bin/python bench/host_fc_rows.py     # prints the table; docs/benchmarks.md keeps it

A Dense layer on a sequence (a transformer's tokens, a per-step projection) is a FULLY_CONNECTED op of many
rows; XNNPACK runs it on the same GEMM micro-kernels as a 1x1 convolution, and keeps its 1-row kernel for a
batch-1 Dense. The host tables fit `fully_connected` on 1-row micro-benchmarks only (bandwidth-bound: a weight
is used once), so until this change a many-row FULLY_CONNECTED was costed as if each row re-read its weights.
Single Dense ops on (rows, depth) inputs, float and int8: micro-benchmarks, not zoo models. Each is measured
on this host and estimated with this host's tables twice: costed as `fully_connected` (before) and as
`conv1x1` (after: FULLY_CONNECTED ops of more than one row). bench/device_families.py's zoo was not used to
decide it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dataclasses  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import error_summary  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning.estimate import estimator  # noqa: E402
from pruning.estimate.costs import as_run  # noqa: E402
from pruning.estimate.microbench import stable_time_us  # noqa: E402
from pruning.export import to_tflite  # noqa: E402

CASES = [(4, 128, 128), (16, 128, 256), (64, 64, 128), (64, 128, 512), (196, 96, 384), (49, 256, 256), (256, 32, 32)]
"""(rows, depth, units)."""


def dense_tflite(rows: int, depth: int, units: int, quantization: str) -> bytes:
    """One Dense on a (1, rows, depth) input, the batch fixed at 1 as a device runs it (with a free batch the
    converter computes the FULLY_CONNECTED's input shape at run time, and the file's static shapes say 1 row)."""
    x = keras.Input(batch_shape=(1, rows, depth))
    model = keras.Model(x, keras.layers.Dense(units)(x))
    rep = np.random.default_rng(0).uniform(-1, 1, (32, rows, depth)).astype(np.float32)
    return to_tflite(model, quantization, rep)


def main() -> None:
    host = get_profile("host")
    one_row = dataclasses.replace(host, runtime_key="tables-as-fitted")  # as_run maps nothing: the costing before
    print("| dtype | rows x depth -> units | measured us | as fully_connected us | ratio | as conv1x1 us | ratio |")
    print("|---|---|---|---|---|---|---|")
    errors: dict[str, list[float]] = {"fully_connected": [], "conv1x1": []}
    for quantization in ("none", "int8"):
        for rows, depth, units in CASES:
            tfl = dense_tflite(rows, depth, units, quantization)
            measured = stable_time_us(tfl, 0.4)
            after = estimator.estimate(tfl, host)["estimate_ms"] * 1e3
            (fc,) = [c for c in estimator.parsed(tfl)[1] if c.op == "FULLY_CONNECTED"]
            assert as_run(fc, host).cls == "conv1x1", fc  # the estimator's costing since this change
            before = estimator.estimate(tfl, one_row)["estimate_ms"] * 1e3
            got = {"fully_connected": before, "conv1x1": after}
            for cls in errors:
                errors[cls].append(abs(got[cls] / measured - 1))
            a, b = got["fully_connected"], got["conv1x1"]
            dtype = "float32" if quantization == "none" else quantization
            print(
                f"| {dtype} | {rows} x {depth} -> {units} | {measured:.2f} | {a:.2f} | {a / measured:.2f} | {b:.2f} | "
                f"{b / measured:.2f} |",
                flush=True,
            )
    for k, v in errors.items():
        print(error_summary(f"as {k}", v))


if __name__ == "__main__":
    main()
