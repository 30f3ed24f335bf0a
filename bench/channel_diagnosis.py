"""Why a 50% channel cut collapses on a MobileNet at 3-5 epochs (issue 13): looking for bugs, not tuning.

    .venv/bin/python bench/channel_diagnosis.py nested_mobilenetv2 3e-3,1e-3,3e-4,1e-4   # held-out: diagnosis only
    .venv/bin/python bench/channel_diagnosis.py vww_mobilenet_v1 1e-2,3e-3                # tuning model

Trains the dense model as its bench does (bench/heldout.py or bench/engine_harness.py), flattens it as the
engine does, and prints the validation accuracy: dense, dense after BatchNorm recalibration, after cuts of
0/10/25/50% of every group's channels (magnitude scores) before and after recalibration, then after 3
epochs of fine-tuning the 50% cut at each rate (Adam, warm-up + cosine as pruning/recipe.py builds it).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine_harness.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402

from bench import heldout  # noqa: E402
from bench.engine_harness import MODELS, _train  # noqa: E402
from pruning import strategies  # noqa: E402
from pruning.finetune import recalibrate_batchnorm  # noqa: E402
from pruning.loading import load_model  # noqa: E402
from pruning.nesting import flatten  # noqa: E402
from pruning.recipe import Recipe  # noqa: E402


def main() -> int:
    name, rates = sys.argv[1], [float(r) for r in sys.argv[2].split(",")]
    keras.utils.set_random_seed(0)
    if name in heldout.MODELS:
        model, data, epochs = heldout.MODELS[name]()
        for layer in model._flatten_layers():
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9  # as bench/heldout.py sets it
        _train(model, data, epochs)
    else:
        model, data, _ = MODELS[name][0]()
    loss = "sparse_categorical_crossentropy"

    def accuracy(m: keras.Model) -> str:
        return f"{100 * float((m.predict(data.x_val, verbose=0).argmax(-1) == data.y_val).mean()):.1f}%"

    strategies.RECALIBRATE_AFTER_PRUNE = False
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp) / "dense.keras")
        flat, _ = flatten(load_model(Path(tmp) / "dense.keras"))
        print(f"{name}: dense {accuracy(flat)}", flush=True)
        pruner = strategies.ChannelPruner(flat, data, loss, "magnitude")
        for share in (0.0, 0.1, 0.25, 0.5):
            cut = pruner.prune(flat, share)
            raw = accuracy(cut)
            recalibrate_batchnorm(cut, data.x_train)
            print(f"{name}: {share:.0%} cut {raw}, recalibrated {accuracy(cut)}", flush=True)
        start = cut.get_weights()
        steps = -(-len(data.x_train) // 64)
        for rate in rates:
            keras.utils.set_random_seed(1)
            cut.set_weights(start)
            cut.compile(optimizer=Recipe(3, rate, "Adam", {}, "cosine", None, 0.0).make_optimizer(3 * steps), loss=loss)
            after = []
            for _ in range(3):
                cut.fit(data.x_train, data.y_train, batch_size=64, epochs=1, verbose=0)
                after.append(accuracy(cut))
            recalibrate_batchnorm(cut, data.x_train)
            print(f"{name}: 50% cut, rate {rate:g}, after each epoch {after}, recalibrated {accuracy(cut)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
