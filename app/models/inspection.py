"""Checking an uploaded model and reading its shape and size in a sandboxed subprocess.

No parser of model files (HDF5, flatbuffers, LiteRT) ever reads an untrusted file in the API process.
"""

import asyncio
import json
import os
import resource
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import InvalidInput, ShearsError

# The child gets no database, broker or storage credentials: only what Python and TF need.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SHEARS_ENGINE_SECCOMP")


class InspectionUnavailable(ShearsError):
    """The server cannot check models safely now (a setup problem, not the caller's)."""

    status_code = 503
    code = "sandbox_unavailable"
    retry_after = 60


def _limits(max_file_bytes: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


async def inspect_model(path: Path, timeout_s: float) -> dict[str, Any]:
    """Params and shapes of the model at `path`; `InvalidInput` if it is unsafe or unreadable."""
    return await run_checker("pruning.inspect", [str(path)], timeout_s, "model", 64 << 20)


async def run_checker(module: str, args: list[str], timeout_s: float, what: str, max_file_bytes: int) -> dict[str, Any]:
    """Run `python -m module *args` confined (no credentials, files capped at `max_file_bytes`) and
    return the JSON it prints; `InvalidInput` (the file's fault) or `InspectionUnavailable`."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="shears-inspect-") as scratch:
        env["HOME"] = env["TMPDIR"] = scratch
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=scratch,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_limits(max_file_bytes),
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise InvalidInput(
                f"reading the {what} took longer than {timeout_s:.0f} s", code=f"{what}_inspect_timeout"
            ) from None
    last = out.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    try:
        payload = json.loads(last[0])
    except json.JSONDecodeError:
        # The file made a parser crash (or a limit killed it): the file's fault, not a server error.
        raise InvalidInput(
            f"the {what} file could not be read: its reader stopped (exit {proc.returncode})",
            code=f"{what}_load_failed",
        ) from None
    if proc.returncode == 3:
        raise InvalidInput(payload["message"], code=payload["code"])
    if proc.returncode == 5:
        raise InspectionUnavailable(payload["message"])
    if proc.returncode != 0:
        raise InvalidInput(f"the {what} file could not be read (exit {proc.returncode})", code=f"{what}_load_failed")
    return dict(payload)
