"""A dataset named by an s3:// URL: fetched with the server's credentials under the allowed prefixes only."""

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_s3_store import CREDENTIALS, REGION
from tests.pruning.test_dataformats import image_zip
from tests.services import Service, s3_server


@pytest.fixture(scope="module")
def imports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Any, str]]:
    """A service that imports from s3://<bucket>/shared/ and s3://<bucket>/tenants/{tenant}/ (moto's S3)."""
    import boto3

    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        with s3_server() as endpoint:
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
            bucket = f"shears-{secrets.token_hex(4)}"
            s3.create_bucket(Bucket=bucket)
            s3.create_bucket(Bucket=bucket + "-private")
            env = {
                "SHEARS_S3_ENDPOINT_URL": endpoint,
                "SHEARS_S3_REGION": REGION,
                "SHEARS_DATASET_IMPORT_PREFIXES": f"s3://{bucket}/shared/, s3://{bucket}/tenants/{{tenant}}/",
                "SHEARS_MAX_DATASET_BYTES": str(4 << 20),
                **CREDENTIALS,
            }
            service = Service(tmp_path_factory.mktemp("imports"), env).start()
            try:
                yield service, s3, bucket
            finally:
                service.stop()


def test_an_s3_url_is_checked_like_an_upload(imports: tuple[Service, Any, str], tmp_path: Path) -> None:
    service, s3, bucket = imports
    payload = image_zip(tmp_path / "img.zip", corrupt=1).read_bytes()
    s3.put_object(Bucket=bucket, Key="shared/cats/img.zip", Body=payload)
    options = {"image_size": [8, 8], "max_bad_fraction": 0.1}
    with service.client(service.new_key()) as c:
        first = c.post("/v1/datasets/import", json={"url": f"s3://{bucket}/shared/cats/img.zip", "options": options})
        assert first.status_code == 201, first.text
        body = first.json()
        assert body["format"] == "images"
        assert body["filename"] == "img.zip"
        assert body["summary"]["skipped"]["count"] == 1
        again = c.post("/v1/datasets/import", json={"url": f"s3://{bucket}/shared/cats/img.zip", "options": options})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == body["id"]
        assert c.get(f"/v1/datasets/{body['id']}").status_code == 200


def test_each_tenant_reads_only_its_own_prefix(imports: tuple[Service, Any, str], tmp_path: Path) -> None:
    service, s3, bucket = imports
    payload = image_zip(tmp_path / "img.zip").read_bytes()
    tenant = f"team-{secrets.token_hex(3)}"
    s3.put_object(Bucket=bucket, Key=f"tenants/{tenant}/img.zip", Body=payload)
    url = f"s3://{bucket}/tenants/{tenant}/img.zip"
    with service.client(service.new_key(tenant)) as owner, service.client(service.new_key()) as other:
        mine = owner.post("/v1/datasets/import", json={"url": url, "options": {"image_size": [8, 8]}})
        assert mine.status_code == 201, mine.text
        theirs = other.post("/v1/datasets/import", json={"url": url})
        assert theirs.status_code == 403, theirs.text
        assert theirs.json()["error"]["code"] == "import_forbidden"


@pytest.mark.parametrize(
    ("url", "status", "needle"),
    [
        ("s3://{bucket}-private/shared/img.zip", 403, "outside the S3 prefixes"),
        ("s3://{bucket}/elsewhere/img.zip", 403, "outside the S3 prefixes"),
        ("s3://{bucket}/shared/../elsewhere/img.zip", 422, "name one object"),
        ("http://169.254.169.254/latest/meta-data", 422, "s3://bucket/key"),
        ("s3://127.0.0.1:9000/shared/x", 422, "not an S3 bucket name"),
        ("s3://{bucket}/shared/missing.zip", 404, "no object"),
        ("s3://{bucket}/shared/notes.txt", 415, "a dataset must be"),
        ("s3://{bucket}/shared/huge.zip", 413, "over the 4194304-byte dataset limit"),
    ],
    ids=["other-bucket", "other-prefix", "dot-dot", "http-ssrf", "host-as-bucket", "missing", "not-a-dataset", "big"],
)
def test_urls_outside_the_allowed_prefixes_or_unusable_are_4xx(
    imports: tuple[Service, Any, str], url: str, status: int, needle: str
) -> None:
    service, s3, bucket = imports
    s3.put_object(Bucket=bucket + "-private", Key="shared/img.zip", Body=b"PK\x03\x04secret")
    s3.put_object(Bucket=bucket, Key="shared/notes.txt", Body=b"hello")
    s3.put_object(Bucket=bucket, Key="shared/huge.zip", Body=b"PK\x03\x04" + bytes(5 << 20))
    with service.client(service.new_key()) as c:
        r = c.post("/v1/datasets/import", json={"url": url.format(bucket=bucket)})
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]["message"]


def test_a_server_without_import_prefixes_refuses_every_url(embedded: Service) -> None:
    with embedded.client(embedded.new_key()) as c:
        r = c.post("/v1/datasets/import", json={"url": "s3://some-bucket/data.zip"})
        assert r.status_code == 403, r.text
        unknown = c.post("/v1/datasets/import", json={"url": "s3://some-bucket/data.zip", "host": "x"})
        assert unknown.status_code == 422
