"""`python -m pruning.inspect FILE`: check an uploaded model and print its parameters and shapes.

Run by the API in a subprocess with no credentials, so that neither the HDF5 and flatbuffer
parsers nor LiteRT ever read an untrusted file inside the API process. Keras files are checked
(`contract.safety`) and described from their config and weights without TensorFlow; `.tflite`
files are opened with LiteRT. Exit code 0 with JSON on stdout, or 3 with `{"code", "message"}` (5 when
the process cannot confine itself: it installs the engine's seccomp filter, `pruning.confine`, first).
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

from contract.errors import PruningError


def inspect_tflite(path: Path) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    from pruning.tflite_file import constant_elements

    try:
        interpreter = Interpreter(model_path=str(path))
        params = constant_elements(path.read_bytes())
    except Exception as exc:  # LiteRT and the flatbuffer reader raise many kinds for a bad file
        raise PruningError("model_load_failed", f"not a loadable TFLite model: {str(exc)[:300]}") from exc
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise PruningError("unsupported_model", "only models with one input and one output are supported")
    return {
        "params": params,
        "input_shape": [None, *[int(d) for d in inputs[0]["shape"][1:]]],
        "output_shape": [None, *[int(d) for d in outputs[0]["shape"][1:]]],
        "layers": None,
    }


def inspect(path: Path) -> dict[str, Any]:
    fmt = path.suffix.lstrip(".")
    if fmt == "tflite":
        return inspect_tflite(path)
    from contract.safety import check_model_file
    from pruning.describe import describe_file

    check_model_file(path, fmt)
    return describe_file(path, fmt)


def main() -> int:
    if os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off"):
        from pruning.confine import ConfinementUnavailable, confine

        try:
            confine()  # as the engine does: no child processes, whatever the file makes the parsers do
        except ConfinementUnavailable as exc:
            message = f"cannot forbid the model check child processes ({exc}); set SHEARS_ENGINE_SECCOMP=false"
            sys.stdout.write(json.dumps({"code": "sandbox_unavailable", "message": message}) + "\n")
            return 5
    try:
        sys.stdout.write(json.dumps(inspect(Path(sys.argv[1]))) + "\n")
        return 0
    except PruningError as exc:
        sys.stdout.write(json.dumps({"code": exc.code, "message": exc.message}) + "\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
