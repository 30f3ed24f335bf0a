"""Webhook delivery: one attempt, recorded whatever its outcome."""

import logging

from app.auth import repository as tenants
from app.db import session_scope
from app.errors import InvalidInput
from app.jobs import repository
from app.jobs.schemas import JobOut
from app.settings import get_settings
from app.tables import WebhookDelivery
from app.webhooks import deliver as post

log = logging.getLogger("shears.webhooks")


def deliver(job_id: str) -> bool:
    """True when delivered, or when there is nothing (more) to try."""
    settings = get_settings()
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        if job is None or not job.callback_url:
            return True
        tenant = tenants.tenant(session, job.tenant_id)
        assert tenant is not None
        url, secret, payload = job.callback_url, tenant.webhook_secret, JobOut.from_row(job)
        attempt = len(repository.deliveries(session, job_id)) + 1
    status, error, final = None, None, False
    try:
        status = post(url, secret, payload, settings.webhook_allow_private)
    except InvalidInput as exc:
        error, final = exc.message, True  # the address is refused: retrying will not help
    except Exception as exc:  # network failures of every kind are retried
        error = f"{type(exc).__name__}: {exc}"[:1000]
    ok = status is not None and 200 <= status < 300
    with session_scope() as session:
        repository.add_delivery(
            session,
            WebhookDelivery(job_id=job_id, url=url, attempt=attempt, status_code=status, error=error, succeeded=ok),
        )
    log.info("webhook for %s attempt %d: %s", job_id, attempt, status or error)
    return ok or final
