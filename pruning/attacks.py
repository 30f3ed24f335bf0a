"""`python -m pruning.attacks TARGETS.json`: what code that took over the engine would try, run where
the engine runs (started by the worker's own launcher, `workers.sandbox.start_confined`, and confined
as `pruning.job` confines itself). Prints one JSON line per attempt: {"name", "done", "detail"}, where
`done` says the attempt went through as far as this process can tell; the checker
(`workers.sandbox_check`) also looks from outside (a file written, a process killed, an output taken).
"""

import contextlib
import functools
import io
import json
import os
import resource
import runpy
import signal
import socket
import stat
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _foreign(pid: str) -> set[bytes]:
    """Entries of `pid`'s environment this process does not have: what reading it would teach.
    Its own pid namespace's init (bwrap) runs with the engine's own environment: nothing there."""
    own = set(Path("/proc/self/environ").read_bytes().split(b"\0"))
    return set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")) - own


def _environ(pid: str) -> tuple[bool, str]:
    foreign = _foreign(pid)
    names = sorted(e.split(b"=", 1)[0].decode(errors="replace") for e in foreign)
    return bool(foreign), f"read {len(foreign)} variables it does not have: {', '.join(names)[:200]}"


def _memory(pid: str) -> tuple[bool, str]:
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    start = int(maps[0].split("-")[0], 16)
    with open(f"/proc/{pid}/mem", "rb") as mem:
        mem.seek(start)
        data = mem.read(16)
    try:
        outside = bool(_foreign(pid))
    except OSError:
        outside = True
    return bool(data) and outside, f"read memory at {start:#x} of a process {'outside' if outside else 'inside'}"


def _connect(host: str, port: int | str, timeout: float) -> tuple[bool, str]:
    with socket.create_connection((host, int(port)), timeout=timeout):
        return True, "connected"


def _resolve(name: str) -> tuple[bool, str]:
    found = socket.getaddrinfo(name, 80)
    return True, f"resolved to {found[0][4][0]}"


def _read_folder(folder: str) -> tuple[bool, str]:
    names = os.listdir(folder)
    for name in names:
        path = Path(folder, name)
        if path.is_file():
            path.read_bytes()
            return True, f"listed {len(names)} and read {name}"
    return True, f"listed {len(names)} entries"


def _write(path: str, private_tmp: bool) -> tuple[bool, str]:
    """Open for writing (appending nothing). A write under /tmp is judged from outside: a private
    /tmp takes it and nobody else sees it."""
    target = Path(path)
    if target.is_dir():
        with open(target / "escaped-by-sandbox-check", "ab"):
            target = target / "escaped-by-sandbox-check"
    else:
        with open(target, "r+b"):  # an existing file, opened for writing; never created
            pass
    if private_tmp:
        return False, f"wrote {target} here (the checker looks whether it appeared outside)"
    return True, f"opened {target} for writing"


def _link(kind: str, target: str, out: str) -> tuple[bool, str]:
    Path(out).mkdir(parents=True, exist_ok=True)
    link = Path(out, "model.tflite" if kind == "symlink" else "report.json")
    link.unlink(missing_ok=True)
    (os.symlink if kind == "symlink" else os.link)(target, link)
    return True, f"made {link} -> {target} (the worker decides whether it is taken)"


def _fork() -> tuple[bool, str]:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return True, "forked"


def _exec() -> tuple[bool, str]:
    import subprocess

    subprocess.run(["/bin/true"], check=True)
    return True, "ran /bin/true"


def _unshare() -> tuple[bool, str]:
    """A user namespace of its own (where it would hold every capability) and a mount namespace."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000 | 0x00020000) != 0:  # CLONE_NEWUSER | CLONE_NEWNS
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return True, "made a user and a mount namespace"


def _memory_limit() -> tuple[bool, str]:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return True, "no address-space limit"
    try:
        block = bytearray(soft + (1 << 30))
    except MemoryError:
        return False, f"MemoryError past the {soft} byte limit"
    return True, f"allocated {len(block)} bytes"


def _file_limit(out: str) -> tuple[bool, str]:
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft == resource.RLIM_INFINITY:
        return True, "no file-size limit"
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path = Path(out, "big")
    with open(path, "wb") as fh:  # sparse: one byte past the limit
        fh.seek(soft)
        fh.write(b"x")
        fh.flush()
    return True, f"wrote past the {soft} byte limit"


def _uid_probe(out: str) -> tuple[bool, str]:
    """A file of its own in `out/`: the checker reads from outside which uid owns it."""
    Path(out).mkdir(parents=True, exist_ok=True)
    Path(out, "uid-probe").write_text(str(os.getuid()))
    return False, f"wrote out/uid-probe as uid {os.getuid()} inside (the checker looks at its owner outside)"


# The kernel's views, the sandbox's own devices and private /tmp, and the system's tree (root's, bound
# read-only: its own entry is still looked at, not the many thousand files below it).
SKIP = ("/proc", "/sys", "/dev", "/tmp", "/usr")


def private_files(top: str, own: str, limit: int = 5) -> list[str]:
    """Paths under `top` (not under `own`) this process may write, or may read only as their owner or
    group (no read bit for others): what would be the worker's own files if its uid were ours."""
    found: list[str] = []
    for parent, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if os.path.join(parent, d) not in (own, *SKIP)]
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(info.st_mode):
                continue
            writable = os.access(path, os.W_OK)
            private = not info.st_mode & stat.S_IROTH and os.access(path, os.R_OK)
            if writable or private:
                found.append(f"{path} ({'writable' if writable else 'readable only as its owner or group'})")
                if len(found) >= limit:
                    return found
    return found


