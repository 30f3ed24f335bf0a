"""Queries of tenants, API keys, ended sessions and the idempotency keys of a tenant's requests."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, delete, select
from sqlalchemy.orm import Session

from app.tables import ApiKey, EndedSession, IdempotencyKey, Tenant


def tenant(session: Session, tenant_id: str) -> Tenant | None:
    return session.get(Tenant, tenant_id)


def tenant_named(session: Session, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def add(session: Session, row: Tenant | ApiKey | EndedSession | IdempotencyKey, flush: bool = False) -> None:
    """Add a row; `flush` gives it its id now."""
    session.add(row)
    if flush:
        session.flush()


def keys_with_prefix(session: Session, prefix: str) -> Sequence[Row[ApiKey, Tenant]]:
    """Every key (revoked ones too) whose public prefix is `prefix`, with its tenant."""
    query = select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).where(ApiKey.prefix == prefix)
    return session.execute(query).all()


def key_with_tenant(session: Session, key_id: str) -> Row[ApiKey, Tenant] | None:
    query = select(ApiKey, Tenant).join(Tenant, ApiKey.tenant_id == Tenant.id).where(ApiKey.id == key_id)
    return session.execute(query).first()


def key_by_hash(session: Session, key_hash: str, active: bool = False) -> ApiKey | None:
    query = select(ApiKey).where(ApiKey.key_hash == key_hash)
    return session.scalars(query.where(ApiKey.revoked_at.is_(None)) if active else query).first()


def active_key(session: Session, key_id: str) -> ApiKey | None:
    return session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))).first()


def ended_session(session: Session, signature: str) -> EndedSession | None:
    return session.get(EndedSession, signature)


def forget_ended_before(session: Session, moment: datetime) -> None:
    session.execute(delete(EndedSession).where(EndedSession.expires_at < moment))


def idempotency_key(session: Session, tenant_id: str, route: str, key: str) -> IdempotencyKey | None:
    """The response stored for the tenant's `key` on `route`, if any."""
    query = select(IdempotencyKey).where(
        IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.route == route, IdempotencyKey.key == key
    )
    return session.scalar(query)
