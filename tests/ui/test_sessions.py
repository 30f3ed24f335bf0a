"""Dashboard sessions against a running API on PostgreSQL with `SHEARS_SECRET_KEY` set, behind
what looks like a proxy on another host (uvicorn is told to trust no forwarding headers)."""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import Service, postgres_database, ui_session, upload_model

SECRET = "test-secret-of-this-module"
NOT_LOGGED_IN = 303  # a page without a live session sends the browser to the login form


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with postgres_database() as url:
        yield url


def _api(tmp_path_factory: pytest.TempPathFactory, database: str, secret: str | None) -> Service:
    env = {"SHEARS_DATABASE_URL": database, "FORWARDED_ALLOW_IPS": "192.0.2.1"}
    if secret is not None:
        env["SHEARS_SECRET_KEY"] = secret
    return Service(tmp_path_factory.mktemp("sessions"), env).start(worker=False)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Service]:
    """The API alone (no worker: jobs stay queued), with a secret key."""
    service = _api(tmp_path_factory, database, SECRET)
    yield service
    service.stop()


def _sign(mac_key: bytes, key_id: str, expires: str) -> str:
    payload = f"{key_id}.{expires}"
    return f"{payload}.{hmac.new(mac_key, b'shears-ui-session:' + payload.encode(), hashlib.sha256).hexdigest()}"


def _status(service: Service, cookie: str | bytes) -> int:
    raw = cookie if isinstance(cookie, bytes) else cookie.encode()
    with httpx.Client(base_url=service.url, headers={"Cookie": b"shears_session=" + raw}) as client:
        return client.get("/ui/jobs").status_code


def test_a_database_dump_is_not_enough_to_mint_a_session(secured: Service) -> None:
    key = secured.new_key()
    key_hash = bytes.fromhex(hashlib.sha256(key.encode()).hexdigest())  # what the database holds
    with ui_session(secured, key) as client:
        key_id, expires, _ = client.cookies["shears_session"].split(".")
        assert client.get("/ui/jobs").status_code == 200
        # Signed as before, with the stored hash alone: refused.
        assert _status(secured, _sign(key_hash, key_id, expires)) == NOT_LOGGED_IN
        # The same with the server's secret in front: accepted (so the refusal above is the secret's).
        minted = _sign(SECRET.encode() + key_hash, key_id, expires)
        assert _status(secured, minted) == 200
        # Revoking the key still ends its sessions.
        assert secured.cli("keys", "revoke", key) == "revoked 1 key(s)"
        assert client.get("/ui/jobs").status_code == NOT_LOGGED_IN
        assert _status(secured, minted) == NOT_LOGGED_IN


def test_replicas_share_sessions_only_through_the_secret_key(
    tmp_path_factory: pytest.TempPathFactory, database: str, secured: Service
) -> None:
    key = secured.new_key()
    replica = _api(tmp_path_factory, database, SECRET)
    unset = _api(tmp_path_factory, database, None)
    try:
        with ui_session(secured, key) as client:
            token = client.cookies["shears_session"]
            assert _status(replica, token) == 200
            assert _status(unset, token) == NOT_LOGGED_IN
        # Without a secret, a process signs with its own random one: its sessions work there only,
        # and it says so once in its log.
        for _ in range(2):
            with ui_session(unset, key) as client:
                assert client.get("/ui/jobs").status_code == 200
                assert _status(secured, client.cookies["shears_session"]) == NOT_LOGGED_IN
    finally:
        replica.stop()
        unset.stop()
    assert (unset.root / "api.log").read_text().count("SHEARS_SECRET_KEY is not set") == 1
    assert "SHEARS_SECRET_KEY is not set" not in (replica.root / "api.log").read_text()


def test_behind_a_tls_proxy_the_cookie_is_secure_and_the_forwarded_host_is_the_origin(secured: Service) -> None:
    key = secured.new_key()
    proxied = {"Host": "api:8000", "X-Forwarded-Host": "shears.example.com", "Origin": "https://shears.example.com"}
    with httpx.Client(base_url=secured.url) as client:
        plain = client.post("/ui/login", data={"key": key})
        assert plain.status_code == 303
        assert "Secure" not in plain.headers["set-cookie"]
        # uvicorn trusts no proxy here, so only the header itself can make the cookie Secure.
        tls = client.post("/ui/login", data={"key": key}, headers={**proxied, "X-Forwarded-Proto": "https"})
        assert tls.status_code == 303, tls.text
        assert "Secure" in tls.headers["set-cookie"]
        assert "Secure" not in client.post("/ui/login", data={"key": key}, headers=proxied).headers["set-cookie"]
        # The Origin is compared with X-Forwarded-Host when a proxy sets it, else with Host.
        rewritten = {"Host": "api:8000", "Origin": "https://shears.example.com"}
        assert client.post("/ui/login", data={"key": key}, headers=rewritten).status_code == 403
        other = {**proxied, "Origin": "https://evil.example"}
        assert client.post("/ui/login", data={"key": key}, headers=other).status_code == 403
        assert client.post("/ui/logout", headers=proxied).status_code == 303
        assert client.post("/ui/logout", headers=other).status_code == 403