def _worker_files(job: str) -> tuple[bool, str]:
    found = private_files("/", job)
    return bool(found), "; ".join(found) if found else "nothing outside its folder is writable or private to it"


def _kill(t: dict[str, Any]) -> tuple[bool, str]:
    os.kill(int(t["victim"]), signal.SIGKILL)  # read when the attempt runs, as the other targets are
    return True, "sent SIGKILL"


def _limits() -> tuple[bool, str]:
    unlimited = [
        name
        for name in ("RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_AS")
        if resource.getrlimit(getattr(resource, name))[0] == resource.RLIM_INFINITY
    ]
    return bool(unlimited), f"unlimited: {', '.join(unlimited)}" if unlimited else "all limited"


def suite(t: dict[str, Any]) -> dict[str, Callable[[], tuple[bool, str]]]:
    """Every built-in attack, by name, against the targets the checker set up (`t`)."""
    timeout = float(t.get("timeout", 1.0))
    attacks: dict[str, Callable[[], tuple[bool, str]]] = {}
    for who, pid in (
        ("parent", str(os.getppid())),
        ("pid1", "1"),
        *((f"worker{i}", p) for i, p in enumerate(t["pids"])),
    ):
        attacks[f"read_environ_{who}"] = functools.partial(_environ, pid)
        attacks[f"read_memory_{who}"] = functools.partial(_memory, pid)
    for name, port in t["ports"].items():
        attacks[f"connect_{name}"] = functools.partial(_connect, "127.0.0.1", port, timeout)
    attacks["connect_metadata_169.254.169.254"] = lambda: _connect("169.254.169.254", 80, timeout)
    attacks["resolve_dns"] = lambda: _resolve("example.com")
    attacks["read_other_job_folder"] = lambda: _read_folder(t["other_job"])
    attacks["read_artifact_store"] = lambda: _read_folder(t["store"])
    for name, path in t["writes"].items():
        attacks[f"write_{name}"] = functools.partial(_write, path, name == "tmp_outside")
    attacks["signal_other_process"] = functools.partial(_kill, t)
    attacks["symlink_out_of_out"] = lambda: _link("symlink", t["secret"], t["out"])
    attacks["hardlink_out_of_out"] = lambda: _link("hardlink", t["secret"], t["out"])
    attacks["fork"] = _fork
    attacks["exec"] = _exec
    attacks["unshare_namespaces"] = _unshare
    attacks["exceed_memory"] = _memory_limit
    attacks["exceed_file_size"] = lambda: _file_limit(t["out"])
    attacks["no_resource_limits"] = _limits
    attacks["own_files_as_worker_uid"] = lambda: _uid_probe(t["out"])
    attacks["find_worker_files"] = lambda: _worker_files(str(Path(t["out"]).parent))
    return attacks


def main(targets_path: str) -> int:
    if os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off"):
        from pruning.confine import confine

        confine()  # exactly as pruning.job does before it reads a model
    targets = json.loads(Path(targets_path).read_text())
    for name, attempt in suite(targets).items():
        if targets.get("only") and name not in targets["only"]:
            continue
        try:
            done, detail = attempt()
        except BaseException as exc:  # noqa: BLE001 - every refusal is an answer here
            done, detail = False, f"{type(exc).__name__}: {exc}"[:300]
        print(json.dumps({"name": name, "done": done, "detail": detail}), flush=True)  # noqa: T201
    if targets.get("payload"):
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                runpy.run_path(targets["payload"], run_name="__main__")
            done, detail = True, "ran to the end"
        except BaseException as exc:  # noqa: BLE001
            done, detail = False, "".join(traceback.format_exception_only(type(exc), exc)).strip()[:500]
        if printed.getvalue():
            detail += f"; it printed: {printed.getvalue()[-1500:]}"
        print(json.dumps({"name": "payload", "done": done, "detail": detail}), flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
