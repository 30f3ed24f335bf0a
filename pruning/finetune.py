"""Masked fine-tuning: train with the masks held, and check they held after every epoch."""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from pruning.errors import PruningError
from pruning.masks import masked_nonzero


class MaskCheck(keras.callbacks.Callback):
    """Fails loudly if a masked weight ever comes back to life."""

    def __init__(self, variables: list[keras.Variable], masks: dict[str, np.ndarray]) -> None:
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


def finetune(
    model: keras.Model,
    x: np.ndarray,
    y: np.ndarray,
    *,
    loss: Any,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    variables: list[keras.Variable],
    masks: dict[str, np.ndarray],
    on_progress: Callable[[float], None],
) -> list[float]:
    """Train `epochs` epochs with the masks attached; returns the training loss per epoch."""
    if epochs <= 0:
        return []
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    history = model.fit(
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[MaskCheck(variables, masks), Progress(on_progress, epochs, -(-len(x) // batch_size))],
    )
    return [float(v) for v in history.history.get("loss", [])]
