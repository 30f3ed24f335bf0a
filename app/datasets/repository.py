from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import pagination
from app.tables import Artifact, Dataset


def add(session: Session, dataset: Dataset, artifact: Artifact) -> Dataset:
    session.add(artifact)
    session.flush()
    dataset.artifact_id = artifact.id
    session.add(dataset)
    session.flush()
    return dataset


def get(session: Session, tenant_id: str, dataset_id: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id))


def list_for(session: Session, tenant_id: str, cursor: str | None, limit: int) -> Sequence[Dataset]:
    query = pagination.page(select(Dataset).where(Dataset.tenant_id == tenant_id), Dataset, cursor, limit)
    return session.scalars(query).all()


def by_sha256(session: Session, tenant_id: str, sha256: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.tenant_id == tenant_id, Dataset.sha256 == sha256).limit(1))


def stored_bytes(session: Session, tenant_id: str) -> int:
    return int(
        session.scalar(select(func.coalesce(func.sum(Dataset.bytes), 0)).where(Dataset.tenant_id == tenant_id)) or 0
    )
