"""`python -m pruning.job REQUEST.json`: one engine run in a process of its own.

The worker starts this with resource limits, a private folder and no credentials; inputs come
as files named in the request and outputs go to files in `out`. It reports on a private pipe
(the original stdout) as JSON lines - progress, log, checkpoint, error, done - while anything
TensorFlow prints goes to stderr. Before it reads anything it forbids itself child processes
(`pruning.confine`); `SHEARS_ENGINE_SECCOMP=false` in its environment skips that where seccomp
is missing, and without it such a platform fails the job with `sandbox_unavailable`. With
`checkpoint` in the request the state after each finished round is written there and announced
(`pruning.checkpoint`); `resume` names the folder of an earlier attempt's checkpoint.
"""

import os
import sys
import traceback
from pathlib import Path
from typing import TextIO

from contract.engine import Checkpoint, Done, EngineRequest, Failed, Log, Progress, ProgressThrottle, encode

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

    def send(message: Progress | Log | Checkpoint | Failed | Done) -> None:
        proto.write(encode(message))

    if os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off"):
        from pruning import micro
        from pruning.confine import ConfinementUnavailable, confine

        micro.start_server()  # TFLite Micro measurements run in a process started before the filter
        try:
            confine()
        except ConfinementUnavailable as exc:
            message = (
                f"cannot forbid the engine child processes ({exc}); set SHEARS_ENGINE_SECCOMP=false to run without"
            )
            send(Failed(code="sandbox_unavailable", message=message))
            return 3

    request = EngineRequest.model_validate_json(Path(request_path).read_text())
    from contract.errors import PruningError
    from pruning.datasets import load_builtin, load_npz

    throttle = ProgressThrottle(PROGRESS_EVERY_S)

    def progress(stage: str, fraction: float) -> None:
        if throttle.due(stage, fraction):
            send(Progress(stage=stage, progress=fraction))

    try:
        from pruning.run import profile, run
        from pruning.spec import PruneSpec

        data_ref = request.data
        spec = PruneSpec.from_job_spec(request.spec)
        data = None
        if data_ref:
            data = (
                load_builtin(data_ref, seed=spec.seed) if data_ref.startswith("builtin:") else load_npz(Path(data_ref))
            )
        model, out = Path(request.model), Path(request.out)
        if request.kind == "profile":
            progress("profiling", 0.0)
            profile(model, spec, out, data)
        elif data is None:
            raise PruningError("missing_data", "a prune job needs a dataset")
        else:
            checkpoints = None
            if request.checkpoint:
                from pruning.checkpoint import Checkpoints

                resume = Path(request.resume) if request.resume else None
                checkpoints = Checkpoints(Path(request.checkpoint), send, resume)
            run(model, data, spec, out, progress, lambda m: send(Log(message=m)), checkpoints)
    except PruningError as exc:
        send(Failed(code=exc.code, message=exc.message))
        return 3
    except MemoryError:
        send(Failed(code="out_of_memory", message="the job ran out of memory"))
        return 3
    except Exception as exc:
        traceback.print_exc()
        send(Failed(code="internal_error", message=f"{type(exc).__name__}: {str(exc)[:500]}"))
        return 4
    send(Done())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
