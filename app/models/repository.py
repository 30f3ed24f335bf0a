from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import pagination
from app.tables import Artifact, Model


def add(session: Session, model: Model, artifact: Artifact) -> Model:
    session.add(artifact)
    session.flush()
    model.artifact_id = artifact.id
    session.add(model)
    session.flush()
    return model


def get(session: Session, tenant_id: str, model_id: str) -> Model | None:
    return session.scalar(select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id))


def list_for(session: Session, tenant_id: str, cursor: str | None, limit: int) -> Sequence[Model]:
    query = pagination.page(select(Model).where(Model.tenant_id == tenant_id), Model, cursor, limit)
    return session.scalars(query).all()


def by_sha256(session: Session, tenant_id: str, sha256: str) -> Model | None:
    return session.scalar(select(Model).where(Model.tenant_id == tenant_id, Model.sha256 == sha256).limit(1))


def stored_bytes(session: Session, tenant_id: str) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(Model.bytes), 0)).where(Model.tenant_id == tenant_id)) or 0)
