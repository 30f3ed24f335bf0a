"""The one launcher of untrusted-model processes: the engine (`workers.sandbox`) and the upload check
(`app.models.inspection`) both start their child through `launch()`, and so does `shears sandbox-check`.

Levels, strongest first:

- `namespaces`: the child runs under bubblewrap in its own pid, network, ipc, uts and cgroup
  namespaces, and either as a uid of its own (a root parent: no user namespace is needed) or as
  uid 65534 of its own user namespace (any other parent), with no capabilities, a fresh `/proc` of its
  own pid namespace, no network but its own loopback, a private `/tmp`, and a filesystem of only the
  read-only runtime (system libraries, the Python install, the venv, the `pruning` package) and its
  own job folder (writable) plus the files it was handed (read-only).
- `landlock`: where user namespaces are refused, Landlock limits the child to reading the runtime and
  writing its folder, and forbids TCP (ABI >= 4); its seccomp filter (`pruning.confine`) refuses
  sockets other than `AF_UNIX` in any case.
- `seccomp`: only the engine's own filter (no fork/exec/ptrace, no network sockets).

Every level adds resource limits (CPU, address space, processes, file size, open files, no core).
`SHEARS_SANDBOX=strict` refuses to start a child below `namespaces` (`SandboxTooWeak`).

Who the child is outside (`contract.sandbox_ids`): a worker or API running as root starts each child
as a uid and gid of its own, drawn per launch from `SHEARS_SANDBOX_UIDS`, and hands it its folder
(chowned) and its inputs (by descriptor, group-readable), so nothing of root's is its own and its
process limit counts. A worker that is not root cannot switch: the child's uid 65534 is the worker's
uid outside, and the filesystem view (the read-only runtime and its own folder) is what keeps the
worker's other files out of reach; `shears sandbox-check` looks for any of them from inside.
"""

import ctypes
import functools
import glob
import importlib.util
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contract import landlock, sandbox_ids
from contract.sandbox_ids import Ids

log = logging.getLogger("shears.sandbox")

LEVELS = ("none", "seccomp", "landlock", "namespaces")
SANDBOX_UID = 65534
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
_ETC = ("ld.so.cache", "localtime", "passwd", "group", "fonts", "alternatives", "nsswitch.conf")


class SandboxTooWeak(Exception):
    """`SHEARS_SANDBOX=strict` and this host offers less than the `namespaces` level."""

    code = "sandbox_too_weak"


@dataclass(frozen=True)
class Limits:
    cpu_seconds: int = 600
    memory_bytes: int | None = None
    file_bytes: int = 4 * 1024**3
    processes: int = 4096  # counted per user and including threads: TensorFlow starts many
    open_files: int = 4096


@dataclass(frozen=True)
class Probe:
    level: str
    bwrap: str | None
    user_namespaces: bool
    landlock_abi: int
    seccomp: bool
    distinct_uid: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "level": self.level,
            "required": required_level(),
            "bwrap": self.bwrap,
            "user_namespaces": self.user_namespaces,
            "landlock_abi": self.landlock_abi,
            "seccomp": self.seccomp,
            "distinct_uid": self.distinct_uid,
            "notes": self.notes,
        }


def required_level() -> str:
    """`SHEARS_SANDBOX`: `strict` requires the namespaces level; `landlock` or `seccomp` use at most that
    level (to try the fallbacks); anything else (the default, `auto`) takes the best this host offers."""
    return "namespaces" if os.environ.get("SHEARS_SANDBOX", "").strip().lower() == "strict" else "none"


def _seccomp_available() -> bool:
    try:
        with open("/proc/self/status") as fh:
            return any(line.startswith("Seccomp:") for line in fh)
    except OSError:
        return False


