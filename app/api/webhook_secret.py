"""`/v1/webhook-secret`: the key a tenant's receivers check deliveries with, to read and to rotate."""

import secrets

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.deps import CurrentTenant, SessionDep
from app.api.docs import ERRORS
from app.auth import repository

router = APIRouter(prefix="/v1/webhook-secret", tags=["webhooks"])


class WebhookSecret(BaseModel):
    secret: str
    """HMAC-SHA256 key of the `Shears-Signature` header of this tenant's deliveries."""


@router.get("", response_model=WebhookSecret, responses=ERRORS)
def read_secret(tenant: CurrentTenant) -> WebhookSecret:
    """The tenant's webhook signing secret."""
    return WebhookSecret(secret=tenant.webhook_secret)


@router.post("", response_model=WebhookSecret, responses=ERRORS)
def rotate_secret(tenant: CurrentTenant, session: SessionDep) -> WebhookSecret:
    """Draw a new signing secret; deliveries from now on are signed with it (the old one stops)."""
    tenant.webhook_secret = secrets.token_hex(32)
    repository.add(session, tenant)
    return WebhookSecret(secret=tenant.webhook_secret)
