"""Browser sessions of the dashboard: a signed cookie that names the API key it was opened with.

The cookie is `<key id>.<expiry>.<signature>`, signed with HMAC-SHA256 keyed by the key's stored
hash: it never carries the key, cannot be forged without the hash (which never leaves the server),
and stops working when its key is revoked or it expires.
"""

import hashlib
import hmac
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.service import authenticate, hash_key
from app.errors import Unauthorized
from app.tables import ApiKey, Tenant

SESSION_TTL_S = 12 * 3600


def _signature(key_hash: str, payload: str) -> str:
    return hmac.new(bytes.fromhex(key_hash), b"shears-ui-session:" + payload.encode(), hashlib.sha256).hexdigest()


def open_session(session: Session, key: str) -> tuple[Tenant, str]:
    """Check `key` exactly as the API does; return its tenant and a session token (not the key)."""
    key = key.strip()
    tenant = authenticate(session, f"Bearer {key}")
    api_key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
    assert api_key is not None  # authenticate() found it a moment ago
    payload = f"{api_key.id}.{int(time.time()) + SESSION_TTL_S}"
    return tenant, f"{payload}.{_signature(api_key.key_hash, payload)}"


def session_tenant(session: Session, token: str | None) -> Tenant:
    """The tenant of a live session token; Unauthorized for a missing, forged, expired or revoked one."""
    key_id, _, rest = (token or "").partition(".")
    expires, _, signature = rest.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        raise Unauthorized("no session, or it has expired: log in again")
    row = session.execute(
        select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).where(ApiKey.id == key_id)
    ).first()
    if row is None:
        raise Unauthorized("unknown session: log in again")
    api_key, tenant = row
    if not hmac.compare_digest(signature, _signature(api_key.key_hash, f"{key_id}.{expires}")):
        raise Unauthorized("unknown session: log in again")
    if api_key.revoked_at is not None:
        raise Unauthorized("the key of this session has been revoked")
    return tenant