@functools.cache
def probe() -> Probe:
    """What this kernel and host allow, tried for real (a `bwrap` that starts `true`)."""
    notes: list[str] = []
    bwrap = shutil.which("bwrap")
    userns = False
    ids = sandbox_ids.pick()
    if bwrap is None:
        notes.append("bubblewrap (bwrap) is not installed")
    else:
        try:  # as the children will be started: as a uid of their own when this process is root
            argv = [bwrap, *_namespace_args([], [], Path("/"), ids), "--", *_as_ids(ids), "true"]
            tried = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            userns = tried.returncode == 0
            if not userns:
                notes.append(f"bwrap cannot create namespaces: {tried.stderr.strip()[:200]}")
        except (OSError, subprocess.TimeoutExpired) as exc:
            notes.append(f"bwrap failed: {exc}")
    if ids is None and os.geteuid() == 0:
        notes.append("SHEARS_SANDBOX_UIDS=off or no setpriv: children run as root outside their namespaces")
    elif ids is None:
        notes.append(f"not root: children share this process's uid {os.geteuid()} outside (their view protects it)")
    abi = landlock.abi()
    seccomp = _seccomp_available()
    forced = os.environ.get("SHEARS_SANDBOX", "").strip().lower()
    if forced in ("landlock", "seccomp"):  # a lower level on purpose (to try the fallback)
        notes.append(f"SHEARS_SANDBOX={forced}")
        userns = False
        abi = abi if forced == "landlock" else 0
    if userns:
        level = "namespaces"
    elif abi >= 1:
        level = "landlock"
    else:
        level = "seccomp" if seccomp else "none"
    if ids is not None and level != "namespaces":
        notes.append("below the namespaces level a root worker's children stay root (no uid of their own)")
    return Probe(level, bwrap, userns, abi, seccomp, ids is not None and level == "namespaces", notes)


def check() -> Probe:
    """The probe, or `SandboxTooWeak` if the required level is not met."""
    found = probe()
    if LEVELS.index(found.level) < LEVELS.index(required_level()):
        raise SandboxTooWeak(
            f"SHEARS_SANDBOX=strict needs the namespaces level, this host offers {found.level!r} "
            f"({'; '.join(found.notes) or 'no user namespaces'})"
        )
    return found


def confined_env(scratch: Path, keep: Sequence[str], **fixed: str) -> dict[str, str]:
    """The whole environment of a confined child: only the `keep` variables of this process's (never
    credentials), `scratch` as HOME and TMPDIR, and `fixed`."""
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(scratch), TMPDIR=str(scratch), **fixed)
    return env


def host_memory() -> int:
    """The host's RAM: the default cap on a child's address space."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def make_undumpable() -> None:
    """No core dumps, and no reading of this process's memory or environ by a same-uid process."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)


def runtime_paths() -> list[Path]:
    """What the child reads: the Python install, the venv, and the folders of `contract` and of the engine."""
    paths = [Path(sys.base_prefix), Path(sys.prefix), Path(__file__).resolve().parent]
    engine = importlib.util.find_spec("pruning")  # found, not imported: this package stays engine-free
    if engine is not None and engine.origin is not None:
        paths.append(Path(engine.origin).resolve().parent)
    exe = Path(sys.executable).resolve()
    if not any(exe.is_relative_to(p) for p in paths) and not exe.is_relative_to("/usr"):
        paths.append(exe.parent)
    return [p.resolve() for p in paths if not p.resolve().is_relative_to("/usr")]


def _as_ids(ids: Ids | None) -> list[str]:
    """The command that turns a root child into `ids` inside the sandbox (util-linux's setpriv)."""
    if ids is None:
        return []
    drop = ["--reuid", str(ids.uid), "--regid", str(ids.gid), "--clear-groups", "--inh-caps=-all"]
    return [sandbox_ids.SETPRIV, *drop, "--"]


