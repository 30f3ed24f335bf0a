"""Export to TensorFlow Lite, and run the exported file on data with LiteRT."""

import gzip
from typing import Any

import flatbuffers
import keras
import numpy as np
from numpy.typing import NDArray

from contract.errors import PruningError
from pruning.tflite_file import stored_tensors

REPRESENTATIVE_SAMPLES = 200


UNROLL_STEPS = 32
"""Float recurrent layers with at most this many fixed time steps are exported unrolled. Decided on two runs of
bench/recurrent_unroll.py (GRU, LSTM and SimpleRNN of 48 and 24 units at 16-128 steps; not the held-out
models): up to 32 steps the unrolled file ran in 0.30-0.82x the loop's time for every cell in both runs, and a
50% unit cut gained 1.38-1.68x instead of 1.10-1.32x, since the loop's ~20 small ops a step cost the runtime's
dispatch whatever their width; at 64-128 steps a GRU ran 0.77-1.20x (slower in the second run) and LSTM
0.81-1.03x, and graphs of 1000-2000 ops are beyond what the host estimator was checked on. It costs file size:
about 3 kB a step (48-unit GRU at 32 steps 47 -> 136 kB)."""

_UNROLLED = (keras.layers.GRU, keras.layers.LSTM, keras.layers.SimpleRNN)
"""The layers `unrolled` turns into steps (ConvLSTM and other RNN subclasses keep their loop)."""


def recurrent_steps(model: keras.Model) -> list[int | None]:
    """Time steps of every recurrent layer's input, None where they are free, differ between the layer's calls,
    are not tracked (a layer inside Bidirectional or TimeDistributed) or the layer keeps its loop anyway."""

    def called_on(layer: keras.layers.Layer) -> int | None:
        seen = {t.shape[1] if len(t.shape) > 2 else None for n in layer._inbound_nodes for t in n.input_tensors[:1]}
        return seen.pop() if len(seen) == 1 else None

    pairs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Bidirectional)]
    wrapped = {id(inner): called_on(pair) for pair in pairs for inner in (pair.forward_layer, pair.backward_layer)}
    steps: list[int | None] = []
    for layer in (layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.RNN)):
        one = wrapped[id(layer)] if id(layer) in wrapped else called_on(layer)
        steps.append(one if isinstance(layer, _UNROLLED) and isinstance(one, int) else None)
    return steps


def recurrent_export(model: keras.Model, quantization: str) -> dict[str, Any] | None:
    """How `to_tflite` exports the model's recurrent layers (None: it has none), for the job's report."""
    steps = recurrent_steps(model)
    if not steps:
        return None
    if quantization == "int8":
        why = "the converter crashes quantizing a loop"
        return {"recurrent": "unrolled", "steps": steps, "note": f"recurrent layers unrolled over their steps: {why}"}
    if any(s is None for s in steps):
        note = "a recurrent layer without fixed (or trackable) time steps: the layers run as WHILE loops"
    elif max(s for s in steps if s is not None) > UNROLL_STEPS:
        note = f"more than {UNROLL_STEPS} time steps: the layers run as WHILE loops (smaller file, slower)"
    else:
        return {"recurrent": "unrolled", "steps": steps,
                "note": "recurrent layers unrolled over their time steps: LiteRT runs them faster than a WHILE "
                "loop's small ops, at about 3 kB of file a step"}  # fmt: skip
    return {"recurrent": "loop", "steps": steps, "note": note}


