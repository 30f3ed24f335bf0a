"""Request dependencies: one database session per request, the caller's tenant, settings, store."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header
from sqlalchemy.orm import Session

from app.auth.service import authenticate
from app.db import session_scope
from app.settings import Settings, get_settings
from app.storage import ArtifactStore, get_store
from app.tables import Tenant


def get_db() -> Iterator[Session]:
    """Commits once when the request succeeds, rolls back when it fails; enqueues after commit."""
    with session_scope() as session:
        yield session


# "function" scope: commit (and enqueue) before the response is sent, so a client that
# reads back what it just created always finds it.
SessionDep = Annotated[Session, Depends(get_db, scope="function")]


def current_tenant(
    session: SessionDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Tenant:
    return authenticate(session, authorization)


def store_dep() -> ArtifactStore:
    return get_store(get_settings())


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ArtifactStore, Depends(store_dep)]