def test_hostile_session_cookies_mean_not_logged_in(secured: Service) -> None:
    key = secured.new_key()
    with ui_session(secured, key) as client:
        key_id, expires, signature = client.cookies["shears_session"].split(".")
    for cookie in (
        b"k.\xb2\xb2",  # '²' passes str.isdigit(), int() refuses it
        f"{key_id}.\xb2\xb2.{signature}".encode("latin-1"),
        f"{key_id}.{expires}.{'é' * 64}".encode("latin-1"),  # a non-ASCII signature
        f"{key_id}.{expires}.{signature}\xe9".encode("latin-1"),
        f"{key_id}\xe9.{expires}.{signature}".encode("latin-1"),
        f"{key_id}.{'9' * 400}.{signature}".encode(),
        b"..",
        b"key_%00.1.2",
    ):
        assert _status(secured, cookie) == NOT_LOGGED_IN, cookie
    with httpx.Client(base_url=secured.url, headers={"Cookie": b"shears_session=k.\xb2\xb2"}) as client:
        assert client.get("/ui/jobs/job_x/progress.json").status_code == 401


def test_hostile_logins_show_the_form_with_an_error(secured: Service) -> None:
    key = secured.new_key()
    with httpx.Client(base_url=secured.url) as client:
        for bad in (key[:12] + "\x00" + key[13:], "shears_\x00", key + "\x00", "shears_é" + key[8:], "\x00"):
            response = client.post("/ui/login", data={"key": bad})
            assert response.status_code == 401, (bad, response.text)
            assert "unknown or revoked" in response.text
            assert "shears_session" not in client.cookies


def test_hostile_ids_and_form_tokens_are_refused_not_failed(secured: Service, digits_model: Path) -> None:
    key = secured.new_key()
    with secured.client(key) as api:
        model_id = upload_model(api, digits_model)
        submitted = api.post("/v1/jobs", json={"model_id": model_id, "kind": "profile"})
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
    with ui_session(secured, key) as client:
        for path in (
            "/ui/jobs/%00",
            "/ui/jobs/job_%00x",
            "/ui/jobs/%00/progress.json",
            "/ui/jobs/%00/files/report.json",
            f"/ui/jobs/{job_id}/files/%00",
            f"/ui/jobs/{job_id}/files/report%01.json",
        ):
            response = client.get(path)
            assert response.status_code == 404, (path, response.text)
        assert client.post("/ui/jobs/%00/cancel", data={"form_token": "x"}).status_code == 404
        # A cursor naming a row id with a NUL in it: a clear 4xx, not the database's error.
        cursor = base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00+00:00", "job_\x00"]).encode()).decode()
        assert 400 <= client.get("/ui/jobs", params={"cursor": cursor}).status_code < 500
        assert client.get("/ui/jobs", params={"cursor": "\xb2"}).status_code == 422
        # A form token that is not ASCII: refused like a wrong one, and the job is left alone.
        url = f"/ui/jobs/{job_id}/cancel"
        for token in ("é" * 64, "\x00" * 64, "\xb2"):
            response = client.post(url, data={"form_token": token}, headers={"Origin": secured.url})
            assert response.status_code == 403, (token, response.text)
    with secured.client(key) as api:
        assert api.get(f"/v1/jobs/{job_id}").json()["cancel_requested"] is False


def test_logout_ends_the_session_on_the_server_not_only_in_the_browser(secured: Service) -> None:
    key = secured.new_key()
    with ui_session(secured, key) as client:
        cookie = client.cookies["shears_session"]
        assert _status(secured, cookie) == 200
        assert client.post("/ui/logout", headers={"Origin": secured.url}).status_code == 303
    # A copy of the cookie (kept by an attacker, or another tab) is refused from now on.
    assert _status(secured, cookie) == NOT_LOGGED_IN
    # The key itself still works: a new login opens a new session.
    with ui_session(secured, key) as client:
        assert client.get("/ui/jobs").status_code == 200
