"""What an uploaded Keras file holds - parameters, input shape, layers - read from its config and
weights file without building the model. Pure Python and h5py: no TensorFlow, so fast and safe
enough to run in the API process (after `contract.safety` has checked the file)."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

from contract.errors import PruningError


def _weights_count(handle: Any, root: str) -> int:
    import h5py

    total = 0

    def visit(_name: str, obj: Any) -> None:
        nonlocal total
        if isinstance(obj, h5py.Dataset):
            total += int(obj.size)

    group = handle.get(root)
    if group is None:
        raise PruningError("corrupt_model", f"the weights file has no {root!r} group")
    group.visititems(visit)
    return total


FLATTENING = {
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
}


def _model_config(config: dict[str, Any]) -> tuple[list[Any] | None, int | None, list[Any] | None]:
    """(input shape, layer count, output shape) from a Sequential or functional model config."""
    inner = config.get("config") or {}
    layers = inner.get("layers") or []
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    shape = None
    if inputs:
        layer_config = inputs[0].get("config") or {}
        shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
    elif inner.get("build_input_shape"):
        shape = inner["build_input_shape"]
    elif layers and (layers[0].get("config") or {}).get("batch_input_shape"):
        shape = layers[0]["config"]["batch_input_shape"]
    last = (layers[-1].get("config") or {}) if layers else {}
    # A Dense head on a flat tensor is the common case whose output shape is known without a build.
    flat = shape is not None and len(shape) == 2
    flat = flat or any(layer.get("class_name") in FLATTENING for layer in layers)
    output = [None, last["units"]] if "units" in last and flat else None
    count = len([layer for layer in layers if layer.get("class_name") != "InputLayer"]) or None
    return (list(shape) if shape else None), count, output


def describe_file(path: Path, fmt: str) -> dict[str, Any]:
    """`{params, input_shape, output_shape, layers}` of a `.keras` or `.h5` model file."""
    import h5py

    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                config = json.loads(archive.read("config.json"))
                if "model.weights.h5" not in archive.namelist():
                    raise PruningError("corrupt_model", "the .keras archive has no model.weights.h5")
                with h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as weights:
                    params = _weights_count(weights, "layers")
        elif fmt == "h5":
            with h5py.File(path, "r") as handle:
                raw = handle.attrs.get("model_config")
                if raw is None:
                    raise PruningError(
                        "corrupt_model", "the HDF5 file holds weights only, no model (save the whole model)"
                    )
                config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
                params = _weights_count(handle, "model_weights")
        else:
            raise PruningError("unsupported_model", f"cannot describe a {fmt!r} file statically")
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise PruningError("corrupt_model", f"the model file cannot be read: {exc}") from exc
    input_shape, layers, output_shape = _model_config(config)
    if input_shape is None:
        raise PruningError("unsupported_model", "the model has no fixed input shape (build it with keras.Input)")
    return {"params": params, "input_shape": input_shape, "output_shape": output_shape, "layers": layers}
