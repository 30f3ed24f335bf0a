"""Checking an uploaded model and reading its shape and size in a sandboxed subprocess.

No parser of model files (HDF5, flatbuffers, LiteRT) ever reads an untrusted file in the API process.
"""

import asyncio
import json
import os
import resource
import sys
import tempfile
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


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 20, 64 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


async def inspect_model(path: Path, timeout_s: float) -> dict[str, Any]:
    """Params and shapes of the model at `path`; `InvalidInput` if it is unsafe or unreadable."""
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env["CUDA_VISIBLE_DEVICES"] = ""
    with tempfile.TemporaryDirectory(prefix="shears-inspect-") as scratch:
        env["HOME"] = env["TMPDIR"] = scratch
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pruning.inspect",
            str(path),
            cwd=scratch,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=_limits,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise InvalidInput(
                f"reading the model took longer than {timeout_s:.0f} s", code="model_inspect_timeout"
            ) from None
    last = out.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    try:
        payload = json.loads(last[0])
    except json.JSONDecodeError:
        # The file made a parser crash (or a limit killed it): the file's fault, not a server error.
        raise InvalidInput(
            f"the model file could not be read: its reader stopped (exit {proc.returncode})", code="model_load_failed"
        ) from None
    if proc.returncode == 3:
        raise InvalidInput(payload["message"], code=payload["code"])
    if proc.returncode == 5:
        raise InspectionUnavailable(payload["message"])
    if proc.returncode != 0:
        raise InvalidInput(f"the model file could not be read (exit {proc.returncode})", code="model_load_failed")
    return dict(payload)