def unrolled(model: keras.Model) -> keras.Model:
    """The same model with every GRU, LSTM and SimpleRNN unrolled over its (fixed) time steps.

    TF 2.21's converter crashes the process (SIGSEGV) quantizing a recurrent loop to int8; unrolled, the steps
    are plain builtins it quantizes like any other layer (and run faster, `UNROLL_STEPS`).
    """
    config = model.get_config()
    names = {cls.__name__ for cls in _UNROLLED}

    def unroll(entry: Any) -> None:
        if isinstance(entry, list):
            for item in entry:
                unroll(item)
        elif isinstance(entry, dict):
            if entry.get("class_name") in names and isinstance(entry.get("config"), dict):
                entry["config"]["unroll"] = True
            for value in entry.values():  # Bidirectional's layers, a nested model's `layers`
                unroll(value)

    unroll(config["layers"])
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def to_tflite(model: keras.Model, quantization: str = "none", representative: NDArray[Any] | None = None) -> bytes:
    form = recurrent_export(model, quantization)
    if form is not None and quantization == "int8":
        if any(d is None for d in model.inputs[0].shape[1:]):
            raise PruningError(
                "export_failed",
                "int8 export of a recurrent model needs a fixed number of time steps (the converter crashes "
                "quantizing the loop); give the input a fixed length, or use float16 or dynamic_int8",
            )
        model = unrolled(model)
    elif form is not None and form["recurrent"] == "unrolled":
        model = unrolled(model)  # the engine's models were loaded from a .keras file: they rebuild from config
    # The batch fixed at 1, what a device runs. With a free batch the converter computes shapes at run time
    # (SHAPE, GATHER, PACK ... feeding a RESHAPE: 139 ops instead of 96 in a small ViT, and XNNPACK leaves a
    # computed RESHAPE to TFLite's kernels) and writes placeholder shapes into the file, so a Dense on a
    # sequence reads as one row to anything that reads the file; recurrent layers leave TensorList ops the
    # builtin kernels lack.
    return expand_dims_as_reshape(positive_zeros(_convert(model, quantization, representative)))


def _convert(model: keras.Model, quantization: str, representative: NDArray[Any] | None) -> bytes:
    import tensorflow as tf

    given = model.inputs[0]
    fixed = keras.Input(batch_shape=(1, *given.shape[1:]), dtype=given.dtype)  # token ids stay integers
    copy = keras.Model(fixed, model(fixed))  # the same layers and weights, called on a batch of one
    converter = tf.lite.TFLiteConverter.from_keras_model(copy)
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


_EXPAND_DIMS, _RESHAPE, _INT32 = 70, 22, 2
_FLOAT_WIDTHS = {0: 4, 1: 2}  # TensorType FLOAT32, FLOAT16: bytes per value (little-endian, sign in the last)


