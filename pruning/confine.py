"""No child processes for the engine: a seccomp-BPF filter it installs on itself before reading a model.

`RLIMIT_NPROC` cannot do this: it does not bind root, and it counts threads, which TensorFlow
needs. The filter answers `fork`, `vfork`, `execve` and `execveat` with EPERM, lets `clone`
through only when it makes a thread (`CLONE_THREAD`), and answers `clone3` with ENOSYS so that
glibc falls back to `clone` (clone3 passes its flags in memory, which a filter cannot read).
A system call of another architecture (32-bit calls on x86_64, the x32 ABI) is refused too.
The filter is inherited by every thread and cannot be removed (`no_new_privs` is set first).

Nor may it open a socket of any family but `AF_UNIX` (no TCP, UDP, raw or netlink: no network
even where the engine has no network namespace of its own, `contract.jail`).

Nor may it make namespaces (`unshare`, `setns`), mount, load eBPF or touch kernel keyrings.

Nor may it reach into another process: `ptrace`, `process_vm_readv`, `process_vm_writev` and
`pidfd_getfd` get EPERM too, and the process drops every capability first (so that, even as root,
it has no CAP_SYS_PTRACE to open another process's `/proc/PID/mem`, and no CAP_DAC_OVERRIDE).
It keeps its user id, so the files it owns (its private folder, the venv of the same user) stay
readable. The processes it started before (the TFLite Micro measuring server, `pruning.micro`)
make themselves non-dumpable, which without CAP_SYS_PTRACE puts their memory out of its reach.
"""

import ctypes
import errno
import os
import platform
import struct

# <linux/audit.h>, <linux/seccomp.h>, <linux/filter.h>, <linux/sched.h>
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# <asm/unistd_64.h> on x86_64, <asm-generic/unistd.h> on aarch64 (which has no fork or vfork)
SYSCALLS = {
    "x86_64": {
        "fork": 57,
        "vfork": 58,
        "execve": 59,
        "execveat": 322,
        "ptrace": 101,
        "process_vm_readv": 310,
        "process_vm_writev": 311,
        "pidfd_getfd": 438,
        "clone": 56,
        "clone3": 435,
        "socket": 41,
        "seccomp": 317,
        "capset": 126,
        "unshare": 272,
        "setns": 308,
        "mount": 165,
        "umount2": 166,
        "pivot_root": 155,
        "bpf": 321,
        "add_key": 248,
        "request_key": 249,
        "keyctl": 250,
    },
    "aarch64": {
        "execve": 221,
        "execveat": 281,
        "ptrace": 117,
        "process_vm_readv": 270,
        "process_vm_writev": 271,
        "pidfd_getfd": 438,
        "clone": 220,
        "clone3": 435,
        "socket": 198,
        "seccomp": 277,
        "capset": 91,
        "unshare": 97,
        "setns": 268,
        "mount": 40,
        "umount2": 39,
        "pivot_root": 41,
        "bpf": 280,
        "add_key": 217,
        "request_key": 218,
        "keyctl": 219,
    },
}
# No processes, no reading others' memory; no namespaces of its own (a user namespace would hand it
# capabilities over new mounts and much of the kernel's surface), no mounts, no eBPF, no kernel keyrings.
DENIED: tuple[str, ...] = (
    "fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd",
    "unshare", "setns", "mount", "umount2", "pivot_root", "bpf", "add_key", "request_key", "keyctl",
)  # fmt: skip
X32_SYSCALL_BIT = 0x40000000
CLONE_THREAD = 0x00010000
AF_UNIX = 1
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522  # <linux/capability.h>: two 32-bit data structs
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
LD_W_ABS, JEQ, JGE, JSET, RET = 0x20, 0x15, 0x35, 0x45, 0x06
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
OFF_NR, OFF_ARCH, OFF_ARG0_LOW = 0, 4, 16


class ConfinementUnavailable(Exception):
    """This platform cannot confine the engine (no seccomp, or an architecture we have no table for)."""


