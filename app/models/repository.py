from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def list_for(session: Session, tenant_id: str, limit: int) -> Sequence[Model]:
    query = select(Model).where(Model.tenant_id == tenant_id).order_by(Model.created_at.desc()).limit(limit)
    return session.scalars(query).all()
