"""Float export of a recurrent layer: the converter's WHILE loop against the steps unrolled (issue 13).

    .venv/bin/python bench/recurrent_unroll.py

The held-out conv1d_gru (bench/heldout.py) is only ~1.2x faster after a 50% channel cut because its GRU
runs as a WHILE loop whose ~21 small ops per step cost the runtime's per-op dispatch whatever their width
(docs "Held-out conv1d_gru"). This bench decides whether the engine's float export should unroll the
steps instead, and up to how many, on models that are NOT the held-out one: the device zoo's recurrent
architectures (bench/device_family_models.py gru_net / lstm_net, and a SimpleRNN of the same shape) at
16-128 time steps, dense (48 units) and "cut" (24 units, what a 50% unit cut leaves), each exported
float with the loop and unrolled. Untrained (latency does not depend on the weights' values).

Printed per row: ops in the file (loop body counted once), file size, LiteRT time (1 thread, XNNPACK,
interleaved medians, bench/engine_latency.py) of the loop and unrolled exports, and the cut's speedup
under each export. Results: bench/out/recurrent_unroll.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.engine_latency import interleaved_latency  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402
from pruning import export  # noqa: E402
from pruning.estimate.graph import parse  # noqa: E402

L = keras.layers
OUT = ROOT / "bench" / "out" / "recurrent_unroll.json"
CELLS = {"gru": L.GRU, "lstm": L.LSTM, "simple_rnn": L.SimpleRNN}


def recurrent(cell: str, steps: int, units: int, features: int = 16) -> keras.Model:
    x = inp = keras.Input((steps, features))
    x = CELLS[cell](units)(x)
    return keras.Model(inp, L.Dense(6)(x), name=f"{cell}_{steps}x{units}")


def exports(model: keras.Model) -> dict[str, bytes]:
    unrolled = export.unrolled(model)
    return {"loop": export._convert(model, "none", None), "unrolled": export._convert(unrolled, "none", None)}


def main() -> int:
    keras.utils.set_random_seed(0)
    rows = []
    for cell in CELLS:
        for steps in (16, 32, 64, 128):
            dense, cut = recurrent(cell, steps, 48), recurrent(cell, steps, 24)
            t0 = time.perf_counter()
            files = {name: exports(m) for name, m in (("dense", dense), ("cut", cut))}
            x = np.random.default_rng(0).normal(size=(1, steps, 16)).astype(np.float32)
            loop, unrolled = (export.predict(files["dense"][kind], x) for kind in ("loop", "unrolled"))
            same = float(np.max(np.abs(loop - unrolled)))
            row: dict[str, object] = {"cell": cell, "steps": steps, "export_s": round(time.perf_counter() - t0, 1)}
            row["max_abs_diff"] = same
            for kind in ("loop", "unrolled"):
                timing = interleaved_latency(files["dense"][kind], files["cut"][kind])
                row[kind] = {
                    "ops": len(parse(files["dense"][kind]).ops),
                    "kb": round(len(files["dense"][kind]) / 1024, 1),
                    **{k: round(v, 4) for k, v in timing.items()},
                    "estimate_ms": round(est.estimate(files["dense"][kind], get_profile("host"))["estimate_ms"], 4),
                    "cut_estimate_ms": round(est.estimate(files["cut"][kind], get_profile("host"))["estimate_ms"], 4),
                }
            rows.append(row)
            lp, un = row["loop"], row["unrolled"]
            print(
                f"{cell:10s} {steps:4d} steps  loop {lp['dense_ms']:.4f}/{lp['pruned_ms']:.4f} ms "  # type: ignore[index]
                f"x{lp['speedup']:.2f}  unrolled {un['dense_ms']:.4f}/{un['pruned_ms']:.4f} ms "  # type: ignore[index]
                f"x{un['speedup']:.2f}  dense unrolled/loop {un['dense_ms'] / lp['dense_ms']:.2f}  "  # type: ignore[index]
                f"ops {lp['ops']}->{un['ops']} kB {lp['kb']}->{un['kb']}  est/meas loop "  # type: ignore[index]
                f"{lp['estimate_ms'] / lp['dense_ms']:.2f} unrolled {un['estimate_ms'] / un['dense_ms']:.2f} "  # type: ignore[index]
                f"cut unrolled {un['cut_estimate_ms'] / un['pruned_ms']:.2f}",  # type: ignore[index]
                flush=True,
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
