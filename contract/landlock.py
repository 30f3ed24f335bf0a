"""Landlock (Linux >= 5.13), the fallback of `contract.jail` where user namespaces are refused.

Three system calls: a ruleset that handles every file access right the kernel knows (and TCP bind and
connect from ABI 4), rules that give back read access under the runtime's folders and full access
under the job's own, then `landlock_restrict_self`, which binds the process and all it starts.
With no rule for TCP, every TCP bind and connect is refused; from ABI 6 it may not signal processes
outside its domain nor reach their abstract Unix sockets.
"""

import ctypes
import os
import platform
from collections.abc import Sequence
from pathlib import Path

# <asm-generic/unistd.h>: the same numbers on x86_64 and aarch64
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
# <linux/landlock.h>: access rights by ABI version
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_WRITE_ABI1 = sum(1 << i for i in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6: no signals or abstract sockets outside


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class LandlockUnavailable(Exception):
    pass


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is turned off)."""
    if os.uname().sysname != "Linux" or platform.machine() not in ("x86_64", "aarch64"):
        return 0
    found = _libc().syscall(ctypes.c_long(CREATE_RULESET), None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(found), 0)


def _fs_rights(version: int) -> int:
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _WRITE_ABI1
    if version >= 2:
        rights |= REFER
    if version >= 3:
        rights |= TRUNCATE
    if version >= 5:
        rights |= IOCTL_DEV
    return rights


def restrict(readable: Sequence[Path], writable: Sequence[Path]) -> None:
    """Confine the calling process (and all it starts) to reading (and executing) under `readable`
    and doing anything under `writable`; no TCP at ABI >= 4. Raises `LandlockUnavailable`."""
    version = abi()
    if version < 1:
        raise LandlockUnavailable("this kernel has no Landlock")
    libc = _libc()
    handled = _fs_rights(version)
    attr = _RulesetAttr(
        handled,
        NET_BIND_TCP | NET_CONNECT_TCP if version >= 4 else 0,
        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if version >= 6 else 0,
    )
    size = 24 if version >= 6 else 16 if version >= 4 else 8
    fd = libc.syscall(ctypes.c_long(CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), 0)
    if fd < 0:
        raise LandlockUnavailable(f"landlock_create_ruleset: {os.strerror(ctypes.get_errno())}")
    try:
        read_rights = EXECUTE | READ_FILE | READ_DIR
        for paths, rights in ((readable, read_rights), (writable, handled)):
            for path in paths:
                try:
                    parent = os.open(path, os.O_PATH | os.O_CLOEXEC)
                except OSError:
                    continue  # absent here (e.g. /lib64 on aarch64)
                try:
                    # A file (not a folder) may only get the rights that apply to files.
                    allowed = rights if os.path.isdir(path) else rights & (EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE)
                    rule = _PathBeneath(allowed, parent)
                    if libc.syscall(ctypes.c_long(ADD_RULE), fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
                        raise LandlockUnavailable(f"landlock_add_rule {path}: {os.strerror(ctypes.get_errno())}")
                finally:
                    os.close(parent)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise LandlockUnavailable(f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(ctypes.get_errno())}")
        if libc.syscall(ctypes.c_long(RESTRICT_SELF), fd, 0) != 0:
            raise LandlockUnavailable(f"landlock_restrict_self: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(fd)
