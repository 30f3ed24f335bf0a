"""What ships: the exported `.tflite`, judged on the validation split, and the quantization path taken.

With `quantization: none` the `.tflite` is the Keras model converted. Quantized (`float16`, `int8`,
`dynamic_int8`), the exported file is what the guard judges. When post-training int8 loses more than the
guard allows although the Keras model met it, the model is fine-tuned with fake-quantized kernels that
keep its zeros (pruning.qat) and exported again; whichever `.tflite` scores better ships, and the report's
`quantization` block says which path was taken and what each cost.
"""

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
from numpy.typing import NDArray

from pruning import export, metrics, qat
from pruning.datasets import Data
from pruning.recipe import Recipe


@dataclass
class Shipped:
    tflite: bytes
    val: dict[str, Any]
    """The `.tflite`'s metrics on the validation split."""
    pred: NDArray[Any]
    broke_guard: bool
    """The exported model loses more than the guard allows (the Keras model met it)."""
    quantization: dict[str, Any] | None


def _judge(tflite: bytes, data: Data) -> tuple[NDArray[Any], dict[str, Any]]:
    pred = export.predict(tflite, data.x_val)
    return pred, metrics.evaluate(pred, data.y_val, data.task)


def ship(
    model: keras.Model,
    data: Data,
    *,
    quantization: str,
    loss: Any,
    recipe: Recipe,
    batch_size: int,
    before: dict[str, Any],
    guard: float | None,
    quantization_aware: str,
    log: Callable[[str], None],
    on_progress: Callable[[float], None],
) -> Shipped:
    """Export `model` (fine-tuning it with fake quantization first when int8 needs it) and judge the file.

    `quantization_aware`: "auto" (only when post-training int8 breaks the guard), "always" or "never".
    """
    task, key = data.task, metrics.headline(data.task)
    started = time.perf_counter()
    tflite = export.to_tflite(model, quantization, data.x_train)
    pred, val = _judge(tflite, data)
    if quantization == "none":
        return Shipped(tflite, val, pred, False, None)
    drop = metrics.drop(before, {"val": val}, task)
    broke = guard is not None and drop > guard
    block: dict[str, Any] = {
        "path": "post_training",
        "post_training": {"after": val[key], "drop": drop, "seconds": round(time.perf_counter() - started, 3)},
    }
    wanted = quantization_aware == "always" or (quantization_aware == "auto" and broke)
    if quantization != "int8" or not wanted:
        if broke:
            why = (
                "quantization-aware fine-tuning applies to int8 only"
                if quantization != "int8"
                else "quantization-aware fine-tuning was turned off in the job (quantization_aware: never)"
            )
            block["note"] = f"post-training {quantization} loses {drop:.4f} > the guard {guard}; {why}"
        return Shipped(tflite, val, pred, broke, block)

    log(
        f"post-training int8 loses {drop:.4f}"
        + (f" > the guard {guard}" if broke else "")
        + f": fine-tuning with fake-quantized kernels for {qat.QAT_EPOCHS} epoch(s)"
    )
    started = time.perf_counter()
    float_weights = model.get_weights()
    rate = recipe.learning_rate * qat.QAT_RATE_SHARE
    scaled = dataclasses.replace(recipe, learning_rate=rate, distill=0.0)
    done = qat.finetune_quantized(
        model,
        data.x_train,
        data.y_train,
        loss=loss,
        epochs=qat.QAT_EPOCHS,
        batch_size=batch_size,
        optimizer=scaled.make_optimizer,
        on_progress=on_progress,
    )
    aware = export.to_tflite(model, quantization, data.x_train)
    aware_pred, aware_val = _judge(aware, data)
    aware_drop = metrics.drop(before, {"val": aware_val}, task)
    block["quantization_aware"] = {
        **done,
        "learning_rate": rate,
        "after": aware_val[key],
        "drop": aware_drop,
        "seconds": round(time.perf_counter() - started, 3),
    }
    better = aware_drop < drop
    if better:
        block["path"] = "quantization_aware"
        tflite, pred, val, drop = aware, aware_pred, aware_val, aware_drop
    else:
        model.set_weights(float_weights)  # the Keras model that ships is the one exported
    broke = guard is not None and drop > guard
    block["note"] = (
        f"post-training int8 lost {block['post_training']['drop']:.4f}, quantization-aware fine-tuning "
        f"{aware_drop:.4f}: the {'quantization-aware' if better else 'post-training'} model ships"
        + (f"; it still loses more than the guard {guard}" if broke else "")
    )
    log(block["note"])
    return Shipped(tflite, val, pred, broke, block)
