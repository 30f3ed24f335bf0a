"""Run the engine on an untrusted model in a separate, limited process.

The child gets its inputs as files, a private folder as HOME and TMPDIR, an environment with
no database, broker or storage credentials, and limits on CPU time, file size and core dumps
(and no child processes: the engine forbids itself those with seccomp, `pruning.confine`);
it is the only process that imports TensorFlow, and it is killed (with its process group) when
the job is cancelled or runs out of time.
"""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract import host_tables, jail
from contract.engine import Checkpoint, Done, EngineRequest, Failed, Log, Progress, decode

_ENV_KEEP = (
    "PATH",
    "LANG",
    "LC_ALL",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    # Set by `shears worker` by the queues it serves: a GPU worker lets TensorFlow grow GPU memory
    # as needed, a CPU worker hides the GPU.
    "CUDA_VISIBLE_DEVICES",
    "TF_FORCE_GPU_ALLOW_GROWTH",
    # This CPU's calibrated host tables (workers.host_calibration); absent: the fallback, stated in `basis`.
    "SHEARS_HOST_PROFILE",
)
MAX_OUTPUT_BYTES = 4 * 1024**3


class EngineFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def engine_env(scratch: Path) -> dict[str, str]:
    """The engine's whole environment: no credentials, a private HOME and TMPDIR."""
    env = jail.confined_env(
        scratch,
        _ENV_KEEP,
        TF_CPP_MIN_LOG_LEVEL="2",
        TF_ENABLE_ONEDNN_OPTS="0",
        # No child processes: the engine installs a seccomp filter on itself (pruning.confine).
        # Only where seccomp is missing may an operator turn that off, knowingly.
        SHEARS_ENGINE_SECCOMP=os.environ.get("SHEARS_ENGINE_SECCOMP", "true"),
    )
    if env.get("TF_FORCE_GPU_ALLOW_GROWTH") != "true":
        env["CUDA_VISIBLE_DEVICES"] = ""  # only a worker serving a GPU queue lets its engine see the GPU
    return env


def engine_limits(cpu_seconds: int, memory_bytes: int | None) -> jail.Limits:
    """An engine's limits; without a memory setting, its address space is capped at the host's RAM."""
    memory = memory_bytes or jail.host_memory()
    return jail.Limits(cpu_seconds=cpu_seconds, memory_bytes=memory, file_bytes=MAX_OUTPUT_BYTES)


def start_confined(
    module: str,
    args: list[str],
    workdir: Path,
    limits: jail.Limits,
    stderr: Any,
    readable: tuple[Path, ...] = (),
    env: dict[str, str] | None = None,
) -> "subprocess.Popen[str]":
    """Start `python -m module args` as the engine is started: its environment, the launcher of
    `contract.jail` (bubblewrap, else Landlock), `workdir` its only writable folder. Both the jobs
    and `shears sandbox-check` come through here; `env` is set over the engine's environment. `EngineFailed` if the
    sandbox is too weak."""
    scratch = workdir / "home"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        jailed = jail.launch(
            [sys.executable, "-m", module, *args], workdir=workdir, chdir=scratch, limits=limits, readable=readable
        )
    except jail.SandboxTooWeak as exc:
        raise EngineFailed("sandbox_unavailable", str(exc)) from None
    return subprocess.Popen(
        jailed.argv,
        cwd=scratch,
        env={**engine_env(scratch), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=stderr,
        preexec_fn=jailed.preexec,
        text=True,
    )


def engine_tables_copy(workdir: Path) -> dict[str, str]:
    """The host tables this worker's environment names (`SHEARS_HOST_PROFILE`), copied into the job's folder; the
    engine's environment then names the copy. The sandbox shows the engine its folder and its code only: before,
    it could not read the tables at their own path and every host estimate of a sandboxed job fell back to another
    CPU's while this one's were calibrated (found 2026-12-08). A copy, not a bind of the shared file: a root
    worker hands what it binds to each launch's uid, and the file is read never through a link and only as host
    tables (a link or another file is not copied; the engine then says it could not read them)."""
    named = os.environ.get("SHEARS_HOST_PROFILE")
    if not named:
        return {}
    data = host_tables.read(Path(named))
    if data is None:
        return {"SHEARS_HOST_PROFILE": str(Path(named).absolute())}
    copy = workdir / "host-tables.json"
    copy.write_text(json.dumps(data))
    return {"SHEARS_HOST_PROFILE": str(copy)}


def run_engine(
    request: EngineRequest,
    workdir: Path,
    *,
    on_progress: Callable[[str, float], None],
    on_log: Callable[[str], None],
    cpu_seconds: int,
    memory_bytes: int | None = None,
    on_checkpoint: Callable[[int], None] | None = None,
) -> None:
    """Run `pruning.job` on `request`; returns when it is done, raises `EngineFailed` when it fails.

    `on_progress` may raise to stop the job (a cancel): the child is killed and the error re-raised.
    `on_checkpoint(step)` is called when the engine has written the checkpoint of round `step`
    (`<workdir>/checkpoint/<step>/`, the folder the request names).
    """
    request_path = workdir / "request.json"
    request_path.write_text(request.model_dump_json())
    stderr_path = workdir / "engine.log"
    limits = engine_limits(cpu_seconds, memory_bytes)
    with stderr_path.open("wb") as stderr:
        proc = start_confined(
            "pruning.job", [str(request_path)], workdir, limits, stderr, env=engine_tables_copy(workdir)
        )
        outcome: Failed | Done | None = None
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                message = decode(line)
                if isinstance(message, Progress):
                    on_progress(message.stage, message.progress)
                elif isinstance(message, Log):
                    on_log(message.message)
                elif isinstance(message, Checkpoint):
                    if on_checkpoint is not None:
                        on_checkpoint(message.step)
                elif message is not None:
                    outcome = message
            proc.wait()
        except BaseException:
            _kill(proc)
            raise
    if isinstance(outcome, Done) and proc.returncode == 0:
        return
    if isinstance(outcome, Failed):
        raise EngineFailed(outcome.code, outcome.message)
    if proc.returncode == -signal.SIGXCPU:
        raise EngineFailed("time_limit", f"the job used more than {cpu_seconds} s of CPU time")
    tail = stderr_path.read_text(errors="replace").strip().splitlines()[-3:]
    raise EngineFailed("engine_crashed", f"the engine exited with {proc.returncode}: {' | '.join(tail)[:800]}")


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
