"""The whole path through real doors: HTTP upload, a Celery worker, LiteRT on the downloaded file."""

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.services import Service, wait_for_job


@pytest.fixture(params=["embedded", "production"])
def service(request: pytest.FixtureRequest) -> Service:
    return request.getfixturevalue(request.param)  # type: ignore[no-any-return]


def test_prune_job_end_to_end(service: Service, digits_model: Path, tmp_path: Path) -> None:
    import keras

    from pruning.datasets import digits
    from pruning.export import predict
    from pruning.tflite_file import zero_fraction

    key = service.new_key()
    with service.client(key) as client:
        with digits_model.open("rb") as f:
            upload = client.post("/v1/models", files={"file": ("model.keras", f)})
        assert upload.status_code == 201, upload.text
        model = upload.json()
        assert model["format"] == "keras"
        assert model["input_shape"] == [None, 8, 8, 1]
        assert model["params"] == keras.saving.load_model(digits_model).count_params()

        submitted = client.post(
            "/v1/jobs",
            json={"model_id": model["id"], "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}},
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.json()["status"] == "queued"
        job = wait_for_job(client, submitted.json()["id"])
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 1
        assert job["progress"] == 1.0
        assert job["stage"] == "profiling"

        tflite = client.get(f"/v1/jobs/{job['id']}/model.tflite")
        assert tflite.status_code == 200
        (tmp_path / "pruned.keras").write_bytes(client.get(f"/v1/jobs/{job['id']}/model.keras").content)
        report = client.get(f"/v1/jobs/{job['id']}/report").json()

    data = digits()
    keras_out = keras.saving.load_model(tmp_path / "pruned.keras").predict(data.x_val, verbose=0)
    tflite_out = predict(tflite.content, data.x_val)
    agreement = np.mean(keras_out.argmax(-1) == tflite_out.argmax(-1))
    assert agreement >= 0.99
    # The zeros of pruning are in the file the user downloads.
    assert zero_fraction(tflite.content) >= 0.45

    assert report["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
    assert report["accuracy"]["metric"] == "accuracy"
    assert report["accuracy"]["split"] == "val"
    assert report["accuracy"]["before"] > 0.8
    assert report["accuracy"]["before"] - report["accuracy"]["after"] < 0.05
    assert report["size"]["tflite_bytes"] == len(tflite.content)
    assert report["size"]["tflite_gzip_bytes"] < report["baseline"]["size"]["tflite_gzip_bytes"]
    host = report["latency"][0]  # then, by default, every profile of the model's class that it fits
    assert host["device"] == "host"
    assert host["measured_ms"] > 0
    assert host["low_ms"] <= host["estimate_ms"] <= host["high_ms"]
    assert job["result"]["accuracy"] == report["accuracy"]


def test_channel_job_through_the_service(embedded: Service, digits_model: Path, tmp_path: Path) -> None:
    from pruning.host import measure_latency

    with embedded.client(embedded.new_key()) as client:
        with digits_model.open("rb") as f:
            model = client.post("/v1/models", files={"file": ("model.keras", f)}).json()
        spec = {
            "model_id": model["id"],
            "dataset_id": "builtin:digits",
            "method": "gradient",
            "granularity": "channel",
            "target": {"sparsity": 0.5},
            "finetune": {"epochs": 3, "learning_rate": 0.001},
        }
        job = wait_for_job(client, client.post("/v1/jobs", json=spec).json()["id"])
        assert job["status"] == "succeeded", job
        report = client.get(f"/v1/jobs/{job['id']}/report").json()
        tflite = client.get(f"/v1/jobs/{job['id']}/model.tflite").content
        _check_plots_and_tensorboard(embedded, client, job, report, tmp_path)
    assert report["params"]["after"] < 0.5 * report["params"]["before"]
    assert len(tflite) < 0.5 * report["baseline"]["size"]["tflite_bytes"]
    assert report["accuracy"]["before"] - report["accuracy"]["after"] < 0.05
    assert measure_latency(tflite)["measured_ms"] > 0


def _check_plots_and_tensorboard(
    service: Service, client: httpx.Client, job: dict[str, Any], report: dict[str, Any], tmp_path: Path
) -> None:
    """The job's plots and TensorBoard logs, listed and downloaded through the API."""
    import tensorflow as tf

    url = f"/v1/jobs/{job['id']}/artifacts"
    listed = client.get(url)
    assert listed.status_code == 200, listed.text
    items = {a["name"]: a for a in listed.json()["items"]}
    names = ["layers.png", "model.keras", "model.tflite", "report.json", "tensorboard.tar.gz", "training.png"]
    assert sorted(items) == names
    assert sorted(job["result"]["artifacts"]) == names
    assert report["artifacts"] == ["layers.png", "training.png", "tensorboard.tar.gz"]

    png = client.get(f"{url}/layers.png")
    assert png.status_code == 200
    assert png.headers["content-type"] == items["layers.png"]["media_type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png.content) == items["layers.png"]["bytes"] < 200_000
    assert hashlib.sha256(png.content).hexdigest() == items["layers.png"]["sha256"] == png.headers["x-content-sha256"]
    assert client.get(f"{url}/training.png").content[:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"{url}/report.json").json() == report

    archive = client.get(f"{url}/tensorboard.tar.gz")
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.content), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    losses = [
        float(tf.make_ndarray(v.tensor))
        for e in tf.compat.v1.train.summary_iterator(str(events))
        for v in e.summary.value
        if v.tag == "epoch/train_loss"
    ]
    assert losses == pytest.approx([loss for r in report["schedule"]["rounds"] for loss in r["train_loss"]])
    assert len(losses) == 3

    missing = client.get(f"{url}/engine.log")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    with service.client(service.new_key()) as stranger:
        assert stranger.get(url).status_code == 404
        assert stranger.get(f"{url}/layers.png").status_code == 404
