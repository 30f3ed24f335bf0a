"""The Python SDK (`shears.Client`) against a live server: upload, submit, wait, download, errors."""

import subprocess
import sys
from pathlib import Path

import pytest

import shears
import shears_client as sdk
from tests.services import Service


def test_upload_submit_wait_download_and_delete(embedded: Service, digits_model: Path, tmp_path: Path) -> None:
    with shears.Client(embedded.url, embedded.new_key()) as client:
        assert any(d["name"] == "host" for d in client.devices())
        model = client.upload_model(digits_model)
        assert model.id.startswith("mdl_")
        assert model.data["format"] == "keras"
        job = client.submit(model, "builtin:digits", target={"sparsity": 0.5}, devices=["host"], finetune={"epochs": 0})
        assert job.wait(progress=True, timeout=180, interval=0.3) is job
        assert job.status == "succeeded"
        paths = job.download(tmp_path)
        assert tmp_path / "model.tflite" in paths
        assert tmp_path / "report.json" in paths
        assert job.report.size is not None
        assert job.report.size.tflite_bytes == (tmp_path / "model.tflite").stat().st_size
        assert job.report_json["size"]["tflite_bytes"] == job.report.size.tflite_bytes
        assert client.usage().jobs == 1

        second = client.submit(model.id, "builtin:digits", target={"sparsity": 0.5}, finetune={"epochs": 0})
        with pytest.raises(sdk.Conflict) as busy:  # queued or running: a job of seconds, asked at once
            client.delete_model(model)
        assert (busy.value.code, busy.value.status) == ("model_in_use", 409)
        second.delete()
        job.delete()  # a finished job: gone with its files
        assert not [p for p in (embedded.root / "artifacts").rglob("*") if job.id in str(p)]
        with pytest.raises(sdk.NotFound) as gone:
            client.job(job.id)
        assert (gone.value.code, gone.value.status) == ("not_found", 404)
        with pytest.raises(sdk.InvalidRequest) as bad:
            client.submit(model, "builtin:har", target={"sparsity": 0.5})
        assert bad.value.code == "data_mismatch"


def test_a_bad_key_and_no_server_are_typed(embedded: Service) -> None:
    with shears.Client(embedded.url, "not-a-key") as client, pytest.raises(sdk.AuthenticationError) as bad:
        client.usage()
    assert bad.value.status == 401
    with shears.Client("http://127.0.0.1:9", "k", tries=1) as client, pytest.raises(sdk.ServerUnavailable):
        client.usage()


def test_import_shears_imports_no_tensorflow() -> None:
    code = "import sys, shears; shears.Client; assert not {'tensorflow', 'keras', 'app', 'pruning'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
