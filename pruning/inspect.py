"""`python -m pruning.inspect FILE`: check an uploaded model and print its parameters and shapes.

Run by the API in a subprocess with no credentials, so that neither the HDF5 and flatbuffer
parsers nor LiteRT ever read an untrusted file inside the API process. Keras files are checked
(`contract.safety`) and described from their config and weights without TensorFlow; `.tflite`
files are opened with LiteRT. It confines itself first and answers in the checkers' protocol
(`contract.checks`, through `pruning.checker`).
"""

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
    from pruning.checker import run

    return run("model", lambda: inspect(Path(sys.argv[1])))


if __name__ == "__main__":
    sys.exit(main())
