"""Recurrent layers converted as WHILE loops: the host estimate against LiteRT's measurement.

A float GRU, LSTM or SimpleRNN exports as a WHILE op whose body is another subgraph; the estimator
costs the body once per time step (pruning/estimate/graph.py). Models: one recurrent layer and a
Dense head on 10 features; none of them is in the host zoo or was used to fit a table.

    .venv/bin/python bench/estimate_loops.py
"""

import keras

from contract.devices import get_profile
from pruning.estimate.estimator import estimate
from pruning.estimate.graph import parse
from pruning.export import _convert
from pruning.host import measure_latency

MODELS = [("GRU", 49, 32), ("LSTM", 49, 64), ("GRU", 128, 64), ("SimpleRNN", 40, 32)]


def main() -> None:
    host = get_profile("host")
    print("| layer | steps | units | ops (loop inlined) | estimate ms | measured ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for cell, steps, units in MODELS:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((steps, 10)), getattr(keras.layers, cell)(units), keras.layers.Dense(4)])
        tflite = _convert(model, "none", None)  # the loop a user may upload; the engine unrolls
        est = estimate(tflite, host)["estimate_ms"]
        # the lowest of 3 medians (each of up to 300 runs)
        runs = [measure_latency(tflite, threads=1, warmup=10, runs=300, budget_s=1.0) for _ in range(3)]
        meas = min(float(r["measured_ms"]) for r in runs)
        print(f"| {cell} | {steps} | {units} | {len(parse(tflite).ops)} | {est:.4f} | {meas:.4f} | {est / meas:.2f} |")


if __name__ == "__main__":
    main()
