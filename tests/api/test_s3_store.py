"""Artifacts in S3: the store against moto's S3 server over the real protocol, then the whole
service (upload, job, downloads, presigned URL) with `SHEARS_STORAGE_URL=s3://...`."""

import hashlib
import io
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from app.settings import Settings
from app.storage import LocalArtifactStore, S3ArtifactStore, StorageUnavailable, get_store
from tests.services import Service, s3_server, wait_for_job

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "shears-test", "AWS_SECRET_ACCESS_KEY": "shears-test-secret"}
REGION = "us-east-1"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        with s3_server() as url:
            yield url


def _boto(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION)


def _bucket(endpoint: str) -> str:
    name = f"shears-{secrets.token_hex(4)}"
    _boto(endpoint).create_bucket(Bucket=name)
    return name


def _store(endpoint: str, bucket: str, prefix: str = "tenants/", **settings: Any) -> S3ArtifactStore:
    store = get_store(
        Settings(storage_url=f"s3://{bucket}/{prefix}", s3_endpoint_url=endpoint, s3_region=REGION, **settings)
    )
    assert isinstance(store, S3ArtifactStore)
    return store


def _keys(endpoint: str, bucket: str) -> dict[str, dict[str, Any]]:
    listed = _boto(endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o for o in listed}


def test_writer_open_copy_exists_delete_round_trip(endpoint: str, tmp_path: Path) -> None:
    bucket = _bucket(endpoint)
    store = _store(endpoint, bucket)
    data = os.urandom(300_000)
    writer = store.writer()
    for i in range(0, len(data), 70_000):
        writer.write(data[i : i + 70_000])
    writer.close()
    assert writer.head == data[:1024]
    assert writer.tmp.read_bytes() == data  # complete locally for the checks before commit
    stored = writer.commit("t1/models/mdl_1/model.keras")
    writer.abort()  # a no-op after commit
    assert stored.sha256 == hashlib.sha256(data).hexdigest() == writer.sha256
    assert stored.bytes == len(data)
    assert not writer.tmp.exists()
    # The prefix is applied inside the store; the key stays the server's.
    assert _keys(endpoint, bucket)["tenants/t1/models/mdl_1/model.keras"]["Size"] == len(data)

    with store.open(stored.key) as f:
        assert not isinstance(f, bytes | bytearray)
        first = f.read(1000)
        rest = f.read()
    assert first + rest == data
    with store.local_copy(stored.key) as path:
        assert path.name == "model.keras"  # the suffix survives: Keras loads by it
        assert path.read_bytes() == data
    assert not path.exists()
    assert not path.parent.exists()

    assert store.exists(stored.key)
    assert not store.exists("t1/models/mdl_2/model.keras")
    with pytest.raises(FileNotFoundError), store.open("t1/models/mdl_2/model.keras"):
        pass
    with pytest.raises(FileNotFoundError), store.local_copy("t1/models/mdl_2/model.keras"):
        pass
    for bad in ("../other/x", "/abs", "a/../../b", ""):
        with pytest.raises(ValueError, match="escapes"):
            store.exists(bad)

    source = tmp_path / "report.json"
    source.write_text('{"ok": true}')
    put = store.put_file("t1/jobs/job_1/report.json", source)
    assert put.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert source.exists()  # copied, not moved
    store.delete("t1/jobs/job_1")  # a "folder", as on the local store
    store.delete(stored.key)
    assert not store.exists(stored.key)
    assert not store.exists(put.key)
    assert _keys(endpoint, bucket) == {}


def test_a_large_file_goes_up_in_parts(endpoint: str, tmp_path: Path) -> None:
    bucket = _bucket(endpoint)
    store = _store(endpoint, bucket, s3_multipart_bytes=5 * MiB)
    big = tmp_path / "big.bin"
    data = os.urandom(11 * MiB)
    big.write_bytes(data)
    stored = store.put_file("t1/datasets/ds_1/data.npz", big)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    (obj,) = _keys(endpoint, bucket).values()
    assert obj["ETag"].strip('"').endswith("-3")  # a multipart upload of three parts
    with store.local_copy(stored.key) as path:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == stored.sha256
    with store.open(stored.key) as f:
        digest = hashlib.sha256()
        while chunk := f.read(MiB):
            digest.update(chunk)
    assert digest.hexdigest() == stored.sha256


