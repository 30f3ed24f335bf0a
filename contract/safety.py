"""Static checks of an uploaded model before anything loads it. Pure Python: no TensorFlow.

Keras `safe_mode` already refuses Lambda bytecode; this goes further and allows only Keras's
own classes: a `.keras` archive whose `config.json` names a custom object, a foreign module or
a layer that wraps another framework's code (`TFSMLayer`, `TorchModuleWrapper`, ...) is refused
before it is opened by Keras. HDF5 files that point at data outside themselves are refused too.
"""

import json
import zipfile
from pathlib import Path
from typing import Any

from contract.errors import PruningError

ALLOWED_MODULES = {
    "keras",
    "keras.layers",
    "keras.initializers",
    "keras.regularizers",
    "keras.constraints",
    "keras.optimizers",
    "keras.optimizers.schedules",
    "keras.losses",
    "keras.metrics",
    "keras.activations",
    "keras.models",
    "keras.src.models.functional",
    "keras.src.models.sequential",
    "keras.src.models.model",
    # The operations a functional graph records for plain arithmetic on tensors (`x + 3.0` in
    # MobileNetV3's hard sigmoid): Keras's own stateless math, configured by numbers only.
    "keras.src.ops.numpy",
    "keras.src.ops.nn",
    "keras.src.ops.math",
}
# Keras classes that run code from outside the archive's config: refused even from Keras itself.
REFUSED_CLASSES = {"Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "TFOpLambda", "Vectorize"}

MAX_MEMBERS = 10_000
MAX_TOTAL_BYTES = 8 * 1024**3
MAX_RATIO = 200


def check_config(config: Any, where: str = "config", legacy: bool = False) -> None:
    """Walk a Keras config; every serialized object must be a known, code-free Keras class.

    Legacy HDF5 configs name no module; there a class outside Keras cannot be resolved at load
    time at all (Shears passes no custom objects), so only the code-running classes are refused.
    """
    if isinstance(config, list):
        for item in config:
            check_config(item, where, legacy)
        return
    if not isinstance(config, dict):
        return
    if "class_name" in config:
        module, name, registered = config.get("module"), config.get("class_name"), config.get("registered_name")
        if name in REFUSED_CLASSES:
            raise PruningError("unsafe_model", f"{where}: {name} layers run arbitrary code and are refused")
        if name != "__keras_tensor__" and not (legacy and module is None):
            if module not in ALLOWED_MODULES:
                raise PruningError(
                    "unsafe_model",
                    f"{where}: {name} comes from module {module!r}; only Keras's own classes are allowed",
                )
            if registered not in (None, name):
                raise PruningError("unsafe_model", f"{where}: custom object {registered!r} is refused")
    for value in config.values():
        check_config(value, where, legacy)


def check_archive(path: Path, max_total: int = MAX_TOTAL_BYTES) -> zipfile.ZipFile:
    """An uploaded zip (`.keras`, `.npz`): bounded member count and size, no bombs, no absolute
    paths, `..` or links, and every member's CRC intact. Returns it open."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PruningError("corrupt_archive", f"the archive is damaged or truncated: {exc}") from exc
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise PruningError("unsafe_archive", f"the archive has {len(members)} members")
    total = 0
    for info in members:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in Path(name).parts or ":" in name:
            raise PruningError("unsafe_archive", f"archive member with an unsafe path: {name!r}")
        if (info.external_attr >> 16) & 0o170000 == 0o120000:
            raise PruningError("unsafe_archive", f"archive member is a link: {name!r}")
        total += info.file_size
        if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise PruningError("unsafe_archive", f"archive member {name!r} is compressed over {MAX_RATIO}x")
    if total > max_total:
        raise PruningError("unsafe_archive", f"the archive unpacks to {total} bytes")
    try:
        bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise PruningError("corrupt_archive", f"the archive is damaged: {exc}") from exc
    if bad:
        raise PruningError("corrupt_archive", f"the archive member {bad!r} is damaged")
    return archive


def _check_hdf5(path: Path) -> None:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise PruningError("corrupt_model", f"not a readable HDF5 file: {exc}") from exc
    problems: list[str] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and (obj.is_virtual or obj.external):
            problems.append(name)

    with handle:
        handle.visititems(visit)
        if problems:
            raise PruningError("unsafe_model", f"HDF5 datasets stored outside the file are refused: {problems[:3]}")
        raw = handle.attrs.get("model_config")
    if raw is not None:
        try:
            check_config(json.loads(raw.decode() if isinstance(raw, bytes) else raw), "model_config", legacy=True)
        except json.JSONDecodeError as exc:
            raise PruningError("corrupt_model", f"the HDF5 model_config is not JSON: {exc}") from exc


def check_model_file(path: Path, fmt: str) -> None:
    """Raise `PruningError` unless the file is a model Keras may safely open."""
    if fmt == "keras":
        with check_archive(path) as archive:
            names = set(archive.namelist())
            if not {"config.json", "metadata.json"} <= names:  # the API answers 415 to this code
                message = "a zip archive, but not a Keras 3 .keras file (no config.json/metadata.json)"
                raise PruningError("unsupported_format", message)
            try:
                config = json.loads(archive.read("config.json"))
            except (json.JSONDecodeError, zipfile.BadZipFile, OSError, EOFError) as exc:
                raise PruningError("corrupt_model", f"config.json cannot be read: {exc}") from exc
            check_config(config)
            for member in names - {"config.json", "metadata.json", "model.weights.h5", "assets"}:
                if not member.startswith("assets/"):
                    raise PruningError("unsafe_archive", f"unexpected archive member {member!r}")
    elif fmt == "h5":
        _check_hdf5(path)
