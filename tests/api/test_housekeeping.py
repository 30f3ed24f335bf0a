"""Housekeeping: deletes that really remove files, usage against the limits, retention by a sweep."""

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.api.test_auth_and_tenancy import _assert_error
from tests.conftest import MAX_UPLOAD
from tests.services import Service, upload_model, wait_for_job

RETENTION_S = 8.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """No worker at first, so submitted jobs stay queued; the sweep runs every half second."""
    env = {"SHEARS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "SHEARS_RETENTION_SWEEP_S": "0.5"}
    svc = Service(tmp_path_factory.mktemp("housekeeping"), env).start(worker=False)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 40)
    np.savez(path, x_train=x, y_train=y, x_val=x[:10], y_val=y[:10])
    return path


def _files(service: Service, row_id: str) -> list[Path]:
    return [p for p in (service.root / "artifacts").rglob("*") if row_id in str(p)]  # files and folders


def _spec(model_id: str, dataset_id: str) -> dict[str, object]:
    return {"model_id": model_id, "dataset_id": dataset_id, "target": {"sparsity": 0.5}, "finetune": {"epochs": 0}}


def test_uploads_in_use_are_kept_and_deletes_remove_files(service: Service, digits_model: Path, npz: Path) -> None:
    key, other = service.new_key(), service.new_key()
    with service.client(key) as c, service.client(other) as o:
        model_id = upload_model(c, digits_model)
        with npz.open("rb") as f:
            dataset_id = c.post("/v1/datasets", files={"file": ("d.npz", f)}).json()["id"]
        assert _files(service, model_id)
        assert _files(service, dataset_id)
        job = c.post("/v1/jobs", json=_spec(model_id, dataset_id)).json()
        assert job["status"] == "queued"  # no worker yet

        usage = c.get("/v1/usage").json()
        assert usage["models"] == usage["datasets"] == usage["jobs"] == usage["jobs_queued"] == 1
        assert usage["bytes_stored"] == usage["upload_bytes"] > digits_model.stat().st_size
        assert usage["limits"]["upload_bytes"] == 20 * 1024**3
        assert usage["limits"]["retention_days"] is None

        _assert_error(c.delete(f"/v1/models/{model_id}"), 409, "model_in_use")
        _assert_error(c.delete(f"/v1/datasets/{dataset_id}"), 409, "dataset_in_use")
        for path in (f"/v1/models/{model_id}", f"/v1/datasets/{dataset_id}", f"/v1/jobs/{job['id']}"):
            _assert_error(o.delete(path), 404, "not_found")  # another tenant's id

        assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204  # a queued job: cancelled, then deleted
        _assert_error(c.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
        for path in (f"/v1/models/{model_id}", f"/v1/datasets/{dataset_id}"):
            assert c.delete(path).status_code == 204
            _assert_error(c.get(path), 404, "not_found")
            _assert_error(c.delete(path), 404, "not_found")
        assert not _files(service, model_id)
        assert not _files(service, dataset_id)
        assert c.get("/v1/models").json()["items"] == []
        usage = c.get("/v1/usage").json()
        assert (usage["models"], usage["datasets"], usage["jobs"], usage["bytes_stored"]) == (0, 0, 0, 0)
        _assert_error(c.post("/v1/jobs", json=_spec(model_id, "builtin:digits")), 404, "not_found")
        assert upload_model(c, digits_model) != model_id  # the same bytes again are a new model


def test_old_jobs_and_expired_uploads_are_swept(service: Service, digits_model: Path) -> None:
    # SHEARS_RETENTION_DAYS tiny (8 s), read by the worker that runs the sweep.
    service.start_worker(env={"SHEARS_RETENTION_DAYS": str(RETENTION_S / 86400)})
    key = service.new_key()
    with service.client(key) as c:
        with digits_model.open("rb") as f:
            r = c.post("/v1/models", params={"expires_in": 1}, files={"file": ("m.keras", f)})
        assert r.status_code == 201
        assert r.json()["expires_at"]
        model_id = r.json()["id"]
        # It runs after the model has expired: a model in use is not swept.
        job = wait_for_job(c, c.post("/v1/jobs", json=_spec(model_id, "builtin:digits")).json()["id"], timeout=180)
        assert job["status"] == "succeeded", job
        assert _files(service, job["id"])  # checked within RETENTION_S of its end
        assert c.get("/v1/usage").json()["job_bytes"] > 0

        deadline = time.monotonic() + RETENTION_S + 15
        while c.get(f"/v1/jobs/{job['id']}").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        _assert_error(c.get(f"/v1/jobs/{job['id']}"), 404, "not_found")  # past the retention
        _assert_error(c.get(f"/v1/models/{model_id}"), 404, "not_found")  # past its expires_in
        assert not _files(service, job["id"])
        assert not _files(service, model_id)
        bad = c.post("/v1/models", params={"expires_in": 0}, files={"file": ("m", b"x")})
        _assert_error(bad, 422, "invalid_request")
