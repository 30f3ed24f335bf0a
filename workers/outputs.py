"""Taking the engine's outputs without following anything it left there.

The engine runs untrusted code, so its `out/` folder is hostile ground: a name there may be a
symbolic link to a file the worker can read (which the worker would then store and serve), a hard
link, a FIFO that blocks a reader, or a file grown without bound. Each output is opened component
by component with `O_NOFOLLOW` relative to the folder's descriptor, must be a regular file with a
single link and at most `MAX_OUTPUT_BYTES`, and is copied from that descriptor into a folder the
engine never saw. Anything else fails the job with `engine_output_invalid`.
"""

import os
import stat
from pathlib import Path

from workers.sandbox import MAX_OUTPUT_BYTES, EngineFailed

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)


def _invalid(name: str, why: str) -> EngineFailed:
    return EngineFailed("engine_output_invalid", f"the engine's output {name!r} was refused: {why}")


def _open_below(root_fd: int, relative: str) -> int:
    """A descriptor of `relative` under `root_fd`, no component of which may be a link."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise _invalid(relative, "not a plain relative name")
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = nxt
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=fd)
    except FileNotFoundError:
        raise _invalid(relative, "missing") from None
    except OSError as exc:  # ELOOP: a symbolic link; ENOTDIR: a link or file where a folder should be
        raise _invalid(relative, f"not a regular file ({os.strerror(exc.errno or 0)})") from None
    finally:
        os.close(fd)


def take_outputs(out: Path, names: tuple[str, ...], dest: Path, max_bytes: int = MAX_OUTPUT_BYTES) -> dict[str, Path]:
    """Copy each of `names` (relative to `out`) into `dest`; returns name -> copied path."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        root = os.open(out, _DIR_FLAGS)
    except OSError as exc:
        raise _invalid("out", f"not a folder ({os.strerror(exc.errno or 0)})") from None
    taken: dict[str, Path] = {}
    try:
        for name in names:
            fd = _open_below(root, name)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise _invalid(name, "not a regular file")
            with os.fdopen(fd, "rb") as src:
                info = os.fstat(src.fileno())
                if info.st_nlink != 1:
                    raise _invalid(name, "a hard link")
                if info.st_size > max_bytes:
                    raise _invalid(name, f"larger than {max_bytes} bytes")
                os.set_blocking(src.fileno(), True)
                target = dest / name.replace("/", "__")
                with target.open("wb") as dst:
                    left = max_bytes + 1  # a file that grows while it is copied is cut, then refused
                    while left and (chunk := src.read(min(left, 1 << 20))):
                        dst.write(chunk)
                        left -= len(chunk)
                    if not left:
                        raise _invalid(name, f"larger than {max_bytes} bytes")
            taken[name] = target
    finally:
        os.close(root)
    return taken
