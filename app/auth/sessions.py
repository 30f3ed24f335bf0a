"""Browser sessions of the dashboard: a signed cookie that names the API key it was opened with.

The cookie is `<key id>.<expiry>.<signature>`, an HMAC-SHA256 keyed by the server's secret
(`SHEARS_SECRET_KEY`) followed by the key's stored hash. It never carries the key; it cannot be
forged from the database alone (the hash is there, the secret is not) nor without the key's row;
and it stops working when its key is revoked or it expires.

Without `SHEARS_SECRET_KEY` each API process draws a random secret: its sessions end when it
restarts and are refused by other replicas. A warning says so once.
"""

import hashlib
import hmac
import logging
import re
import secrets
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.auth import repository
from app.auth.service import authenticate, hash_key
from app.errors import Unauthorized
from app.settings import get_settings
from app.tables import EndedSession, Tenant

SESSION_TTL_S = 12 * 3600
# ASCII only: `str.isdigit()` also accepts characters such as '²' that `int()` refuses.
TOKEN = re.compile(r"(key_[0-9a-f]{1,36})\.([0-9]{1,12})\.([0-9a-f]{64})")

log = logging.getLogger("shears.api")
_process_secret = secrets.token_bytes(32)
_warned = False


def _secret() -> bytes:
    global _warned
    configured = get_settings().secret_key
    if configured:
        return configured.encode()
    if not _warned:
        _warned = True
        log.warning(
            "SHEARS_SECRET_KEY is not set: dashboard sessions are signed with a random secret of this "
            "process, so they end when it restarts and only this replica accepts them; set it in production"
        )
    return _process_secret


def _signature(key_hash: str, payload: str) -> str:
    mac_key = _secret() + bytes.fromhex(key_hash)
    return hmac.new(mac_key, b"shears-ui-session:" + payload.encode(), hashlib.sha256).hexdigest()


def usable_key(key: str) -> bool:
    """Whether `key` can be an API key at all: printable ASCII (no NUL for the database to refuse)."""
    return key.isascii() and key.isprintable()


def open_session(session: Session, key: str) -> tuple[Tenant, str]:
    """Check `key` exactly as the API does; return its tenant and a session token (not the key)."""
    key = key.strip()
    if not usable_key(key):
        raise Unauthorized("unknown or revoked API key")
    tenant = authenticate(session, f"Bearer {key}")
    api_key = repository.key_by_hash(session, hash_key(key))
    assert api_key is not None  # authenticate() found it a moment ago
    expires = int(time.time()) + SESSION_TTL_S
    while True:  # a token logged out in this same second is not handed out again: the next second is
        payload = f"{api_key.id}.{expires}"
        signature = _signature(api_key.key_hash, payload)
        if repository.ended_session(session, signature) is None:
            return tenant, f"{payload}.{signature}"
        expires += 1


def session_tenant(session: Session, token: str | None) -> Tenant:
    """The tenant of a live session token; Unauthorized for a missing, malformed, forged, expired or
    revoked one."""
    match = TOKEN.fullmatch(token or "")
    if match is None or int(match[2]) < time.time():
        raise Unauthorized("no session, or it has expired: log in again")
    key_id, expires, signature = match.groups()
    row = repository.key_with_tenant(session, key_id)
    if row is None:
        raise Unauthorized("unknown session: log in again")
    api_key, tenant = row
    if not hmac.compare_digest(signature.encode(), _signature(api_key.key_hash, f"{key_id}.{expires}").encode()):
        raise Unauthorized("unknown session: log in again")
    if api_key.revoked_at is not None:
        raise Unauthorized("the key of this session has been revoked")
    if repository.ended_session(session, signature) is not None:
        raise Unauthorized("this session has been logged out: log in again")
    return tenant


def end_session(session: Session, token: str | None) -> None:
    """Logout, on the server: the token is refused from now on (on every replica), until it expires."""
    match = TOKEN.fullmatch(token or "")
    if match is None or int(match[2]) < time.time():
        return
    now = datetime.now(UTC)
    repository.forget_ended_before(session, now)
    if repository.ended_session(session, match[3]) is None:
        repository.add(session, EndedSession(signature=match[3], expires_at=datetime.fromtimestamp(int(match[2]), UTC)))
