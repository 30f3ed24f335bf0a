"""Time of the least-squares re-fit after a 50% channel cut (pruning/reconstruct.py), the layer inputs computed
8 samples a Keras call (as until 2026-12-08) against chunks of up to `ACTIVATION_BYTES` (the engine now), and the
largest difference between the weights the two give (each repeat's pair; relative to the largest weight of a tensor).

    .venv/bin/python bench/reconstruct_speed.py [--repeats 3] [--models NAME ...]

Models built untrained (timing and equality do not depend on training): the three tuning models of
pruning.architectures and a transfer-learning MobileNetV2 0.35 backbone at 96 px (keras.applications,
weights=None). 300 random inputs, every other channel of each prunable group kept. Interleaved, the median of
`--repeats` kept. Results: docs/benchmarks.md, "Channel cut: time of the least-squares re-fit".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine_harness.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from pruning import architectures, reconstruct  # noqa: E402
from pruning.graph import analyse  # noqa: E402
from pruning.nesting import flatten  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402


def _transfer_mobilenetv2() -> keras.Model:
    backbone = keras.applications.MobileNetV2((96, 96, 3), alpha=0.35, include_top=False, weights=None)
    layers = [keras.Input((96, 96, 3)), backbone, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    return keras.Sequential(layers)


MODELS: dict[str, Any] = {
    "kws_dscnn": architectures.kws_dscnn,
    "ic_resnet8": architectures.ic_resnet8,
    "vww_mobilenet_v1": architectures.vww_mobilenet_v1,
    "mobilenetv2_0.35_96px (nested)": _transfer_mobilenetv2,
}


def _refit(model: keras.Model, x: np.ndarray, activation_bytes: int) -> tuple[float, list[np.ndarray], int]:
    reconstruct.ACTIVATION_BYTES = activation_bytes
    graph = analyse(model)
    kept = {g.id: set(range(0, g.size, 2)) for g in graph.groups.values() if g.frozen is None}
    pruned = remove_channels(graph, kept)
    started = time.perf_counter()
    done, _ = reconstruct.reconstruct(graph, kept, pruned, x)
    return time.perf_counter() - started, pruned.get_weights(), len(done)


def _largest_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The largest difference between two sets of weights, relative to the largest weight of its tensor."""
    return max(float(np.max(np.abs(p - q)) / (np.max(np.abs(p)) or 1.0)) for p, q in zip(a, b, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    chunked = reconstruct.ACTIVATION_BYTES
    print("| model | layers re-fitted | 8 samples a call, s | chunks, s | speedup | largest weight difference |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        keras.utils.set_random_seed(0)
        model, _ = flatten(MODELS[name]())
        x = np.random.default_rng(0).uniform(0, 1, (reconstruct.SAMPLES, *model.inputs[0].shape[1:])).astype("float32")
        times: dict[int, list[float]] = {1: [], chunked: []}
        differences, layers = [], 0
        for _ in range(args.repeats):
            weights = {}
            for activation_bytes in (1, chunked):  # 1 byte: a chunk of `BATCH` samples, the old call pattern
                seconds, weights[activation_bytes], layers = _refit(model, x, activation_bytes)
                times[activation_bytes].append(seconds)
            differences.append(_largest_difference(weights[1], weights[chunked]))
        old, new = statistics.median(times[1]), statistics.median(times[chunked])
        row = f"| {name} | {layers} | {old:.2f} | {new:.2f} | {old / new:.1f}x | {max(differences):.1e} |"
        print(row, flush=True)
    reconstruct.ACTIVATION_BYTES = chunked


if __name__ == "__main__":
    main()
