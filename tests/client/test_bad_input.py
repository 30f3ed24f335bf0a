"""Bad input to the client, through the real door (the installed `shears-remote` against a live server):
one line naming the cause and the fix, the documented exit code, and a traceback only with --debug."""

import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import ClientVenv
from tests.services import Service, free_port

# The installed client in its own environment (made once per session): out of `make test-fast`.
pytestmark = pytest.mark.service


def _run(venv: ClientVenv, url: str, key: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = venv.env(SHEARS_URL=url, SHEARS_API_KEY=key)
    return subprocess.run(["shears-remote", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _error_line(out: subprocess.CompletedProcess[str], exit_code: int, *words: str) -> str:
    """The one error line, after asserting the exit code and that no traceback was printed."""
    assert out.returncode == exit_code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if not line.startswith("shears: ")]  # retry notes
    assert len(lines) == 1, out.stderr
    (line,) = lines
    assert line.startswith("Error: ")
    assert " -> " in line  # the cause, then the fix
    for word in words:
        assert word in line, line
    return line


def test_wrong_url(client_venv: ClientVenv) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    _error_line(_run(client_venv, nobody, "k", "devices"), 6, "cannot reach", "ConnectError", "check SHEARS_URL")
    _error_line(_run(client_venv, "shears.example.com", "k", "devices"), 1, "not an http(s) address", "https://")


def test_expired_key(client_venv: ClientVenv, embedded: Service) -> None:
    key = embedded.new_key()
    assert _run(client_venv, embedded.url, key, "usage").returncode == 0
    embedded.cli("keys", "revoke", key)
    out = _run(client_venv, embedded.url, key, "usage")
    _error_line(out, 1, "HTTP 401", "SHEARS_API_KEY", "shears keys create")
    debug = _run(client_venv, embedded.url, key, "--debug", "usage")
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
    assert "AuthenticationError" in debug.stderr


def test_too_large_is_413_with_the_fix(client_venv: ClientVenv, embedded: Service, tmp_path: Path) -> None:
    from tests.conftest import MAX_UPLOAD

    big = tmp_path / "big.keras"
    with big.open("wb") as f:
        f.truncate(MAX_UPLOAD + 1024)
    out = _run(client_venv, embedded.url, embedded.new_key(), "upload", str(big))
    _error_line(out, 1, "HTTP 413 payload_too_large", "--resumable")


@pytest.fixture(scope="module")
def small_quota(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A server whose tenants may store 4 KiB (no worker: nothing runs)."""
    service = Service(tmp_path_factory.mktemp("quota"), {"SHEARS_QUOTA_UPLOAD_BYTES": "4096"})
    service.start(worker=False)
    yield service
    service.stop()


def test_over_quota_is_429_with_when_to_retry(client_venv: ClientVenv, small_quota: Service, tmp_path: Path) -> None:
    data = tmp_path / "model.keras"
    data.write_bytes(b"x" * 8192)
    out = _run(client_venv, small_quota.url, small_quota.new_key(), "upload", str(data))
    _error_line(out, 1, "HTTP 429 quota_exceeded", "shears remote usage", "the server says in 3600 s")


@pytest.fixture
def cuts_uploads() -> Iterator[str]:
    """A server that reads the first 64 KiB of each request, then goes away (a crash mid-upload)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join(5)
    listener.close()


def test_server_down_mid_upload(client_venv: ClientVenv, cuts_uploads: str, tmp_path: Path) -> None:
    model = tmp_path / "model.keras"
    model.write_bytes(b"\0" * (4 << 20))
    out = _run(client_venv, cuts_uploads, "k", "upload", str(model))
    line = _error_line(out, 6, "POST /v1/models", "cannot reach", "after 5 tries", "check SHEARS_URL")
    assert out.stderr.count("retry") == 4, out.stderr
    assert "Error" in line