def test_an_aborted_upload_leaves_nothing(endpoint: str) -> None:
    bucket = _bucket(endpoint)
    store = _store(endpoint, bucket)
    writer = store.writer()
    writer.write(b"partial")
    writer.abort()
    writer.abort()
    assert not writer.tmp.exists()
    assert _keys(endpoint, bucket) == {}


def test_a_store_that_refuses_is_a_503_and_the_spool_is_dropped(endpoint: str) -> None:
    store = _store(endpoint, "shears-no-such-bucket")
    writer = store.writer()
    writer.write(b"model bytes")
    with pytest.raises(StorageUnavailable, match="NoSuchBucket") as refused:
        writer.commit("t1/models/mdl_1/model.keras")
    assert refused.value.status_code == 503
    assert refused.value.code == "storage_unavailable"
    assert writer.tmp.exists()  # the upload path aborts it, as after any failed commit
    writer.abort()
    assert not writer.tmp.exists()
    with pytest.raises(StorageUnavailable), store.open("t1/models/mdl_1/model.keras"):
        pass


def test_presigned_url_downloads_without_credentials(endpoint: str) -> None:
    bucket = _bucket(endpoint)
    store = _store(endpoint, bucket)
    writer = store.writer()
    writer.write(b"bytes of model.tflite")
    writer.commit("t1/jobs/job_1/model.tflite")
    url = store.presigned_url("t1/jobs/job_1/model.tflite", "model.tflite", 60)
    assert url is not None
    query = httpx.URL(url).params
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    response = httpx.get(url)  # no AWS credentials: the signature is the permission
    assert response.status_code == 200
    assert response.content == b"bytes of model.tflite"
    assert response.headers["content-disposition"] == 'attachment; filename="model.tflite"'
    # moto does not check signatures or expiry, so that part is left to S3 itself.


def test_presigned_urls_are_signed_for_the_public_endpoint_when_one_is_set(endpoint: str) -> None:
    """Servers reach the store at one address, clients at another (compose: minio:9000 vs localhost:9000)."""
    bucket = _bucket(endpoint)
    public = endpoint.replace("127.0.0.1", "localhost")
    store = _store(endpoint, bucket, s3_public_endpoint_url=public)
    writer = store.writer()
    writer.write(b"public bytes")
    writer.commit("t1/jobs/job_2/model.tflite")
    url = store.presigned_url("t1/jobs/job_2/model.tflite", "model.tflite", 60)
    assert url is not None
    assert httpx.URL(url).host == "localhost"
    assert httpx.get(url).content == b"public bytes"
    # Everything else still goes to the servers' endpoint.
    assert httpx.URL(_store(endpoint, bucket).presigned_url("t1/jobs/job_2/model.tflite", "m", 60) or "").host == (
        "127.0.0.1"
    )


def test_readiness_says_why(endpoint: str, tmp_path: Path) -> None:
    bucket = _bucket(endpoint)
    assert _store(endpoint, bucket).readiness() == "ok"
    assert _store(endpoint, "shears-no-such-bucket").readiness() == "s3://shears-no-such-bucket: no such bucket"
    closed = Settings(storage_url="s3://shears-closed/p", s3_endpoint_url="http://127.0.0.1:9", s3_region=REGION)
    assert get_store(closed).readiness().startswith("s3://shears-closed unreachable: Could not connect")
    assert LocalArtifactStore(tmp_path / "artifacts").readiness() == "ok"
    assert LocalArtifactStore(tmp_path / "artifacts").presigned_url("k", "model.tflite", 60) is None


