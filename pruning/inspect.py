"""`python -m pruning.inspect FILE`: print a model's parameters and shapes as JSON.

Run as a subprocess by the API, so that the API process never imports TensorFlow.
Exit code 0 with JSON on stdout, or 3 with `{"code", "message"}` JSON for a bad model.
"""

import json
import sys
from pathlib import Path
from typing import Any

from pruning.errors import PruningError


def inspect_tflite(path: Path) -> dict[str, Any]:
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path))
    except Exception as exc:
        raise PruningError("model_load_failed", f"not a loadable TFLite model: {exc}") from exc
    from pruning.tflite_file import constant_elements

    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise PruningError("unsupported_model", "only models with one input and one output are supported")
    return {
        "params": constant_elements(path.read_bytes()),
        "input_shape": [None, *[int(d) for d in inputs[0]["shape"][1:]]],
        "output_shape": [None, *[int(d) for d in outputs[0]["shape"][1:]]],
        "layers": None,
    }


def inspect(path: Path) -> dict[str, Any]:
    if path.suffix == ".tflite":
        return inspect_tflite(path)
    from pruning.loading import describe, load_model

    return describe(load_model(path))


def main() -> int:
    try:
        sys.stdout.write(json.dumps(inspect(Path(sys.argv[1]))) + "\n")
        return 0
    except PruningError as exc:
        sys.stdout.write(json.dumps({"code": exc.code, "message": exc.message}) + "\n")
        return 3


if __name__ == "__main__":
    sys.exit(main())