def positive_zeros(tflite: bytes) -> bytes:
    """Every -0.0 among the file's float weights written as +0.0 (the sign bit cleared).

    A pruned weight is a weight times a zero mask, and the converter folds BatchNorm scales into the
    kernels, so a negative weight or scale leaves -0.0 (bytes 00 00 00 80): it computes the same, but
    then about half the zeros of a pruned kernel differ from the other half, and gzip compresses those
    interleaved runs far worse (a DS-CNN with 80% of its weights pruned: 13% larger gzipped).
    """
    data = bytearray(tflite)
    done: set[int] = set()
    for tensor, raw in stored_tensors(data):
        width = _FLOAT_WIDTHS.get(tensor.Type())
        if width is None or tensor.Buffer() in done:
            continue
        done.add(tensor.Buffer())
        words = raw[: raw.size // width * width].reshape(-1, width)
        negative_zero = (words[:, -1] == 0x80) & ~words[:, :-1].any(axis=1)
        words[negative_zero, -1] = 0
    return bytes(data)


def expand_dims_as_reshape(tflite: bytes) -> bytes:
    """Rewrites every EXPAND_DIMS with a constant axis as the RESHAPE to its output's shape.

    The converter lowers Keras' 1D convolutions and pooling to EXPAND_DIMS + 2D op + RESHAPE. LiteRT's
    CPU delegate (XNNPACK) takes RESHAPE but not EXPAND_DIMS, so each EXPAND_DIMS runs as a builtin op
    between two delegate partitions; as a RESHAPE (the same operation on the same bytes) the whole graph
    is one partition. Files whose buffers live outside the flatbuffer (over 2 GB) are left as they are.
    """
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes or []]
    if _EXPAND_DIMS not in codes or any(b.offset > 1 for b in model.buffers or []):
        return tflite
    if _RESHAPE not in codes:
        model.operatorCodes.append(schema.OperatorCodeT(deprecatedBuiltinCode=_RESHAPE, builtinCode=_RESHAPE))
        codes.append(_RESHAPE)
    reshape = codes.index(_RESHAPE)
    changed = False
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if codes[op.opcodeIndex] != _EXPAND_DIMS or len(op.inputs) != 2:
                continue
            axis, out = graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
            signature = out.shapeSignature if out.shapeSignature is not None and len(out.shapeSignature) else None
            shape = [int(d) for d in (signature if signature is not None else out.shape)]
            if model.buffers[axis.buffer].data is None or not shape or sum(d < 0 for d in shape) > 1:
                continue  # a computed axis, an unknown rank or more than one unknown dimension: leave it
            model.buffers.append(schema.BufferT(data=np.frombuffer(np.asarray(shape, np.int32).tobytes(), np.uint8)))
            tensor = schema.TensorT()
            tensor.shape, tensor.type, tensor.buffer = [len(shape)], _INT32, len(model.buffers) - 1
            tensor.name = (out.name or b"") + b"/shape"
            graph.tensors.append(tensor)
            op.inputs = [op.inputs[0], len(graph.tensors) - 1]
            op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = reshape, 0, None
            changed = True
    if not changed:
        return tflite
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def gzip_bytes(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def interpreter(tflite: bytes, threads: int = 1) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=tflite, num_threads=threads)


def predict(tflite: bytes, x: NDArray[Any], batch_size: int = 256) -> NDArray[Any]:
    """Outputs of the `.tflite` model on `x`, as float, (de)quantizing int8 inputs and outputs. Batched where the
    file allows it; one row at a time where it does not (the batch is fixed at 1 in the file, and a RESHAPE to a
    stored shape either refuses a bigger batch or, with a free length, folds it into another axis: a batch whose
    output has another number of rows is done again row by row)."""
    interp = interpreter(tflite)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    row = list(np.shape(x)[1:])  # the data's own: a dimension the model leaves free is stored as 1 in the file
    try:
        interp.resize_tensor_input(inp["index"], [min(batch_size, len(x)), *row])
        interp.allocate_tensors()
    except RuntimeError:
        interp, batch_size = interpreter(tflite), 1
    results = []
    for start in range(0, len(x), batch_size):
        chunk = np.asarray(x[start : start + batch_size]).astype(np.float32)
        result = _run(interp, inp, out, chunk, row)
        if len(result) != len(chunk):
            if batch_size == 1:
                raise PruningError("export_failed", f"the exported model gave {len(result)} rows for 1 input row")
            return predict(tflite, x, batch_size=1)
        results.append(result)
    return np.concatenate(results)


def _run(interp: Any, inp: dict[str, Any], out: dict[str, Any], chunk: NDArray[Any], row: list[int]) -> NDArray[Any]:
    interp.resize_tensor_input(inp["index"], [len(chunk), *row])
    interp.allocate_tensors()
    if inp["dtype"] in (np.int8, np.uint8):
        scale, zero = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        chunk = np.clip(np.round(chunk / scale + zero), info.min, info.max).astype(inp["dtype"])
    elif inp["dtype"] != np.float32:  # token ids: an integer input the converter kept
        chunk = chunk.astype(inp["dtype"])
    interp.set_tensor(inp["index"], chunk)
    interp.invoke()
    result = interp.get_tensor(out["index"])
    if out["dtype"] in (np.int8, np.uint8):
        scale, zero = out["quantization"]
        result = (result.astype(np.float32) - zero) * scale
    return np.asarray(result, dtype=np.float32)
