"""The whole path through real doors: HTTP upload, a Celery worker, LiteRT on the downloaded file."""

from pathlib import Path

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
    (host,) = report["latency"]
    assert host["device"] == "host"
    assert host["measured_ms"] > 0
    assert host["low_ms"] <= host["estimate_ms"] <= host["high_ms"]
    assert job["result"]["accuracy"] == report["accuracy"]


def test_channel_job_through_the_service(embedded: Service, digits_model: Path) -> None:
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
    assert report["params"]["after"] < 0.5 * report["params"]["before"]
    assert len(tflite) < 0.5 * report["baseline"]["size"]["tflite_bytes"]
    assert report["accuracy"]["before"] - report["accuracy"]["after"] < 0.05
    assert measure_latency(tflite)["measured_ms"] > 0