def _program(machine: str) -> list[tuple[int, int, int, int]]:
    """The filter for `machine`, as (code, jt, jf, k) instructions."""
    nr = SYSCALLS[machine]
    deny = [nr[name] for name in DENIED if name in nr]
    # Written with labels; jumps are resolved to relative offsets below.
    code: list[tuple[int, str | int, str | int, int]] = [
        (LD_W_ABS, 0, 0, OFF_ARCH),
        (JEQ, 0, "kill", AUDIT_ARCH[machine]),
        (LD_W_ABS, 0, 0, OFF_NR),
    ]
    if machine == "x86_64":
        code.append((JGE, "eperm", 0, X32_SYSCALL_BIT))
    code += [(JEQ, "eperm", 0, n) for n in deny]
    code += [
        # socket(2): AF_UNIX only; no TCP, UDP, raw or netlink (jumps of 2 skip to the next test).
        (JEQ, 0, 2, nr["socket"]),
        (LD_W_ABS, 0, 0, OFF_ARG0_LOW),
        (JEQ, "allow", "eperm", AF_UNIX),
    ]
    code += [
        (JEQ, "enosys", 0, nr["clone3"]),
        (JEQ, 0, "allow", nr["clone"]),
        (LD_W_ABS, 0, 0, OFF_ARG0_LOW),
        (JSET, "allow", "eperm", CLONE_THREAD),
    ]
    returns = {
        "allow": RET_ALLOW,
        "eperm": RET_ERRNO | errno.EPERM,
        "enosys": RET_ERRNO | errno.ENOSYS,
        "kill": RET_KILL_PROCESS,
    }
    at = {label: len(code) + i for i, label in enumerate(returns)}
    out = []
    for i, (op, jt, jf, k) in enumerate(code):
        out.append(
            (
                op,
                at[jt] - i - 1 if isinstance(jt, str) else jt,
                at[jf] - i - 1 if isinstance(jf, str) else jf,
                k,
            )
        )
    out += [(RET, 0, 0, value) for value in returns.values()]
    return out


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_capabilities(libc: ctypes.CDLL, machine: str) -> None:
    """Empty the calling thread's effective, permitted and inheritable capability sets.

    Capabilities belong to threads, and capset(2) changes only the caller's (threads started later
    inherit them): so this fails if another thread of the process still holds any, which the
    callers avoid by confining before they start threads (or import NumPy, whose OpenBLAS does).
    """
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(ctypes.c_long(SYSCALLS[machine]["capset"]), ctypes.byref(header), ctypes.byref(data)) != 0:
        raise ConfinementUnavailable(f"capset: {os.strerror(ctypes.get_errno())}")
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/status") as fh:
                held = [line.split()[1] for line in fh if line.startswith(("CapEff:", "CapPrm:"))]
        except FileNotFoundError:  # the thread has ended
            continue
        if any(int(mask, 16) for mask in held):
            raise ConfinementUnavailable(f"thread {task} keeps its capabilities (confine before starting threads)")


def confine() -> None:
    """Forbid this process (all its threads, now and later) to start programs or child processes,
    to trace or read other processes, and to use any capability."""
    machine = platform.machine()
    if os.uname().sysname != "Linux" or machine not in SYSCALLS:
        raise ConfinementUnavailable(f"no seccomp filter for {os.uname().sysname}/{machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    _drop_capabilities(libc, machine)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise ConfinementUnavailable(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
    program = _program(machine)
    raw = b"".join(struct.pack("HBBI", *ins) for ins in program)
    filters = ctypes.create_string_buffer(raw, len(raw))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(len(program), ctypes.addressof(filters))
    # seccomp(2) with TSYNC rather than prctl(PR_SET_SECCOMP): the filter then also binds threads
    # that already exist (OpenBLAS starts some when NumPy is imported), not only the caller.
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(
        ctypes.c_long(SYSCALLS[machine]["seccomp"]),
        ctypes.c_uint(SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(prog),
    )
    if result != 0:
        raise ConfinementUnavailable(f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(ctypes.get_errno())}")
