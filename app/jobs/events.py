"""A job's event log: stored with the job, so a client that comes late still sees the history."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.tables import JobEvent


def record(session: Session, job_id: str, type_: str, data: dict[str, Any]) -> None:
    session.add(JobEvent(job_id=job_id, type=type_, data=data))
    session.flush()


def after(session: Session, job_id: str, last_id: int, limit: int = 500) -> Sequence[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > last_id).order_by(JobEvent.id).limit(limit)
    return session.scalars(query).all()


def sse(event: JobEvent) -> str:
    """One Server-Sent Event; its id lets a client resume with `Last-Event-ID`."""
    import json

    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data, default=str)}\n\n"
