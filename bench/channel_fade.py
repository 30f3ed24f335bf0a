"""A prototype measured and NOT adopted (issue 13): gradual channel removal inside the fine-tuning budget,
the channels a cut will remove fading out of the dense model while it trains, removed once nothing reads them.

    .venv/bin/python bench/channel_fade.py vww_mobilenet_v1 3 0,1,2,3     # TUNING model, 3 epochs in all,
                                                                          # fading over 0 (one shot), 1, 2, 3 of them

On vww_mobilenet_v1 (50% of the channels, Adam 3e-3 warm-up + cosine per phase, the engine's recipe then)
it lost 56.5, 47.6 and 59.9 points fading over 1, 2 and 3 of 3 epochs, against 44.2 for the one-shot cut:
fading half of every layer's channels in 20-60 steps is no gentler than cutting them.

A one-shot 50% cut of a MobileNet leaves it at chance, and a few epochs cannot retrain it. Here every layer
that reads a doomed channel (the input slice of a convolution's or Dense layer's kernel, a recurrent
layer's kernel rows) has that slice scaled down step by step, linearly to zero over the fading steps,
while the optimizer keeps training everything: the rest of the network takes over what the doomed
channels did, gradually, as in soft filter pruning (He et al. 2018), which zeroes chosen filters but lets
training go on. When the slices are zero, removing the channels (pruning.surgery) changes no output.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # see bench/engine_harness.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

from bench.engine_harness import MODELS  # noqa: E402
from pruning.finetune import recalibrate_batchnorm  # noqa: E402
from pruning.graph import DEPTHWISE, RECURRENT, SEPARABLE, ChannelGraph, keep_indices  # noqa: E402
from pruning.nesting import flatten  # noqa: E402
from pruning.recipe import Recipe  # noqa: E402
from pruning.strategies import ChannelPruner  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402


def doomed_inputs(graph: ChannelGraph, kept: dict[int, set[int]]) -> list[tuple[keras.Variable, int, NDArray[Any]]]:
    """(kernel, input axis, indices) of every slice that reads a channel `kept` leaves out."""
    out, seen = [], set()
    for node in graph.nodes:
        layer = node.layer
        if not node.inputs or id(layer) in seen or getattr(layer, "groups", 1) != 1:
            continue
        if isinstance(layer, DEPTHWISE):
            continue  # passes channel c to channel c: it is part of the group, not a reader of it
        if isinstance(layer, SEPARABLE):
            kernel, axis = layer.depthwise_kernel, -2
        elif isinstance(layer, RECURRENT):
            kernel, axis = layer.cell.kernel, 0
        elif isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Dense):
            kernel, axis = layer.kernel, -2
        else:
            continue
        keep = keep_indices(graph.chan(node.inputs[0]), kept)
        if keep is None:
            continue
        doomed = np.setdiff1d(np.arange(kernel.shape[axis]), np.asarray(keep, dtype=int))
        if doomed.size:
            seen.add(id(layer))
            out.append((kernel, axis % len(kernel.shape), doomed))
    return out


class Fade(keras.callbacks.Callback):
    """After each training step t of `steps`, scales the doomed slices so that they stand at (1 - t/steps)
    of what training would leave them at; zero after the last step."""

    def __init__(self, targets: list[tuple[keras.Variable, int, NDArray[Any]]], steps: int) -> None:
        super().__init__()
        self.targets, self.steps, self.step = targets, max(1, steps), 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.step += 1
        before, now = 1 - (self.step - 1) / self.steps, max(0.0, 1 - self.step / self.steps)
        factor = now / before if before > 0 else 0.0
        for kernel, axis, doomed in self.targets:
            w = np.array(kernel)
            index = [slice(None)] * w.ndim
            index[axis] = doomed
            w[tuple(index)] *= factor
            kernel.assign(w)


def main() -> int:
    name, total, fades = sys.argv[1], int(sys.argv[2]), [int(a) for a in sys.argv[3].split(",")]
    dense_model, data, _ = MODELS[name][0]()
    loss = "sparse_categorical_crossentropy"
    steps = -(-len(data.x_train) // 64)

    def accuracy(m: keras.Model) -> float:
        return float((m.predict(data.x_val, verbose=0).argmax(-1) == data.y_val).mean())

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dense.keras"
        dense_model.save(path)
        for fade in fades:
            keras.utils.set_random_seed(1)
            model, _ = flatten(keras.saving.load_model(path))
            dense = accuracy(model)
            pruner = ChannelPruner(model, data, loss, "magnitude")
            graph, scores = pruner._scored(model)
            kept = pruner._kept(graph, scores, 0.5)
            recipe = Recipe(total, 3e-3, "Adam", {}, "cosine", None, 0.0)
            if fade:
                model.compile(optimizer=recipe.make_optimizer(steps * fade), loss=loss)
                fading = Fade(doomed_inputs(graph, kept), steps * fade)
                model.fit(data.x_train, data.y_train, batch_size=64, epochs=fade, verbose=0, callbacks=[fading])
            cut = remove_channels(graph, kept)
            recalibrate_batchnorm(cut, data.x_train)
            if total > fade:
                cut.compile(optimizer=recipe.make_optimizer(steps * (total - fade)), loss=loss)
                cut.fit(data.x_train, data.y_train, batch_size=64, epochs=total - fade, verbose=0)
                recalibrate_batchnorm(cut, data.x_train)
            print(
                f"{name}: {total} epochs, fading over {fade}: {100 * (dense - accuracy(cut)):+.1f} points", flush=True
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
