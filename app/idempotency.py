"""`Idempotency-Key`: a retried request with the same key and body gets the first response."""

import hashlib
import json
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.auth import repository as tenants
from app.errors import Conflict, InvalidInput
from app.tables import IdempotencyKey


def request_hash(payload: Any) -> str:
    """A stable hash of a JSON body (key order does not matter), or of raw bytes."""
    if isinstance(payload, bytes):
        return hashlib.sha256(payload).hexdigest()
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def check_key(key: str | None) -> str | None:
    if key is not None and not 1 <= len(key) <= 200:
        raise InvalidInput("Idempotency-Key must be 1 to 200 characters", code="invalid_idempotency_key")
    return key


def replay(session: Session, tenant_id: str, route: str, key: str | None, digest: str) -> IdempotencyKey | None:
    """The stored response for this key, or None; 409 if the key was used for another request."""
    if key is None:
        return None
    row = tenants.idempotency_key(session, tenant_id, route, key)
    if row is not None and row.request_sha256 != digest:
        raise Conflict("this Idempotency-Key was already used with a different request", code="idempotency_key_reused")
    return row


def remember(
    session: Session, tenant_id: str, route: str, key: str | None, digest: str, status: int, body: dict[str, Any]
) -> None:
    """Store the response under the key. Two requests with one key racing: both found no row, and
    the second to insert meets the first's (the unique index waits for it): that one answers 409
    `idempotency_key_in_flight` and its transaction, with whatever it created, is rolled back."""
    if key is not None:
        row = IdempotencyKey(
            tenant_id=tenant_id, route=route, key=key, request_sha256=digest, status_code=status, response=body
        )
        try:
            tenants.add(session, row, flush=True)
        except IntegrityError:
            raise Conflict(
                "a request with this Idempotency-Key was being processed at the same time; "
                "send it again to get that request's response",
                code="idempotency_key_in_flight",
            ) from None
