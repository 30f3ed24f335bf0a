"""A virtual environment with only the client distribution in it (no server, no TensorFlow).

Made once per test session under .venv/client-only: its wheels (the client's, built from client/,
and httpx's and click's from pip's warm cache) go to a wheelhouse, then `pip install --no-index`
installs them, as a CI runner with a package mirror would. A client whose sources did not change
reuses the environment of the last session.
"""

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "client"
HOME = REPO / ".venv" / "client-only"
WINDOWS_ONLY = ("colorama",)


@dataclass
class ClientVenv:
    root: Path
    wheelhouse: Path
    install_s: float
    """Seconds `pip install --no-index shears-client` took into a new environment (0 when reused)."""

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / "python"

    def env(self, **extra: str) -> dict[str, str]:
        """A client machine: the venv first on PATH, no repository on PYTHONPATH, pip offline."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHEARS_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(self.wheelhouse), PIP_DISABLE_PIP_VERSION_CHECK="1")
        return {**env, **extra}


def _sources() -> list[Path]:
    return [CLIENT / "pyproject.toml", CLIENT / "README.md", *sorted((CLIENT / "shears_client").glob("*.py*"))]


def _sources_hash() -> str:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.relative_to(CLIENT).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], check=True, timeout=600)


@pytest.fixture(scope="session")
def client_venv() -> ClientVenv:
    """Made by one test process at a time: under pytest-xdist each process has its own session, and the
    environment is shared (the second finds the first's stamp)."""
    HOME.parent.mkdir(parents=True, exist_ok=True)
    with (HOME.parent / "client-only.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _client_venv()


def _client_venv() -> ClientVenv:
    stamp, root, wheelhouse = HOME / f"stamp-{_sources_hash()}", HOME / "venv", HOME / "wheelhouse"
    if stamp.exists() and (root / "bin" / "shears-remote").exists():
        return ClientVenv(root, wheelhouse, 0.0)
    shutil.rmtree(HOME, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    source = HOME / "source"  # built from a copy: an in-tree build would leave client/build behind
    for path in _sources():
        (source / path.relative_to(CLIENT)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, source / path.relative_to(CLIENT))
    _pip("wheel", "--no-build-isolation", "-w", str(wheelhouse), str(source))  # the client and its dependencies
    # and what a Windows runner needs besides (click's `colorama; platform_system == "Windows"`)
    _pip("wheel", "--no-deps", "-w", str(wheelhouse), *WINDOWS_ONLY)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    started = time.monotonic()
    subprocess.run(
        [str(root / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-index", "--find-links", str(wheelhouse), "shears-client"],
        check=True, timeout=300,
    )  # fmt: skip
    install_s = time.monotonic() - started
    stamp.touch()
    return ClientVenv(root, wheelhouse, install_s)
