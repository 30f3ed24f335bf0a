"""Checking an uploaded model and reading its shape and size in a sandboxed subprocess.

No parser of model files (HDF5, flatbuffers, LiteRT) ever reads an untrusted file in the API process.
"""

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from app.errors import InvalidInput, ShearsError
from contract import jail

# The child gets no database, broker or storage credentials: only what Python and TF need.
_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "HOME", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "SHEARS_ENGINE_SECCOMP")


class InspectionUnavailable(ShearsError):
    """The server cannot check models safely now (a setup problem, not the caller's)."""

    status_code = 503
    code = "sandbox_unavailable"
    retry_after = 60


async def inspect_model(path: Path, timeout_s: float) -> dict[str, Any]:
    """Params and shapes of the model at `path`; `InvalidInput` if it is unsafe or unreadable."""
    return await run_checker("pruning.inspect", [str(path)], timeout_s, "model", 64 << 20, readable=[path])


OUTPUT = "{output}"
"""Stands, in a checker's arguments, for the file it writes (inside its own writable folder)."""


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
    return the JSON it prints; `InvalidInput` (the file's fault) or `InspectionUnavailable`.
    An `OUTPUT` argument is a file in the scratch folder, moved to `output` when the checker wrote it."""
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
                    cpu_seconds=int(timeout_s) + 5, memory_bytes=jail.host_memory(), file_bytes=max_file_bytes
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
        if output is not None and proc.returncode == 0 and produced.is_file():
            os.replace(produced, output)
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
