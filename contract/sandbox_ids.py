"""Who a confined child is outside its namespaces (`contract.jail`).

Inside, it is uid 65534. Outside, a user namespace maps that uid to the uid of whoever started
bubblewrap: without this module that is the worker's (root, in CI). A process running as root
therefore starts each child as a uid and gid of its own, drawn per launch from `SHEARS_SANDBOX_UIDS`
(`FIRST-LAST`, default below; `off` keeps root's). The child's folder is handed to that uid and its
inputs are made readable to that gid; everything else of the host belongs to somebody else, and its
process limit (RLIMIT_NPROC, which root is exempt from) counts.

A process that is not root cannot take another uid: its children share its uid outside, and the
filesystem view (only the read-only runtime and their own folder) is what keeps its other files out
of their reach; `shears sandbox-check` looks for any such file from inside (`find_worker_files`).
"""

import os
import secrets
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Far above login users (1000-60000), the overflow id (65534) and the subordinate ranges that
# rootless containers get from /etc/subuid (100000 and up, 65536 at a time).
DEFAULT_RANGE = (1_900_000_000, 1_900_065_535)
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


@dataclass(frozen=True)
class Ids:
    uid: int
    gid: int


def configured_range() -> tuple[int, int] | None:
    """`SHEARS_SANDBOX_UIDS` as (first, last); None when it is `off`. A malformed value is an error."""
    raw = os.environ.get("SHEARS_SANDBOX_UIDS", "").strip().lower()
    if raw in ("off", "none", "0"):
        return None
    if not raw:
        return DEFAULT_RANGE
    first, sep, last = raw.partition("-")
    if not (sep and first.isdigit() and last.isdigit() and 0 < int(first) <= int(last) < 2**32 - 1):
        raise ValueError(f"SHEARS_SANDBOX_UIDS={raw!r}: expected FIRST-LAST (e.g. 1900000000-1900065535) or off")
    return int(first), int(last)


def pick() -> Ids | None:
    """A uid and gid for one child, or None when this process is not root (or the range is `off`)."""
    span = configured_range()
    if os.geteuid() != 0 or span is None or not os.access(SETPRIV, os.X_OK):
        return None
    number = span[0] + secrets.randbelow(span[1] - span[0] + 1)
    return Ids(number, number)


def hand_over(ids: Ids, writable: Sequence[Path], readable: Sequence[Path]) -> None:
    """Give `writable` (recursively, never through a link) to `ids`, and let its gid read `readable`."""
    for folder in writable:
        os.chown(folder, ids.uid, ids.gid, follow_symlinks=False)
        # bubblewrap changes into it as root without CAP_DAC_OVERRIDE: it must be passable by others
        # (a mkdtemp folder is 0700); its parent, which the child never sees, still keeps it private.
        os.chmod(folder, stat.S_IMODE(os.lstat(folder).st_mode) | stat.S_IXGRP | stat.S_IXOTH)
        for parent, dirs, files in os.walk(folder):  # walk does not enter linked folders
            for name in [*dirs, *files]:
                os.chown(os.path.join(parent, name), ids.uid, ids.gid, follow_symlinks=False)
    for path in readable:
        info = os.stat(path)
        if info.st_mode & stat.S_IROTH:
            continue
        # The group of a file nobody else reads becomes the child's (drawn for this launch only).
        os.chown(path, -1, ids.gid)
        os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IRGRP | (stat.S_IXGRP if stat.S_ISDIR(info.st_mode) else 0))
