"""Tensor-arena size of a `.tflite` model under TensorFlow Lite Micro, measured with its Python interpreter.

The `tflite-micro` package's interpreter (`tflite_micro.python.tflite_micro.runtime.Interpreter`)
allocates the model's tensors in an arena of a size we choose, with a `RecordingMicroAllocator`;
`print_allocations()` writes the arena usage ("Arena allocation total N bytes") from C++ to the
process's stdout. The interpreter aborts the whole process on some models (unsupported ops or
shapes), so it runs in a child process (`python -m pruning.micro MODEL ARENA`) and we read its output.
That process imports TFLM, then confines itself (`pruning.confine`: no fork, exec, ptrace or
capabilities) before it reads the model, so a flatbuffer that exploits TFLM gets nowhere.

Caveats (stated in the estimate's `basis`): the interpreter is a 64-bit host build with the
reference kernels, so its bookkeeping structs (the arena's tail) are larger than on a 32-bit MCU,
and CMSIS-NN's scratch buffers are not included. The head (activations) comes from the same planner.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time

_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")
_HEAD = re.compile(r"Arena allocation head (\d+) bytes")
_TAIL = re.compile(r"Arena allocation tail (\d+) bytes")
TIMEOUT_S = 60
_MEMO: dict[str, dict[str, int] | None] = {}


def available() -> bool:
    # Not an import: that would load NumPy, whose OpenBLAS threads would keep their capabilities
    # through `confine()` (the engine asks this before it confines itself).
    return importlib.util.find_spec("tflite_micro") is not None


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # so the child finds `pruning`
    path_env = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    # One thread: confine() drops capabilities per thread, and fails if an OpenBLAS thread keeps some.
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path_env, OPENBLAS_NUM_THREADS="1")


def _confine_enabled() -> bool:
    return os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off")


def _run(path: str, arena: int) -> tuple[int, str]:
    """One measurement in a child process of this one."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pruning.micro", path, str(arena)],
            capture_output=True,
            timeout=TIMEOUT_S,
            env=_env(),
            check=False,
        )
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    except OSError as exc:  # e.g. a process that has forbidden itself children (pruning.confine)
        return -1, f"cannot start the measuring process: {exc}"
    return proc.returncode, proc.stdout.decode(errors="replace") + proc.stderr.decode(errors="replace")


# The job's engine forbids itself child processes (pruning.confine) before it reads the model; it
# starts this measuring server first, and sends it the models to measure over a pipe. The server
# is not confined (it starts a process per measurement), so it makes itself non-dumpable: the
# confined engine, which has no CAP_SYS_PTRACE, cannot then open its memory. It forks (no exec) its
# measuring processes, which stay non-dumpable and confine themselves (`_main`) before reading a model.
_server: subprocess.Popen[str] | None = None
PR_SET_DUMPABLE = 4


