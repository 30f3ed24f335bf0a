"""From the review of issue 15: `/metrics` behind a token, and `keys revoke` by whole key or id only."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, revoke_key
from app.db import make_engine
from app.migrate import upgrade
from app.settings import get_settings
from app.tables import ApiKey
from tests.services import Service


def test_metrics_can_require_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    monkeypatch.setenv("SHEARS_METRICS_TOKEN", "scrape-me")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            assert ok.status_code == 200
            assert "shears_http_requests_total" in ok.text
    finally:
        monkeypatch.delenv("SHEARS_METRICS_TOKEN")
        get_settings.cache_clear()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine)() as s:
        yield s
    engine.dispose()


def test_keys_are_revoked_by_whole_key_or_id_never_by_a_shared_prefix(session: Session) -> None:
    a, b = create_key(session, "tenant-a"), create_key(session, "tenant-b")
    # Another tenant's key made to share a's prefix.
    session.scalars(select(ApiKey).where(ApiKey.prefix == b[:12])).one().prefix = a[:12]
    session.flush()
    with pytest.raises(ValueError, match="whole key"):
        revoke_key(session, a[:12])
    assert revoke_key(session, a + "x") == 0
    assert revoke_key(session, a) == 1
    assert revoke_key(session, a) == 0  # already revoked
    row_b = session.scalars(select(ApiKey).where(ApiKey.tenant_id != "")).all()
    live = [k for k in row_b if k.revoked_at is None]
    assert len(live) == 1  # b's key still works
    assert revoke_key(session, live[0].id) == 1


def test_a_full_disk_during_an_upload_is_a_507_not_a_422(tmp_path: Path) -> None:
    import asyncio
    import errno

    from app.errors import InsufficientStorage
    from app.storage import LocalArtifactStore
    from app.uploads import receive_file

    class FullDisk(LocalArtifactStore):
        def writer(self):  # type: ignore[no-untyped-def]
            writer = super().writer()

            def write(chunk: bytes) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            writer.write = write  # type: ignore[method-assign]
            return writer

    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.keras"\r\n\r\nPK\x03\x04data\r\n--b--\r\n'

    class Request:
        headers = {"content-type": "multipart/form-data; boundary=b", "content-length": str(len(body))}

        async def stream(self):  # type: ignore[no-untyped-def]
            yield body

    with pytest.raises(InsufficientStorage) as caught:
        asyncio.run(receive_file(Request(), FullDisk(tmp_path), 1 << 20))  # type: ignore[arg-type]
    assert caught.value.status_code == 507
    assert caught.value.code == "insufficient_storage"


def test_a_webhook_connects_to_the_address_it_checked_not_a_rebound_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver that answers a public address first and 127.0.0.1 after (DNS rebinding)."""
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    import httpx

    from app import webhooks

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            hits.append(self.headers.get("host", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: str, *args: object, **kwargs: object) -> list:  # type: ignore[type-arg]
        if host != "rebind.example":
            return real(host, *args, **kwargs)  # type: ignore[arg-type]
        lookups.append(host)
        address = "93.184.216.34" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        try:  # the public address is (most likely) not reachable from here; either way it is not the loopback
            webhooks.deliver(f"http://rebind.example:{port}/hook", "s", {"a": 1}, allow_private=False, timeout_s=1)
        except httpx.HTTPError:
            pass
        assert lookups == ["rebind.example"]  # one lookup: the checked answer is the one used
        assert hits == []  # the loopback server was never reached
        # Pinned to a reachable checked address, the request keeps the URL's host name.
        monkeypatch.setattr(webhooks, "check_url", lambda url, allow_private: "127.0.0.1")
        assert webhooks.deliver(f"http://rebind.example:{port}/hook", "s", {"a": 1}, allow_private=True) == 204
        assert hits == [f"rebind.example:{port}"]
    finally:
        server.shutdown()


def test_two_requests_racing_with_one_idempotency_key_give_one_result_and_no_500(tmp_path: Path) -> None:
    from app import idempotency
    from app.errors import Conflict
    from app.tables import Tenant

    url = f"sqlite:///{tmp_path / 'race.db'}"
    upgrade(url)
    engine = make_engine(url)
    make = sessionmaker(bind=engine)
    with make() as s:
        s.add(Tenant(id="ten_race", name="race"))
        s.commit()
    first, second = make(), make()
    try:
        # Both looked before either stored its answer.
        assert idempotency.replay(first, "ten_race", "POST /v1/jobs", "k", "d") is None
        assert idempotency.replay(second, "ten_race", "POST /v1/jobs", "k", "d") is None
        idempotency.remember(first, "ten_race", "POST /v1/jobs", "k", "d", 202, {"id": "job_1"})
        first.commit()
        with pytest.raises(Conflict) as caught:
            idempotency.remember(second, "ten_race", "POST /v1/jobs", "k", "d", 202, {"id": "job_2"})
        assert caught.value.code == "idempotency_key_in_flight"
        second.rollback()
        # The retry gets the first answer.
        row = idempotency.replay(second, "ten_race", "POST /v1/jobs", "k", "d")
        assert row is not None
        assert row.response == {"id": "job_1"}
    finally:
        first.close()
        second.close()
        engine.dispose()


def test_a_tenant_reads_and_rotates_its_webhook_secret(embedded: Service) -> None:
    import os
    import subprocess
    import sys

    from app.webhooks import signature, verify

    key, other = embedded.new_key(), embedded.new_key()
    with embedded.client(key) as c, embedded.client(other) as o:
        first = c.get("/v1/webhook-secret").json()["secret"]
        assert len(first) == 64
        assert o.get("/v1/webhook-secret").json()["secret"] != first
        rotated = c.post("/v1/webhook-secret").json()["secret"]
        assert rotated != first
        assert c.get("/v1/webhook-secret").json()["secret"] == rotated
        assert embedded.client().get("/v1/webhook-secret").status_code == 401
    body = b'{"id":"job_1"}'
    assert verify(rotated, body, signature(rotated, body))
    env = {**os.environ, "SHEARS_URL": embedded.url, "SHEARS_API_KEY": key}
    cli = [sys.executable, "-m", "shears.cli", "remote", "webhook-secret"]
    assert subprocess.run(cli, env=env, capture_output=True, text=True, check=True).stdout.strip() == rotated
    again = subprocess.run([*cli, "--rotate"], env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert again not in (rotated, "")
