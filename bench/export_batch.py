"""Exports with the batch fixed at 1 against a free batch (issue 14): what the change to pruning.export did.

    .venv/bin/python bench/export_batch.py      # prints the table; docs/benchmarks.md quotes it

The two transformer-lite models of bench/device_family_models.py, float32 and int8, exported twice through
pruning.export.to_tflite: as it is (batch fixed at 1) and with its fixed-batch input swapped for a free one (the
exporter before the change). Per file: op count, MACs the estimator reads from the file, measured LiteRT time
(1 thread, pruning.estimate.microbench.stable_time_us) and the host estimate's ratio to it.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.device_family_models import FAMILIES  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning.estimate import estimator  # noqa: E402
from pruning.estimate.microbench import stable_time_us  # noqa: E402
from pruning.export import to_tflite  # noqa: E402

MODELS = ("tiny_vit_32", "tiny_text_transformer")


@contextlib.contextmanager
def free_batch() -> Iterator[None]:
    """keras.Input(batch_shape=(1, ...)) made as keras.Input(shape=(...)): the exporter before the change."""
    real = keras.Input

    def free(*args: Any, batch_shape: Any = None, **kwargs: Any) -> Any:
        return real(shape=tuple(batch_shape[1:]), **kwargs) if batch_shape is not None else real(*args, **kwargs)

    keras.Input = free
    try:
        yield
    finally:
        keras.Input = real


def main() -> None:
    host = get_profile("host")
    builders = {name: build for family in FAMILIES.values() for name, build in family.items()}
    print("| model | dtype | batch | ops | MACs read (M) | measured us | estimate / measured |")
    print("|---|---|---|---|---|---|---|")
    for name in MODELS:
        for quantization in ("none", "int8"):
            keras.utils.set_random_seed(0)
            model = builders[name]()
            shape = tuple(int(d) for d in model.input_shape[1:])
            rep = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
            with free_batch():
                free = to_tflite(model, quantization, rep)
            for batch, tfl in (("free", free), ("fixed at 1", to_tflite(model, quantization, rep))):
                graph, costs = estimator.parsed(tfl)
                us = stable_time_us(tfl, 0.5)
                ratio = estimator.estimate(tfl, host)["estimate_ms"] * 1e3 / us
                dtype = "float32" if quantization == "none" else quantization
                print(f"| {name} | {dtype} | {batch} | {len(graph.ops)} | {sum(c.macs for c in costs) / 1e6:.2f} | "
                      f"{us:.1f} | {ratio:.2f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
