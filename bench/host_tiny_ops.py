"""Chains of tiny ops, float32 and int8, short and long: the host estimate against LiteRT (issue 14, tables v9).

    .venv/bin/python bench/host_tiny_ops.py

An unrolled recurrent cell (bench/recurrent_unroll.py) is hundreds of ops on vectors of a few dozen values. Host
tables version 9 add what each op of a long graph costs beyond the per-op overhead (`graph_op_overhead`, fitted
on chains of 33, 129 and 401 float ADDs on 8 values: pruning/estimate/runtime_bench.py). This bench checks it on
chains the calibration never timed: two-input ADD, MUL and SUB, and LOGISTIC or TANH each followed by an ADD,
on a (1, 48) vector, float32 and int8, 1, 65 and 301 steps. Micro-benchmarks only: no zoo model.
Printed: ops, measured and estimated microseconds, their ratio. Results: bench/out/host_tiny_ops.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import error_summary  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402
from pruning.export import to_tflite  # noqa: E402
from pruning.host import measure_latency  # noqa: E402

L = keras.layers
OUT = ROOT / "bench" / "out" / "host_tiny_ops.json"
WIDTH = 48
KINDS = ("add", "mul", "sub", "sigmoid_add", "tanh_add")
STEPS = (1, 65, 301)


def _step(kind: str, z: Any, x: Any) -> Any:
    if kind == "add":
        return L.Add()([z, x])
    if kind == "mul":
        return L.Multiply()([z, x])
    if kind == "sub":
        return L.Subtract()([x, z])
    if kind == "sigmoid_add":
        return L.Add()([keras.activations.sigmoid(z), x])
    return L.Add()([keras.activations.tanh(z), x])


def chain(kind: str, steps: int) -> keras.Model:
    x = keras.Input((WIDTH,))
    z = x
    for _ in range(steps):
        z = _step(kind, z, x)
    return keras.Model(x, z)


def main() -> int:
    host = get_profile("host")
    rep = np.random.default_rng(0).uniform(-1, 1, (64, WIDTH)).astype(np.float32)
    rows: list[dict[str, Any]] = []
    for kind in KINDS:
        for quant in ("none", "int8"):
            for steps in STEPS:
                tflite = to_tflite(chain(kind, steps), quant, rep)
                measured = min(measure_latency(tflite, threads=1)["measured_ms"] for _ in range(3)) * 1000
                estimate = est.estimate(tflite, host)["estimate_ms"] * 1000
                ops = len(est.breakdown(tflite, host))
                dtype = "float32" if quant == "none" else quant
                rows.append({"kind": kind, "dtype": dtype, "steps": steps, "ops": ops, "measured_us": measured,
                             "estimate_us": estimate, "ratio": estimate / measured})  # fmt: skip
                print(f"{kind:12s} {dtype:8s} {ops:4d} ops  measured {measured:7.2f} us  estimate {estimate:7.2f} us"
                      f"  ratio {estimate / measured:.2f}", flush=True)  # fmt: skip
    long = [r for r in rows if r["steps"] > 1]
    print(error_summary("chains of 65-301 steps", [abs(r["ratio"] - 1) for r in long]))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