@pytest.mark.parametrize("url", ["gs://bucket/x", "s3://", "s3:/bucket", "s3://Bad_Bucket/x", "/data/artifacts"])
def test_a_storage_url_that_is_not_s3_is_refused_at_startup(url: str) -> None:
    with pytest.raises(ValidationError, match="SHEARS_STORAGE_URL must be"):
        Settings(storage_url=url)


def _engine_env(job_id: str, seen: dict[str, str]) -> None:
    """Record the environment of the engine process running `job_id`, if it is running now."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if b"pruning.job" not in cmdline or not any(job_id.encode() in arg for arg in cmdline):
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        seen.update(dict(e.decode().split("=", 1) for e in environ if b"=" in e))


def _follow(client: httpx.Client, job_id: str, engine_env: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not engine_env:
            _engine_env(job_id, engine_env)
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.05)
    raise TimeoutError(job_id)


FAST_JOB = {"dataset_id": "builtin:digits", "target": {"sparsity": 0.2}, "finetune": {"epochs": 0}}


def test_the_service_keeps_every_artifact_in_s3(
    endpoint: str, digits_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    bucket = _bucket(endpoint)
    root = tmp_path_factory.mktemp("s3service")
    env = {
        "SHEARS_STORAGE_URL": f"s3://{bucket}/shears",
        "SHEARS_S3_ENDPOINT_URL": endpoint,
        "SHEARS_S3_REGION": REGION,
        **CREDENTIALS,
    }
    service = Service(root, env).start()
    try:
        tenant = f"s3-{secrets.token_hex(3)}"
        with service.client(service.new_key(tenant)) as client, service.client(service.new_key()) as stranger:
            ready = client.get("/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["storage"] == "ok"

            with digits_model.open("rb") as f:
                upload = client.post("/v1/models", files={"file": ("digits.keras", f)})
            assert upload.status_code == 201, upload.text
            model = upload.json()
            assert model["input_shape"] == [None, 8, 8, 1]
            corrupt = client.post("/v1/models", files={"file": ("bad.tflite", b"\x1c\0\0\0TFL3" + os.urandom(2048))})
            assert corrupt.status_code == 422, corrupt.text  # refused before it is stored
            buffer = io.BytesIO()
            np.savez(
                buffer,
                x_train=np.zeros((4, 8, 8, 1), np.float32),
                y_train=np.arange(4),
                x_val=np.zeros((4, 8, 8, 1), np.float32),
                y_val=np.arange(4),
            )
            dataset = client.post("/v1/datasets", files={"file": ("d.npz", buffer.getvalue())})
            assert dataset.status_code == 201, dataset.text

            submitted = client.post("/v1/jobs", json={"model_id": model["id"], **FAST_JOB})
            assert submitted.status_code == 202, submitted.text
            job_id = submitted.json()["id"]
            early = client.get(f"/v1/jobs/{job_id}/artifacts/model.tflite/url")
            assert early.status_code == 409, early.text
            assert early.json()["error"]["code"] == "job_not_finished"
            engine_env: dict[str, str] = {}
            job = _follow(client, job_id, engine_env)
            assert job["status"] == "succeeded", job

            # The engine ran without any storage credentials or settings.
            assert engine_env, "the engine process was not seen while the job ran"
            assert "PATH" in engine_env
            leaked = [
                k for k in engine_env if k.startswith(("AWS_", "SHEARS_S3_", "SHEARS_STORAGE", "SHEARS_DATABASE"))
            ]
            assert leaked == []
            assert not [k for k, v in engine_env.items() if CREDENTIALS["AWS_SECRET_ACCESS_KEY"] in v]

            with client.stream("GET", f"/v1/jobs/{job_id}/model.tflite") as response:
                assert response.status_code == 200
                body = b"".join(response.iter_bytes())
                headers = response.headers
            sha = hashlib.sha256(body).hexdigest()
            assert headers["x-content-sha256"] == sha
            assert headers["content-length"] == str(len(body))
            assert headers["content-disposition"] == 'attachment; filename="model.tflite"'
            assert body[4:8] == b"TFL3"

            presigned = client.get(f"/v1/jobs/{job_id}/artifacts/model.tflite/url")
            assert presigned.status_code == 200, presigned.text
            assert presigned.json()["expires_in"] == 900
            direct = httpx.get(presigned.json()["url"])  # straight from the bucket, no API key
            assert direct.status_code == 200
            assert hashlib.sha256(direct.content).hexdigest() == sha

            report = client.get(f"/v1/jobs/{job_id}/report")
            assert report.status_code == 200
            assert report.json()["size"]["tflite_bytes"] == len(body)
            assert client.get(f"/v1/jobs/{job_id}/artifacts/model.zip/url").status_code == 404
            assert stranger.get(f"/v1/jobs/{job_id}/artifacts/model.tflite/url").status_code == 404
            assert stranger.get(f"/v1/jobs/{job_id}/model.tflite").status_code == 404

            keys = _keys(endpoint, bucket)
            (tenant_id,) = {k.split("/")[1] for k in keys}  # one tenant, under the prefix
            base = f"shears/{tenant_id}"
            assert {
                f"{base}/models/{model['id']}/model.keras",
                f"{base}/datasets/{dataset.json()['id']}/data.npz",
                f"{base}/jobs/{job_id}/model.tflite",
                f"{base}/jobs/{job_id}/model.keras",
                f"{base}/jobs/{job_id}/report.json",
            } <= set(keys)
            mine = (
                f"{base}/models/{model['id']}/",
                f"{base}/datasets/{dataset.json()['id']}/",
                f"{base}/jobs/{job_id}/",
            )
            assert all(k.startswith(mine) for k in keys)
            assert keys[f"{base}/jobs/{job_id}/model.tflite"]["Size"] == len(body)
            local = root / "artifacts"
            assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

            # Deletes remove the objects from the bucket (issue 17: housekeeping).
            for path in (f"/v1/jobs/{job_id}", f"/v1/models/{model['id']}", f"/v1/datasets/{dataset.json()['id']}"):
                assert client.delete(path).status_code == 204, path
            assert _keys(endpoint, bucket) == {}

            # The bucket gone: /readyz says so.
            s3 = _boto(endpoint)
            s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys]})
            s3.delete_bucket(Bucket=bucket)
            gone = client.get("/readyz")
            assert gone.status_code == 503
            assert gone.json()["checks"]["storage"] == f"s3://{bucket}: no such bucket"
    finally:
        service.stop()


def test_the_local_store_has_no_presigned_urls(embedded: Service, digits_model: Path) -> None:
    with embedded.client(embedded.new_key()) as client:
        paths = client.get("/openapi.json").json()["paths"]
        operation = paths["/v1/jobs/{job_id}/artifacts/{name}/url"]["get"]
        assert {"200", "401", "404", "409", "422"} <= set(operation["responses"])
        with digits_model.open("rb") as f:
            model = client.post("/v1/models", files={"file": ("digits.keras", f)}).json()
        job = wait_for_job(client, client.post("/v1/jobs", json={"model_id": model["id"], **FAST_JOB}).json()["id"])
        assert job["status"] == "succeeded", job
        response = client.get(f"/v1/jobs/{job['id']}/artifacts/report.json/url")
        assert response.status_code == 409
        error = response.json()["error"]
        assert error["code"] == "not_supported"
        assert "local folder" in error["message"]
        assert f"/v1/jobs/{job['id']}/artifacts/report.json" in error["message"]
        ready = client.get("/readyz").json()
        assert ready["checks"]["storage"] == "ok"
        download = client.get(f"/v1/jobs/{job['id']}/model.tflite")
        assert download.status_code == 200
        assert download.headers["x-content-sha256"] == hashlib.sha256(download.content).hexdigest()
        assert download.headers["content-length"] == str(len(download.content))
