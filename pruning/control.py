"""The honest control (Liu et al. 2019, "Rethinking the value of network pruning"): the thinned
architecture a channel cut produced, re-initialised and trained from scratch for the same epochs with
the same optimizer and schedule, on the labels. If pruning does not beat it, the report says so."""

from typing import Any

import keras

from pruning import metrics, stream
from pruning.recipe import Recipe


def from_scratch(pruned: keras.Model, x: Any, y: Any, x_val: Any, y_val: Any, task: str, loss: Any,
                 recipe: Recipe, epochs: int, batch_size: int, seed: int) -> dict[str, Any]:  # fmt: skip
    """The validation metrics of `pruned`'s architecture trained from a fresh initialisation."""
    keras.utils.set_random_seed(seed)
    model = keras.models.clone_model(pruned)  # same layers and shapes, new initial weights
    steps = -(-len(x) // batch_size)
    model.compile(optimizer=recipe.make_optimizer(max(1, steps * epochs)), loss=loss)
    if epochs:
        model.fit(**stream.fit_input(x, y, batch_size), epochs=epochs, verbose=0)
    pred = stream.predict(model, x_val)
    return metrics.evaluate(pred, y_val, task)


def verdict(pruned_value: float, scratch_value: float, metric: str, task: str, epochs: int) -> dict[str, Any]:
    """How much pruning wins over the control, in the headline metric's units (positive = pruning better)."""
    wins = pruned_value - scratch_value if task == "classification" else scratch_value - pruned_value
    return {
        "metric": metric,
        "epochs": epochs,
        "pruned": pruned_value,
        "from_scratch": scratch_value,
        "pruning_wins_by": wins,
        "note": (
            f"pruning beat training the same architecture from scratch for {epochs} epochs"
            if wins > 0
            else f"pruning did NOT beat training the same architecture from scratch for {epochs} epochs: "
            "for this model and budget, a smaller model trained from scratch is as good"
        ),
    }
