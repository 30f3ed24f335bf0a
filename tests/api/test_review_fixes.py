"""From the review of issue 15: `/metrics` behind a token, and `keys revoke` by whole key or id only."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.service import create_key, revoke_key
from app.db import make_engine
from app.migrate import upgrade
from app.settings import get_settings
from app.tables import ApiKey


def test_metrics_can_require_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    monkeypatch.setenv("SHEARS_METRICS_TOKEN", "scrape-me")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            assert client.get("/metrics").status_code == 401
            assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
            ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
            assert ok.status_code == 200
            assert "shears_http_requests_total" in ok.text
    finally:
        monkeypatch.delenv("SHEARS_METRICS_TOKEN")
        get_settings.cache_clear()


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine)() as s:
        yield s
    engine.dispose()


def test_keys_are_revoked_by_whole_key_or_id_never_by_a_shared_prefix(session: Session) -> None:
    a, b = create_key(session, "tenant-a"), create_key(session, "tenant-b")
    # Another tenant's key made to share a's prefix.
    session.scalars(select(ApiKey).where(ApiKey.prefix == b[:12])).one().prefix = a[:12]
    session.flush()
    with pytest.raises(ValueError, match="whole key"):
        revoke_key(session, a[:12])
    assert revoke_key(session, a + "x") == 0
    assert revoke_key(session, a) == 1
    assert revoke_key(session, a) == 0  # already revoked
    row_b = session.scalars(select(ApiKey).where(ApiKey.tenant_id != "")).all()
    live = [k for k in row_b if k.revoked_at is None]
    assert len(live) == 1  # b's key still works
    assert revoke_key(session, live[0].id) == 1
