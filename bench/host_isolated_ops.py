"""A zoo model's GEMM layers timed one by one against the whole model (issue 14): a diagnosis, nothing is fitted.

    .venv/bin/python bench/host_isolated_ops.py "residual (ResNet)" resnet50_64 int8

Each Conv2D, DepthwiseConv2D and Dense of the model (bench/device_family_models.py) is exported alone, with its
own weights and input shape, timed on this host (LiteRT, 1 thread, lowest of two medians) and estimated with this
host's tables. If the layers alone are estimated well and sum to much less than the whole model measures, the gap
is the model's (weights and activations that do not stay in cache between layers), not its ops'. Printed per
layer: shapes, weights, measured and estimated microseconds; then the sums. Rows: bench/out/host_isolated_ops.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.device_family_models import FAMILIES  # noqa: E402
from contract.devices import get_profile  # noqa: E402
from pruning import estimate as est  # noqa: E402
from pruning.export import to_tflite  # noqa: E402
from pruning.host import measure_latency  # noqa: E402

OUT = ROOT / "bench" / "out" / "host_isolated_ops.json"
LAYERS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)


def alone(layer: keras.layers.Layer) -> keras.Model:
    """`layer` with its weights, as the only layer of a model of its input shape."""
    x = keras.Input(tuple(int(d) for d in layer.input.shape[1:]))
    copy = layer.__class__.from_config(layer.get_config())
    y = copy(x)
    copy.set_weights(layer.get_weights())
    return keras.Model(x, y)


def main(family: str, name: str, quantization: str) -> int:
    host = get_profile("host")
    keras.utils.set_random_seed(0)
    model = FAMILIES[family][name]()
    rows = []
    for layer in (x for x in model.layers if isinstance(x, LAYERS)):
        single = alone(layer)
        shape = tuple(int(d) for d in single.input_shape[1:])
        rep = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
        tflite = to_tflite(single, quantization, rep)
        measured = min(measure_latency(tflite, threads=1)["measured_ms"] for _ in range(2)) * 1000
        estimate = est.estimate(tflite, host)["estimate_ms"] * 1000
        weights = sum(int(np.prod(w.shape)) for w in layer.get_weights())
        rows.append({"layer": layer.name, "input": shape, "weights": weights, "measured_us": measured,
                     "estimate_us": estimate})  # fmt: skip
        print(f"{layer.name:28s} {str(shape):18s} weights {weights:9d} measured {measured:8.2f} us "
              f"estimate {estimate:8.2f} us ratio {estimate / measured:.2f}", flush=True)  # fmt: skip
    measured, estimate = sum(r["measured_us"] for r in rows), sum(r["estimate_us"] for r in rows)
    print(f"{len(rows)} layers alone: measured {measured:.1f} us, estimated {estimate:.1f} us "
          f"(ratio {estimate / measured:.3f}); compare the whole model's row in bench/device_families.py")  # fmt: skip
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"model": name, "quantization": quantization, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    raise SystemExit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