def _namespace_args(readable: Sequence[Path], writable: Sequence[Path], chdir: Path, ids: Ids | None) -> list[str]:
    """bubblewrap's arguments. Started by root with `ids`, bubblewrap makes its namespaces (no user
    namespace: there is no need for one) and binds what the child sees as root, then keeps only the
    capability to change uid, which setpriv uses once to become `ids` (and so loses it) before the
    child's command runs: the child is a uid of its own on the host, not root seen through a mapping."""
    if ids is None:
        args = ["--unshare-all", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL"]
    else:
        args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    args += ["--ro-bind", "/usr", "/usr"]
    for top in ("bin", "sbin", "lib", "lib32", "lib64"):
        target = Path("/", top)
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            args += ["--ro-bind", str(target), str(target)]
    for name in _ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    # Its own /tmp and /dev/shm: as root, bubblewrap makes them root's 0755, so with `ids` they are 1777.
    sticky = ["--perms", "1777"] if ids is not None else []
    args += ["--proc", "/proc", "--dev", "/dev", *sticky, "--tmpfs", "/tmp", *sticky, "--tmpfs", "/dev/shm"]
    if os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true":  # a GPU worker's engine sees the GPU (unverified)
        for device in sorted(glob.glob("/dev/nvidia*")):
            args += ["--dev-bind", device, device]
    made: set[Path] = set()

    def folders_to(dest: Path) -> list[str]:
        """As root, bubblewrap makes the folders leading to a bind 0700: a child of its own uid
        could not pass them, so they are made here, 0755 (on the sandbox's own root)."""
        if ids is None:
            return []
        made_now = [p for p in reversed(dest.parents) if p != Path("/") and p not in made]
        made.update(made_now)
        return [a for p in made_now for a in ("--perms", "0755", "--dir", str(p))]

    for path in runtime_paths():
        args += [*folders_to(path), "--ro-bind", str(path), str(path)]
    for path in readable:  # at the name the child is given (a link's target, bound there)
        args += [*folders_to(path), "--ro-bind", str(path.resolve()), str(path)]
    for path in writable:
        args += [*folders_to(path), "--bind", str(path), str(path)]
    # The root (a tmpfs bwrap fills with the binds above, and the folders leading to them) read-only.
    return [*args, "--remount-ro", "/", "--chdir", str(chdir)]


def _preexec(limits: Limits, level: str, readable: Sequence[Path], writable: Sequence[Path]) -> Callable[[], None]:
    def apply() -> None:
        os.setsid()  # its own process group: a cancel kills everything it started
        # Die with the process that started it, even if that one is SIGKILLed.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 30))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        if limits.memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        if level == "landlock":
            landlock.restrict([*runtime_paths(), *map(Path, _LANDLOCK_READ), *readable], [*writable, Path("/dev/null")])

    return apply


_LANDLOCK_READ = ("/usr", "/lib", "/lib64", "/bin", "/etc", "/proc", "/sys/devices/system/cpu", "/dev")


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    preexec: Callable[[], None]
    level: str
    ids: Ids | None = None


def launch(
    argv: Sequence[str],
    *,
    workdir: Path,
    limits: Limits,
    readable: Sequence[Path] = (),
    chdir: Path | None = None,
    level: str | None = None,
) -> Launch:
    """How to start `argv` confined: the command line (bwrap around it at the namespaces level) and
    the function to run in the child before it starts. `workdir` is its only writable folder."""
    found = check()
    level = level or found.level
    readable = [Path(os.path.abspath(p)) for p in readable]
    writable = [workdir.resolve()]
    ids = sandbox_ids.pick() if level == "namespaces" else None
    if ids is not None:
        sandbox_ids.hand_over(ids, writable, readable)
    if level == "namespaces":
        assert found.bwrap is not None
        bwrap_args = _namespace_args(readable, writable, (chdir or workdir).resolve(), ids)
        full = [found.bwrap, *bwrap_args, "--", *_as_ids(ids), *argv]
    else:
        full = list(argv)
    return Launch(full, _preexec(limits, level, readable, writable), level, ids)
