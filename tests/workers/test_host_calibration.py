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
    data = dict(host_tables.fallback(), tables_version=host_tables.TABLES_VERSION)
    data["machine"] = dict(data["machine"], fingerprint=host_tables.fingerprint())
    shared = tmp_path / "shared.json"
    shared.write_text(json.dumps(data))
    store.put_file(f"system/host-profiles/host-{host_tables.fingerprint()['id']}.json", shared)
    path = host_calibration.engine_tables(settings, store)
    assert path == settings.data_dir / "host-profiles" / f"host-{host_tables.fingerprint()['id']}.json"
    assert path is not None
    assert json.loads(path.read_text())["machine"]["fingerprint"]["id"] == host_tables.fingerprint()["id"]


def test_the_sandboxed_engine_reads_the_tables_the_worker_hands_it(
    digits_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the launcher jobs get (bubblewrap where the host has it, as in CI): the tables named by
    `SHEARS_HOST_PROFILE` live outside the job's folder (here at a relative path, readable by their owner only), and
    the engine must still read them. It did not (2026-12-08): every host estimate of a sandboxed job said "host
    tables from ANOTHER CPU". The shared file is copied, not handed to the sandbox's uid."""
    from contract.engine import EngineRequest
    from workers.sandbox import run_engine

    tables = tmp_path / "host-profiles" / "host.json"
    tables.parent.mkdir()
    data = dict(host_tables.fallback())
    data["machine"] = dict(data["machine"], fingerprint=host_tables.fingerprint())
    tables.write_text(json.dumps(data))
    tables.chmod(0o600)
    before = tables.stat()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SHEARS_HOST_PROFILE", "host-profiles/host.json")
    workdir = tmp_path / "job"
    workdir.mkdir()
    model = workdir / "input.keras"
    model.write_bytes(digits_model.read_bytes())
    request = EngineRequest(kind="profile", spec={"devices": ["host"]}, model=str(model), out=str(workdir / "out"))
    run_engine(request, workdir, on_progress=lambda *_: None, on_log=lambda _: None, cpu_seconds=600)
    report = json.loads((workdir / "out" / "report.json").read_text())
    (host,) = [d for d in report["latency"] if d["device"] == "host"]
    assert f"host tables calibrated on this CPU, fingerprint {host_tables.fingerprint()['id']}" in host["basis"]
    after = tables.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)


def test_tables_of_an_older_version_count_as_none(worker: tuple[Settings, LocalArtifactStore]) -> None:
    settings, store = worker
    local = settings.data_dir / "host-profiles" / f"host-{host_tables.fingerprint()['id']}.json"
    local.parent.mkdir(parents=True)
    data = dict(host_tables.fallback(), tables_version=host_tables.TABLES_VERSION - 1)
    local.write_text(json.dumps(data))
    assert host_calibration.engine_tables(settings, store) is None  # calibration off: the fallback, which says so
    local.write_text(json.dumps(dict(data, tables_version=host_tables.TABLES_VERSION)))
    assert host_calibration.engine_tables(settings, store) == local
