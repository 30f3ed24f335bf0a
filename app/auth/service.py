"""API keys: shown once, stored only as a sha256 hash, each belonging to one tenant."""

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Unauthorized
from app.tables import ApiKey, Tenant

KEY_PREFIX = "shears_"


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, tenant_name: str) -> str:
    """A new key for `tenant_name` (created if new). The returned key is not stored anywhere."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == tenant_name))
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        session.add(tenant)
        session.flush()
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:12]))
    session.flush()
    return key


def authenticate(session: Session, authorization: str | None) -> Tenant:
    if not authorization:
        raise Unauthorized("missing `Authorization: Bearer <key>` header")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    row = session.execute(
        select(Tenant)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == hash_key(key.strip()), ApiKey.revoked_at.is_(None))
    ).scalar_one_or_none()
    if row is None:
        raise Unauthorized("unknown or revoked API key")
    return row