def start_server() -> None:
    """Start the process that runs the measurements for this one; call it before `confine()`."""
    global _server
    if _server is None and available():
        _server = subprocess.Popen(
            [sys.executable, "-m", "pruning.micro", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_env(),
            text=True,
            bufsize=1,
        )


def _ask_server(path: str, arena: int) -> tuple[int, str] | None:
    """The server's answer, or None when there is no server (or it has gone)."""
    server = _server
    if server is None or server.poll() is not None or server.stdin is None or server.stdout is None:
        return None
    try:
        server.stdin.write(json.dumps({"path": path, "arena": arena}) + "\n")
        server.stdin.flush()
        ready, _, _ = select.select([server.stdout], [], [], TIMEOUT_S + 10)
        line = server.stdout.readline() if ready else ""
    except (OSError, ValueError):
        return None
    if not ready:  # a late answer would be read as the next one's: no more server (`_run` falls back)
        _stop_server(server)
    if not line:
        return None
    answer = json.loads(line)
    return int(answer["code"]), str(answer["text"])


def _stop_server(server: subprocess.Popen[str]) -> None:
    global _server
    server.kill()
    server.wait()
    if _server is server:
        _server = None


def _fork_measure(path: str, arena: int) -> tuple[int, str]:  # pragma: no cover - runs in the server
    """`_run`, but a fork of this (non-dumpable) process rather than a new program."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.close(read_end)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(write_end, 1)  # print_allocations() writes to fd 1 from C++
            os.dup2(write_end, 2)
            os.close(write_end)
            code = _main(path, arena)
        except BaseException:  # noqa: BLE001 - whatever happens, this process must not return to the loop
            code = 3
        finally:
            try:
                sys.stdout.flush()
            finally:
                os._exit(code)
    os.close(write_end)
    chunks: list[bytes] = []
    deadline = time.monotonic() + TIMEOUT_S
    timed_out = False
    with os.fdopen(read_end, "rb", buffering=0) as out:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([out], [], [], max(left, 0))
            if not ready:
                timed_out = True
                os.kill(pid, signal.SIGKILL)
                break
            chunk = out.read(65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if timed_out:
        return -1, "timeout"
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def _serve() -> int:  # pragma: no cover - runs in the server process
    import ctypes

    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    for line in sys.stdin:
        request = json.loads(line)
        code, text = _fork_measure(request["path"], int(request["arena"]))
        sys.stdout.write(json.dumps({"code": code, "text": text}) + "\n")
        sys.stdout.flush()
    return 0


def _child(path: str, arena: int) -> tuple[int, str]:
    answer = _ask_server(path, arena)
    return answer if answer is not None else _run(path, arena)


def arena_usage(tflite: bytes, hint: int = 0, attempts: int = 3) -> dict[str, int] | None:
    """`{"total", "head", "tail", "arena_size"}` bytes, or None when TFLM cannot load/allocate the model."""
    key = hashlib.sha1(tflite).hexdigest()
    if key in _MEMO:
        return _MEMO[key]
    result = None
    if available():
        with tempfile.NamedTemporaryFile(suffix=".tflite") as fh:
            fh.write(tflite)
            fh.flush()
            arena = max(64 * 1024, 2 * hint + len(tflite) // 2 + 64 * 1024)
            for _ in range(attempts):
                code, text = _child(fh.name, arena)
                total = _TOTAL.search(text)
                if code == 0 and total:
                    head, tail = _HEAD.search(text), _TAIL.search(text)
                    result = {
                        "total": int(total.group(1)),
                        "head": int(head.group(1)) if head else 0,
                        "tail": int(tail.group(1)) if tail else 0,
                        "arena_size": arena,
                    }
                    break
                if "Failed to allocate" not in text:  # unsupported op, abort, timeout: no retry helps
                    break
                arena *= 4
    if len(_MEMO) >= 64:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[key] = result
    return result


def arena_bytes(tflite: bytes, hint: int = 0) -> int | None:
    usage = arena_usage(tflite, hint)
    return None if usage is None else usage["total"]


def _main(path: str, arena: int) -> int:  # pragma: no cover - runs in the child process
    from tflite_micro.python.tflite_micro import runtime

    if _confine_enabled():
        from pruning.confine import ConfinementUnavailable, confine

        try:
            confine()  # before the model is read: whatever it makes TFLM do, no fork, exec or ptrace
        except ConfinementUnavailable as exc:
            sys.stdout.write(f"error: cannot confine the measuring process: {exc}\n")
            return 4
    with open(path, "rb") as fh:
        model = fh.read()
    try:
        interp = runtime.Interpreter.from_bytes(model, arena_size=arena)
    except Exception as exc:  # noqa: BLE001 - TFLM reports allocation failures as RuntimeError
        sys.stdout.write(f"error: {exc}\n")
        return 2
    sys.stdout.flush()
    interp.print_allocations()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_serve() if sys.argv[1:] == ["--serve"] else _main(sys.argv[1], int(sys.argv[2])))
