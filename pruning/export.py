"""Export to TensorFlow Lite, and run the exported file on data with LiteRT."""

import gzip
from typing import Any

import keras
import numpy as np

from pruning.errors import PruningError

REPRESENTATIVE_SAMPLES = 200


def to_tflite(model: keras.Model, quantization: str = "none", representative: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quantization == "int8":
        if representative is None or len(representative) == 0:
            raise PruningError("missing_data", "int8 export needs representative data to calibrate on")
        sample = representative[:REPRESENTATIVE_SAMPLES].astype(np.float32)

        def batches() -> Any:
            for row in sample:
                yield [row[None, ...]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif quantization != "none":
        raise PruningError("invalid_spec", f"unknown quantization {quantization!r}")
    try:
        return bytes(converter.convert())
    except Exception as exc:
        raise PruningError("export_failed", f"TFLite conversion failed: {str(exc).splitlines()[0][:500]}") from exc


def gzip_bytes(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def interpreter(tflite: bytes, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=tflite, num_threads=threads)


def predict(tflite: bytes, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs of the `.tflite` model on `x`, as float, (de)quantizing int8 inputs and outputs."""
    interp = interpreter(tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    results = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size].astype(np.float32)
        interp.resize_tensor_input(inp["index"], [len(chunk), *inp["shape"][1:]])
        interp.allocate_tensors()
        if inp["dtype"] in (np.int8, np.uint8):
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            chunk = np.clip(np.round(chunk / scale + zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], chunk)
        interp.invoke()
        result = interp.get_tensor(out["index"])
        if out["dtype"] in (np.int8, np.uint8):
            scale, zero = out["quantization"]
            result = (result.astype(np.float32) - zero) * scale
        results.append(np.asarray(result, dtype=np.float32))
    return np.concatenate(results)
