"""Masked fine-tuning: train with the masks held, and check they held after every epoch."""

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError
from pruning import stream
from pruning.masks import masked_nonzero


class MaskCheck(keras.callbacks.Callback):
    """Fails loudly if a masked weight ever comes back to life."""

    def __init__(self, variables: list[keras.Variable], masks: dict[str, NDArray[Any]]) -> None:
        super().__init__()
        self.variables, self.masks = variables, masks

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        revived = masked_nonzero(self.variables, self.masks)
        if revived:
            raise PruningError("mask_violation", f"{revived} masked weights became non-zero in epoch {epoch + 1}")


class Progress(keras.callbacks.Callback):
    """Reports after every batch, so a cancel takes effect within one batch of being seen."""

    def __init__(self, report: Callable[[float], None], epochs: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.report, self.epochs, self.steps = report, max(epochs, 1), max(steps_per_epoch, 1)
        self.epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        self.report((self.epoch + (batch + 1) / self.steps) / self.epochs)


# BatchNorm statistics are re-estimated after fine-tuning (see recalibrate_batchnorm), and before each
# early-stopping check (see EarlyStop).
RECALIBRATE = True
RECALIBRATE_BEFORE_STOP = True
RECALIBRATION_SAMPLES = 2048


def recalibrate_batchnorm(model: keras.Model, x: NDArray[Any], batch_size: int = 256) -> int:
    """Re-estimate every BatchNorm's moving mean and variance as the plain average of its batch
    statistics over (a sample of) `x`, whatever its momentum; no other weight changes.

    Pruning shifts what each BatchNorm sees, and a few epochs with momentum 0.99 leave the moving
    statistics far from the new ones. Returns how many BatchNorm layers were recalibrated.
    """
    layers = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    if not layers or len(x) == 0:
        return 0
    momenta = [layer.momentum for layer in layers]
    # Evenly spaced rows, so a split sorted by class still gives every class its share.
    sample = x[:: max(1, len(x) // RECALIBRATION_SAMPLES)][:RECALIBRATION_SAMPLES]
    try:
        for k, start in enumerate(range(0, len(sample), batch_size), start=1):
            # Momentum (k-1)/k turns the moving update into a running mean over the batches.
            for layer in layers:
                layer.momentum = (k - 1) / k
            model(sample[start : start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
    return len(layers)


class Distilled(keras.losses.Loss):
    """The task loss mixed with the dense teacher's (Hinton et al. 2015), from targets packed as
    `[labels..., teacher logits...]` so that `fit` needs no custom training step."""

    def __init__(self, task_loss: Any, classes: int, weight: float, temperature: float, from_logits: bool) -> None:
        super().__init__(name="distilled")
        # Kept as given (a name or a Keras loss object): the model is recompiled with it after fitting,
        # and a checkpoint's compile config must name only what the upload check accepts.
        self.task_loss = task_loss
        self._task = keras.losses.get(task_loss) if isinstance(task_loss, str) else task_loss
        self.classes, self.weight, self.temperature, self.from_logits = classes, weight, temperature, from_logits

    def call(self, y_true: Any, y_pred: Any) -> Any:
        ops = keras.ops
        labels, teacher = y_true[:, : -self.classes], y_true[:, -self.classes :]
        if self.classes > 1 and labels.shape[-1] == 1:
            labels = labels[:, 0]
        task = self._task(labels, y_pred)
        student = y_pred if self.from_logits else ops.log(ops.clip(y_pred, 1e-7, 1.0))
        t = self.temperature
        soft_teacher = ops.softmax(teacher / t, axis=-1)
        kd = ops.sum(soft_teacher * (ops.log_softmax(teacher / t, axis=-1) - ops.log_softmax(student / t, axis=-1)), -1)
        return (1 - self.weight) * task + self.weight * t * t * kd


def teacher_targets(y: NDArray[Any], teacher: NDArray[Any], from_logits: bool) -> NDArray[Any]:
    """Labels and the teacher's logits side by side, as `Distilled` reads them."""
    logits = teacher if from_logits else np.log(np.clip(teacher, 1e-7, 1.0))
    labels = y.reshape(len(y), -1).astype("float32")
    return np.concatenate([labels, logits.astype("float32")], axis=1)


class EarlyStop(keras.callbacks.Callback):
    """Stops once `done(model)` says the validation metric is back; remembers the epoch.

    With `recalibrate_on` it first re-estimates the BatchNorm statistics on those samples, as they will be
    after the fine-tuning: the moving averages lag behind a model trained at a high rate, and judged on
    them it kept training for epochs after it had recovered (bench/channel_recovery.py)."""

    def __init__(self, done: Callable[[keras.Model], bool], recalibrate_on: NDArray[Any] | None = None) -> None:
        super().__init__()
        self.done, self.recalibrate_on = done, recalibrate_on
        self.stopped_after: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.recalibrate_on is not None:
            recalibrate_batchnorm(self.model, self.recalibrate_on)
        if self.done(self.model):
            self.stopped_after = epoch + 1
            self.model.stop_training = True


def finetune(
    model: keras.Model,
    x: NDArray[Any],
    y: NDArray[Any],
    *,
    loss: Any,
    epochs: int,
    batch_size: int,
    optimizer: Callable[[int], keras.optimizers.Optimizer],
    variables: list[keras.Variable],
    masks: dict[str, NDArray[Any]],
    on_progress: Callable[[float], None],
    stop: Callable[[keras.Model], bool] | None = None,
    augment: dict[str, Any] | None = None,
    graph: keras.Model | None = None,
    callbacks: tuple[keras.callbacks.Callback, ...] = (),
) -> tuple[list[float], int | None]:
    """Train up to `epochs` epochs with the masks attached, with `optimizer(total_steps)`.

    `graph`, when given, is what is trained: a graph that calls `model`'s own layers (pruning.qat's
    fake-quantized one), with `callbacks` around its steps. Returns the training loss per epoch and the
    epoch it stopped early after (None: it ran them all). A `Distilled` loss is swapped for its task loss
    afterwards, so the saved model names only Keras's own.
    """
    if epochs <= 0:
        return [], None
    steps = -(-len(x) // batch_size)
    trained = model if graph is None else graph
    trained.compile(optimizer=optimizer(steps * epochs), loss=loss)
    early = EarlyStop(stop, x if RECALIBRATE and RECALIBRATE_BEFORE_STOP else None) if stop is not None else None
    history = trained.fit(
        **stream.fit_input(x, y, batch_size, augment),
        epochs=epochs,
        verbose=0,
        callbacks=[
            *callbacks,
            MaskCheck(variables, masks),
            Progress(on_progress, epochs, steps),
            *([early] if early else []),
        ],
    )
    if isinstance(loss, Distilled):
        model.compile(optimizer=keras.optimizers.Adam(), loss=loss.task_loss)
    if RECALIBRATE:
        recalibrate_batchnorm(model, x)
    return [float(v) for v in history.history.get("loss", [])], early.stopped_after if early else None


def write_tensorboard(rounds: list[dict[str, Any]], metric: str, workdir: Path) -> str:
    """TensorBoard event files of the fine-tuning in `workdir/tensorboard/`, packed as `tensorboard.tar.gz`.

    Written from the report's rounds, so a run resumed from a checkpoint still has every round:
    `epoch/train_loss` per epoch (step = epochs so far) and, per round (step = round number),
    `round/val_<metric>`, `round/val_loss` and `round/sparsity`. Returns the archive's name.
    """
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    # What tensorboard's own scalar summary writes; tf.summary.scalar itself needs that package.
    scalar = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )
    folder = workdir / "tensorboard"
    writer = tf.summary.create_file_writer(str(folder))
    epoch = 0
    with writer.as_default():
        for number, r in enumerate(rounds, start=1):
            for loss in r.get("train_loss") or []:
                epoch += 1
                tf.summary.write("epoch/train_loss", tf.constant(loss, tf.float32), step=epoch, metadata=scalar)
            figures = {f"val_{metric}": (r.get("val") or {}).get(metric), "val_loss": (r.get("val") or {}).get("loss")}
            for tag, value in {**figures, "sparsity": r.get("sparsity")}.items():
                if isinstance(value, int | float):
                    step = int(r.get("step", number))
                    tf.summary.write(f"round/{tag}", tf.constant(value, tf.float32), step=step, metadata=scalar)
    writer.close()
    with tarfile.open(workdir / "tensorboard.tar.gz", "w:gz") as tar:
        tar.add(folder, arcname="tensorboard")
    return "tensorboard.tar.gz"
