from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def list_for(session: Session, tenant_id: str, limit: int) -> Sequence[Dataset]:
    query = select(Dataset).where(Dataset.tenant_id == tenant_id).order_by(Dataset.created_at.desc()).limit(limit)
    return session.scalars(query).all()
