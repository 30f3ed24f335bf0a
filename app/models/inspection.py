"""Checking an uploaded model and reading its shape and size in a sandboxed subprocess.

No parser of model files (HDF5, flatbuffers, LiteRT) ever reads an untrusted file in the API process.
"""

import asyncio
import contextlib
import os
import stat
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from app.errors import InvalidInput, ShearsError, UnsupportedMediaType
from app.settings import get_settings
from contract import checks, jail

# The child gets no database, broker or storage credentials: only what Python and TF need.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SHEARS_ENGINE_SECCOMP")


class InspectionUnavailable(ShearsError):
    """The server cannot check models safely now (a setup problem, not the caller's)."""

    status_code = 503
    code = "sandbox_unavailable"
    retry_after = 60


class ChecksBusy(InspectionUnavailable):
    """Every check slot of this API process stayed taken for `check_queue_wait_s`."""

    code = "checks_busy"
    retry_after = 10


_slots_lock = threading.Lock()
_running = [0]


@contextlib.asynccontextmanager
async def check_slot() -> AsyncIterator[None]:
    """One of `max_concurrent_checks` slots, waited for (without holding the event loop) at most
    `check_queue_wait_s`; a plain counter, so it does not belong to one event loop."""
    settings = get_settings()
    deadline = time.monotonic() + settings.check_queue_wait_s
    while True:
        with _slots_lock:
            if _running[0] < settings.max_concurrent_checks:
                _running[0] += 1
                break
        if time.monotonic() >= deadline:
            raise ChecksBusy(
                f"all {settings.max_concurrent_checks} upload checks are busy; try again shortly", code="checks_busy"
            )
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        with _slots_lock:
            _running[0] -= 1


async def inspect_model(path: Path, timeout_s: float) -> dict[str, Any]:
    """Params and shapes of the model at `path`; `InvalidInput` if it is unsafe or unreadable."""
    return await run_checker("pruning.inspect", [str(path)], timeout_s, "model", 64 << 20, readable=[path])


OUTPUT = "{output}"
"""Stands, in a checker's arguments, for the file it writes (inside its own writable folder)."""


def take_output(produced: Path, output: Path, what: str) -> None:
    """Move the file a checker wrote to `output`: only a regular file with one link, never followed
    (a checker that a parser bug took over could leave a link to any file the API can read)."""
    try:
        fd = os.open(produced, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return  # nothing converted: the upload is stored as it came
    except OSError as exc:
        why = os.strerror(exc.errno or 0)
        raise InvalidInput(f"the {what} checker's output was refused: {why}", code=f"{what}_load_failed") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
            refused = f"the {what} checker's output was refused: not a regular file with one link"
            raise InvalidInput(refused, code=f"{what}_load_failed")
        if os.geteuid() == 0:
            os.fchown(fd, 0, 0)  # a child's own uid (contract.sandbox_ids) owns nothing kept
    finally:
        os.close(fd)
    os.replace(produced, output)


async def run_checker(
    module: str,
    args: list[str],
    timeout_s: float,
    what: str,
    max_file_bytes: int,
    readable: list[Path],
    output: Path | None = None,
) -> dict[str, Any]:
    """Run `python -m module *args` confined by the engine's launcher (contract.jail: no credentials,
    only `readable` to read, its own scratch folder to write, files capped at `max_file_bytes`) and
    return the result of its answer (`contract.checks`); `InvalidInput` (the file's fault) or
    `InspectionUnavailable`.
    An `OUTPUT` argument is a file in the scratch folder, moved to `output` when the checker wrote it.
    At most `max_concurrent_checks` run at once (`ChecksBusy` past the wait); the event loop only
    waits on the child's pipes, so it keeps answering other requests meanwhile."""
    async with check_slot():
        # Next to `output`, so a converted dataset is renamed into place rather than copied.
        with tempfile.TemporaryDirectory(prefix="shears-inspect-", dir=output.parent if output else None) as scratch:
            env = jail.confined_env(Path(scratch), _ENV_KEEP, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
            produced = Path(scratch) / "output.bin"
            argv = [str(produced) if a == OUTPUT else a for a in args]
            try:  # the engine's launcher, the same confinement (contract.jail)
                jailed = jail.launch(
                    [sys.executable, "-m", module, *argv],
                    workdir=Path(scratch),
                    readable=readable,
                    limits=jail.Limits(
                        cpu_seconds=int(timeout_s) + 5,
                        memory_bytes=get_settings().check_memory_bytes or jail.host_memory(),
                        file_bytes=max_file_bytes,
                    ),
                )
            except jail.SandboxTooWeak as exc:
                raise InspectionUnavailable(str(exc)) from None
            proc = await asyncio.create_subprocess_exec(
                *jailed.argv,
                cwd=scratch,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=jailed.preexec,
            )
            try:
                out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
            except TimeoutError:
                os.killpg(proc.pid, 9)  # its own session and group (bwrap and all it started)
                await proc.wait()
                raise InvalidInput(
                    f"reading the {what} took longer than {timeout_s:.0f} s", code=f"{what}_inspect_timeout"
                ) from None
            if output is not None and proc.returncode == 0:
                take_output(produced, output, what)
        answer = checks.read_answer(out.decode("utf-8", "replace"))
        if answer is None or proc.returncode != checks.EXIT[answer.type]:
            # The file made a parser crash (or a limit killed it): the file's fault, not a server error.
            raise InvalidInput(
                f"the {what} file could not be read: its reader stopped (exit {proc.returncode})",
                code=f"{what}_load_failed",
            )
        if isinstance(answer, checks.Unavailable):
            raise InspectionUnavailable(answer.message)
        if isinstance(answer, checks.Refused) and answer.code == UnsupportedMediaType.code:
            raise UnsupportedMediaType(answer.message)
        if isinstance(answer, checks.Refused):
            raise InvalidInput(answer.message, code=answer.code)
        return answer.result
