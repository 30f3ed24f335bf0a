"""A worker's host tables: shared through the artifact store per CPU fingerprint, handed to the engine."""

import json
from pathlib import Path

import pytest

from app.settings import Settings
from app.storage import LocalArtifactStore
from contract import host_tables
from workers import host_calibration


@pytest.fixture
def worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Settings, LocalArtifactStore]:
    monkeypatch.delenv("SHEARS_HOST_PROFILES_DIR", raising=False)
    monkeypatch.setenv("SHEARS_HOST_CALIBRATION", "off")
    settings = Settings(data_dir=tmp_path / "data")
    return settings, LocalArtifactStore(tmp_path / "artifacts")


def test_no_tables_and_calibration_off_means_the_fallback(worker: tuple[Settings, LocalArtifactStore]) -> None:
    settings, store = worker
    assert host_calibration.engine_tables(settings, store) is None


def test_tables_another_worker_stored_are_fetched_for_the_engine(
    worker: tuple[Settings, LocalArtifactStore], tmp_path: Path
) -> None:
    settings, store = worker
    data = dict(host_tables.fallback())
    data["machine"] = dict(data["machine"], fingerprint=host_tables.fingerprint())
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps(data))
    store.put_file(f"system/host-profiles/host-{host_tables.fingerprint()['id']}.json", shared)
    path = host_calibration.engine_tables(settings, store)
    assert path == settings.data_dir / "host-profiles" / f"host-{host_tables.fingerprint()['id']}.json"
    assert path is not None
    assert json.loads(path.read_text())["machine"]["fingerprint"]["id"] == host_tables.fingerprint()["id"]
