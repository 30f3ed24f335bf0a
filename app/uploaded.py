"""Queries shared by the tables of uploaded files (models, datasets): always within one tenant."""

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import pagination
from app.tables import Artifact

T = TypeVar("T", bound=Any)


class UploadedFiles(Generic[T]):
    def __init__(self, table: type[T]) -> None:
        self.table = table

    def add(self, session: Session, row: T, artifact: Artifact) -> T:
        session.add(artifact)
        session.flush()
        row.artifact_id = artifact.id
        session.add(row)
        session.flush()
        return row

    def get(self, session: Session, tenant_id: str, row_id: str) -> T | None:
        t = self.table
        return session.scalar(select(t).where(t.id == row_id, t.tenant_id == tenant_id, t.deleted_at.is_(None)))

    def list_for(self, session: Session, tenant_id: str, cursor: str | None, limit: int) -> Sequence[T]:
        t = self.table
        return session.scalars(
            pagination.page(select(t).where(t.tenant_id == tenant_id, t.deleted_at.is_(None)), t, cursor, limit)
        ).all()

    def by_sha256(self, session: Session, tenant_id: str, sha256: str) -> T | None:
        t = self.table
        query = select(t).where(t.tenant_id == tenant_id, t.sha256 == sha256, t.deleted_at.is_(None)).limit(1)
        return session.scalar(query)

    def stored_bytes(self, session: Session, tenant_id: str) -> int:
        t = self.table
        return int(
            session.scalar(
                select(func.coalesce(func.sum(t.bytes), 0)).where(t.tenant_id == tenant_id, t.deleted_at.is_(None))
            )
            or 0
        )
