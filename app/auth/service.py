"""API keys: shown once, stored only as a sha256 hash, each belonging to one tenant."""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.auth import repository
from app.errors import Unauthorized
from app.tables import ApiKey, Tenant

KEY_PREFIX = "shears_"
PREFIX_LENGTH = 12


def hash_key(key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, tenant_name: str) -> str:
    """A new key for `tenant_name` (created if new). The returned key is not stored anywhere."""
    tenant = repository.tenant_named(session, tenant_name)
    if tenant is None:
        tenant = Tenant(name=tenant_name)
        repository.add(session, tenant, flush=True)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    repository.add(session, ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:PREFIX_LENGTH]), flush=True)
    return key


def authenticate(session: Session, authorization: str | None) -> Tenant:
    if not authorization:
        raise Unauthorized("missing `Authorization: Bearer <key>` header")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("the Authorization header must be `Bearer <key>`")
    key = key.strip()
    digest = hash_key(key)
    # Found by its public prefix, then compared in constant time; unknown and revoked keys
    # get the same answer.
    for api_key, tenant in repository.keys_with_prefix(session, key[:PREFIX_LENGTH]):
        if hmac.compare_digest(api_key.key_hash, digest) and api_key.revoked_at is None:
            return tenant
    raise Unauthorized("unknown or revoked API key")


def revoke_key(session: Session, key: str) -> int:
    """Revoke one key, named by the whole key or by its id (`key_...`); returns how many (0 or 1).

    Never by a prefix: prefixes are not unique, and one shared across tenants would revoke another
    tenant's key."""
    key = key.strip()
    if key.startswith("key_"):
        row = repository.active_key(session, key)
    elif len(key) > PREFIX_LENGTH:
        row = repository.key_by_hash(session, hash_key(key), active=True)
    else:
        raise ValueError("give the whole key, or its id (key_...): a prefix may be shared by several keys")
    if row is None:
        return 0
    row.revoked_at = datetime.now(UTC)
    return 1
