"""How to fine-tune after a cut when the job does not say: learning rate, schedule, epochs, teacher.

Explicit `finetune` settings always win. Otherwise:
- the learning rate is the one the uploaded model was compiled with (its own optimizer, rebuilt fresh:
  "learning-rate rewinding", Renda et al. 2020), times `CHANNEL_RATE_SCALE` for a channel cut with an
  Adam-family optimizer, or, for a model saved without one, the result of a short
  learning-rate range test on the training split (Smith 2017: a tenth of the rate of lowest loss);
- the schedule is a linear warm-up over the first 5% of the steps, then cosine decay to 1% of the rate;
- the number of epochs follows the cut and the data: a step budget that grows with the share removed
  (channels cost more than scattered weights), spread over the training split, at least `MIN_EPOCHS`
  and at most `MAX_EPOCHS`; training stops early once the validation metric is back within the guard
  (or within `EARLY_STOP_TOLERANCE` of the dense model when the job sets no guard);
- distillation from the dense model (Hinton et al. 2015: its outputs on the training split mixed with
  the labels, weight `DISTILL_WEIGHT`, temperature `DISTILL_TEMPERATURE`) is available with
  `finetune.distill: true` but off by default: on the three tuning models of bench/recovery.py it lost
  1-2 points against labels only at 3 epochs (docs/benchmarks.md, "Recovery recipes").

The batch is the job's (64 by default). A smaller one for channel cuts on small training splits (16: 4x the
steps for set epochs) was tried: better or equal on 13 of 15 tuning-model pairs (bench/channel_recovery.py),
but on the held-out set it lost on the nested MobileNetV2 (3 / 5 epochs: 14.1 / 2.2 -> 27.1 / 9.3 points) and
let the from-scratch control win three rows, so it was not kept (docs/benchmarks.md). The tuning model with
inverted residuals added afterwards (ir_mobilenetv2) shows the same failure: 46.5 points lost at 16, 4.8 at 64.

These constants were set before the held-out benchmark (bench/heldout.py) was run, which reports them.
`CHANNEL_RATE_SCALE` came later, chosen on the tuning models alone (bench/channel_recovery.py) before the
held-out channel rows were run again with it.
"""

import math
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

# Optimizer steps of fine-tuning per unit of cut: removing all of a model would get this many.
STEPS_PER_CUT = {"channel": 3000, "unstructured": 1200, "n_of_m": 1200}
MIN_EPOCHS, MAX_EPOCHS = 2, 60
WARMUP_SHARE = 0.05
EARLY_STOP_TOLERANCE = {"classification": 0.005, "regression": 0.02}
"""Without a guard: classification stops within half a point of the dense accuracy; regression within 2%
(relative) of the dense error."""
DISTILL_WEIGHT, DISTILL_TEMPERATURE = 0.5, 2.0
RANGE_TEST_STEPS, RANGE_TEST_LOW, RANGE_TEST_HIGH = 60, 1e-5, 1.0
RANGE_TEST_FLOOR = 1e-4
"""A range test whose lowest loss came at its first steps (a model cut so hard its loss is noise) would
choose a rate too small to train at all; 1e-4 is the smallest it may choose."""
CHANNEL_RATE_SCALE = 2.0
"""A channel cut fine-tunes at this multiple of the model's own compiled rate, for the Adam family only
(`SCALED_OPTIMIZERS`, whose steps do not grow with the gradient; all the models it was measured on were
compiled with Adam). A 50% cut can leave a MobileNet near chance: its fine-tuning is then a re-training more
than a polish, and a short budget needs larger steps; a cut that leaves the model close (inverted residuals)
is hurt by them. Chosen on the five tuning models alone (bench/channel_recovery.py, 3 epochs, seeds 0-3; the
rate that minimises the worst model's mean points lost, a rule set before the 2x rows were run): 1x / 2x /
3x lost on vww_mobilenet_v1 9.3 / 4.2 / 5.0, on ir_mobilenetv2 (seeds 0-2) 0.8 / -0.1 / 4.4; the three
others recover at any of them (within 1 point of each other). 3x was the default before (stop 24-28), chosen
when ir_mobilenetv2 was not yet a tuning model."""
SCALED_OPTIMIZERS = ("Adam", "AdamW", "Adamax", "Nadam")


@dataclass
class Recipe:
    epochs: int
    learning_rate: float
    optimizer: str
    optimizer_config: dict[str, Any]
    schedule: str
    early_stop: float | None
    """Stop once the validation drop is at most this (the headline metric's units); None runs every epoch."""
    distill: float
    why: dict[str, str] = field(default_factory=dict)
    batch_size: int = 64

    def make_optimizer(self, steps: int) -> keras.optimizers.Optimizer:
        """A fresh optimizer for a fine-tuning of `steps` steps."""
        rate: Any = self.learning_rate
        if self.schedule == "cosine":
            warmup = max(1, int(WARMUP_SHARE * steps))
            rate = keras.optimizers.schedules.CosineDecay(
                initial_learning_rate=self.learning_rate * 0.01,
                decay_steps=max(1, steps - warmup),
                alpha=0.01,
                warmup_target=self.learning_rate,
                warmup_steps=warmup,
            )
        cls = getattr(keras.optimizers, self.optimizer, keras.optimizers.Adam)
        return cls.from_config({**self.optimizer_config, "learning_rate": rate})

    def to_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "optimizer": self.optimizer,
            "schedule": self.schedule,
            "early_stop_within": self.early_stop,
            "distillation": {"weight": self.distill, "temperature": DISTILL_TEMPERATURE} if self.distill else None,
            "why": self.why,
        }


