"""`python -m pruning.job REQUEST.json`: one engine run in a process of its own.

The worker starts this with resource limits, a private folder and no credentials; inputs come
as files named in the request and outputs go to files in `out`. It reports on a private pipe
(the original stdout) as JSON lines - progress, log, error, done - while anything TensorFlow
prints goes to stderr.
"""

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

# Progress comes after every batch; the pipe needs far fewer lines than that.
PROGRESS_EVERY_S = 0.1


def _channel() -> TextIO:
    """The protocol stream: a copy of stdout, with fd 1 itself pointed at stderr."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return proto


def main(request_path: str) -> int:
    proto = _channel()

    def send(message: dict[str, Any]) -> None:
        proto.write(json.dumps(message) + "\n")

    request = json.loads(Path(request_path).read_text())
    from pruning.datasets import load_builtin, load_npz
    from pruning.errors import PruningError

    last = {"stage": "", "at": 0.0}

    def progress(stage: str, fraction: float) -> None:
        now = time.monotonic()
        if stage != last["stage"] or now - float(last["at"]) >= PROGRESS_EVERY_S or fraction >= 1.0:
            last.update(stage=stage, at=now)
            send({"type": "progress", "stage": stage, "progress": fraction})

    try:
        from pruning.run import profile, run
        from pruning.spec import PruneSpec

        data_ref = request.get("data")
        spec = PruneSpec.from_job_spec(request["spec"])
        data = None
        if data_ref:
            data = (
                load_builtin(data_ref, seed=spec.seed) if data_ref.startswith("builtin:") else load_npz(Path(data_ref))
            )
        model, out = Path(request["model"]), Path(request["out"])
        if request.get("kind") == "profile":
            progress("profiling", 0.0)
            profile(model, spec, out, data)
        elif data is None:
            raise PruningError("missing_data", "a prune job needs a dataset")
        else:
            run(model, data, spec, out, progress, lambda m: send({"type": "log", "message": m}))
    except PruningError as exc:
        send({"type": "error", "code": exc.code, "message": exc.message})
        return 3
    except MemoryError:
        send({"type": "error", "code": "out_of_memory", "message": "the job ran out of memory"})
        return 3
    except Exception as exc:
        traceback.print_exc()
        send({"type": "error", "code": "internal_error", "message": f"{type(exc).__name__}: {str(exc)[:500]}"})
        return 4
    send({"type": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