def compiled_optimizer(model: keras.Model) -> tuple[str, dict[str, Any], float] | None:
    """(class name, config, initial learning rate) of the optimizer the model was saved with, if any."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or not hasattr(keras.optimizers, type(optimizer).__name__):
        return None
    config = optimizer.get_config()
    rate = config.get("learning_rate")
    if isinstance(rate, dict):  # a schedule: start where it started
        rate = (rate.get("config") or {}).get("initial_learning_rate")
    if not isinstance(rate, int | float) or not 0 < rate <= 10:
        return None
    config = {k: v for k, v in config.items() if k not in ("learning_rate", "name", "iterations")}
    return type(optimizer).__name__, config, float(rate)


def range_test(model: keras.Model, x: Any, y: Any, loss: Any, batch_size: int, seed: int) -> float:
    """A tenth of the learning rate at which a short exponential sweep's smoothed loss was lowest.

    Runs on `model` and puts its weights back afterwards.
    """
    weights = model.get_weights()
    rng = np.random.default_rng(seed)
    rates = np.geomspace(RANGE_TEST_LOW, RANGE_TEST_HIGH, RANGE_TEST_STEPS)
    optimizer = keras.optimizers.Adam(float(rates[0]))
    model.compile(optimizer=optimizer, loss=loss)
    smoothed, best, best_rate = None, math.inf, 1e-3
    try:
        for step, rate in enumerate(rates):
            optimizer.learning_rate = float(rate)
            index = np.sort(rng.choice(len(x), min(batch_size, len(x)), replace=False))
            value = float(model.train_on_batch(x[index], y[index]))
            if not math.isfinite(value):
                break
            smoothed = value if smoothed is None else 0.8 * smoothed + 0.2 * value
            debiased = smoothed / (1 - 0.8 ** (step + 1))
            if debiased < best:
                best, best_rate = debiased, float(rate)
            elif debiased > 4 * best and step > 10:
                break  # diverged
    finally:
        model.set_weights(weights)
    return float(np.clip(best_rate / 10, RANGE_TEST_FLOOR, 1e-2))


def choose(
    model: keras.Model, data: Any, loss: Any, spec: Any, task: str, cut: float, guard: float | None, dense: float
) -> Recipe:
    """The fine-tuning recipe for `model` (already cut by `cut` of its channels or weights)."""
    why: dict[str, str] = {}
    steps_per_epoch = max(1, -(-len(data.x_train) // spec.batch_size))
    budget = STEPS_PER_CUT.get(spec.granularity, 1200) * max(cut, 0.05)
    chosen = int(min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(budget / steps_per_epoch))))
    if spec.epochs is not None:
        epochs, why["epochs"] = spec.epochs, f"set in the job ({spec.epochs * steps_per_epoch} steps)"
        if 0 < spec.epochs * steps_per_epoch < min(budget, chosen * steps_per_epoch):
            # Not an error (the user may want a quick run), but a short budget is the commonest reason a cut
            # comes back damaged: say what the engine would have allowed.
            why["epochs"] += (
                f"; SHORTER than the engine's budget for this cut ({chosen} epochs, {budget:.0f} steps, stopping "
                "early once recovered): leave epochs unset if the accuracy after is not good enough"
            )
    else:
        epochs = chosen
        why["epochs"] = (
            f"{budget:.0f} steps for a {cut:.0%} {spec.granularity} cut at {steps_per_epoch} steps per epoch, "
            f"between {MIN_EPOCHS} and {MAX_EPOCHS}; stops early once back within the guard"
        )
    saved = compiled_optimizer(model)
    config: dict[str, Any]
    if spec.learning_rate is not None:
        name, config, rate, schedule = "Adam", {}, spec.learning_rate, "constant"
        why["learning_rate"] = "set in the job (Adam, constant)"
    elif saved is not None:
        (name, config, rate), schedule = saved, "cosine"
        why["learning_rate"] = f"the model's own compiled optimizer ({name}, {rate:g}), rewound"
        if spec.granularity == "channel" and name in SCALED_OPTIMIZERS and CHANNEL_RATE_SCALE != 1:
            rate *= CHANNEL_RATE_SCALE
            why["learning_rate"] += (
                f", at {CHANNEL_RATE_SCALE:g}x its rate ({rate:.2g}): a channel cut is re-learnt more than polished, "
                "and 2x recovered best over the tuning models in 3 epochs (bench/channel_recovery.py)"
            )
    else:
        name, config, schedule = "Adam", {}, "cosine"
        rate = range_test(model, data.x_train, data.y_train, loss, spec.batch_size, spec.seed)
        why["learning_rate"] = (
            f"the model has no compiled optimizer: a {RANGE_TEST_STEPS}-step range test chose {rate:.2g}"
        )
    if schedule == "cosine":
        why["schedule"] = f"linear warm-up over {WARMUP_SHARE:.0%} of the steps, then cosine decay to 1%"
    early = None
    if spec.epochs is None:
        tolerance = EARLY_STOP_TOLERANCE[task] * (abs(dense) if task == "regression" else 1.0)
        early = guard if guard is not None else tolerance
    distill = 0.0
    if task == "classification" and getattr(spec, "distill", None):
        distill = DISTILL_WEIGHT
        why["distillation"] = "set in the job: the dense model's outputs mixed with the labels"
    return Recipe(epochs, float(rate), name, config, schedule, early, distill, why, spec.batch_size)
