"""TFRecord shards, Parquet recordings and noisy audio through the API: checked at upload, pruned by a real job."""

import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.api.test_dataset_formats import _tiny_model
from tests.pruning.test_noise import OPTIONS as KWS_OPTIONS
from tests.pruning.test_noise import kws_tar
from tests.pruning.test_records import SPEC, example, image_shards, sensor_table, write_records
from tests.services import Service, wait_for_job


def _upload(c: httpx.Client, name: str, payload: bytes, options: dict[str, Any]) -> httpx.Response:
    return c.post("/v1/datasets", params={"options": json.dumps(options)}, files={"file": (name, payload)})


def _prune(c: httpx.Client, model: Path, dataset_id: str, augment: dict[str, Any] | None = None) -> dict[str, Any]:
    model_id = c.post("/v1/models", files={"file": (model.name, model.read_bytes())}).json()["id"]
    finetune: dict[str, Any] = {"epochs": 1, "batch_size": 4, **({"augment": augment} if augment else {})}
    spec = {"model_id": model_id, "dataset_id": dataset_id, "target": {"sparsity": 0.5}, "finetune": finetune}
    created = c.post("/v1/jobs", json=spec)
    assert created.status_code == 202, created.text
    job = wait_for_job(c, created.json()["id"])
    assert job["status"] == "succeeded", job
    return dict(c.get(f"/v1/jobs/{job['id']}/report").json())


def test_tfrecord_shards_upload_and_prune(embedded: Service, tmp_path: Path) -> None:
    payload = image_shards(tmp_path, bad=1).read_bytes()
    with embedded.client(embedded.new_key()) as c:
        r = _upload(c, "shards.zip", payload, {"features": SPEC, "max_bad_fraction": 0.1})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["format"] == "tfrecord"
        assert body["summary"]["samples"] == {"train": 8, "val": 8}
        assert body["summary"]["skipped"]["count"] == 1
        report = _prune(c, _tiny_model(tmp_path / "tiny.keras"), body["id"])
    assert report["input"]["format"] == "tfrecord"
    assert report["input"]["features"] == SPEC


def test_a_single_tfrecord_file_that_does_not_match_the_spec_is_a_422_naming_records(
    embedded: Service, tmp_path: Path
) -> None:
    path = write_records(tmp_path / "d.tfrecord", [example(image=b"not a png", label=0)] * 3)
    with embedded.client(embedded.new_key()) as c:
        r = _upload(c, "d.tfrecord", path.read_bytes(), {"features": SPEC})
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "3 of 3 entries are unusable" in message
        assert message.index("record 0: ") < message.index("record 1: ")
        no_spec = _upload(c, "d.tfrecord", path.read_bytes(), {})
        assert no_spec.status_code == 422, no_spec.text
        assert "options.features" in no_spec.json()["error"]["message"]


def _sensor_model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((20, 2))
    x = keras.layers.Conv1D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(path)
    return path


def test_parquet_recordings_upload_and_prune(embedded: Service, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "rec.parquet"
    pq.write_table(pa.table(sensor_table(rows=800, missing=2)), path)
    with embedded.client(embedded.new_key()) as c:
        r = _upload(c, "rec.parquet", path.read_bytes(), {"window": 20, "stride": 10})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["format"] == "parquet"
        assert body["summary"]["skipped"]["first"][0] == "row 1: missing or non-numeric value"
        cut = _upload(c, "cut.parquet", path.read_bytes()[:-40], {"window": 20})
        assert cut.status_code == 422, cut.text
        assert "Parquet" in cut.json()["error"]["message"]
        report = _prune(c, _sensor_model(tmp_path / "sensor.keras"), body["id"])
    assert report["input"]["format"] == "parquet"
    assert report["input"]["window"] == 20


def _kws_model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((49, 16, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x)).save(path)
    return path


def test_audio_with_background_noise_time_shift_and_masks(embedded: Service, tmp_path: Path) -> None:
    options = {**KWS_OPTIONS, "max_bad_fraction": 0.2}
    model = _kws_model(tmp_path / "kws.keras")
    augment = {"background_noise": 0.3, "time_shift": 0.1, "time_mask": 5, "freq_mask": 3}
    with embedded.client(embedded.new_key()) as c:
        noisy = _upload(c, "kws.tar.gz", kws_tar(tmp_path / "kws.tar.gz").read_bytes(), options)
        assert noisy.status_code == 201, noisy.text
        assert noisy.json()["summary"]["background_noise"] == {"segments": 5, "clips": 8}
        quiet = _upload(c, "quiet.tar.gz", kws_tar(tmp_path / "quiet.tar.gz", noise=False).read_bytes(), options)
        assert quiet.status_code == 201, quiet.text
        model_id = c.post("/v1/models", files={"file": ("kws.keras", model.read_bytes())}).json()["id"]
        refused = c.post(
            "/v1/jobs",
            json={
                "model_id": model_id,
                "dataset_id": quiet.json()["id"],
                "target": {"sparsity": 0.5},
                "finetune": {"epochs": 1, "augment": {"background_noise": 0.1}},
            },
        )
        assert refused.status_code == 422, refused.text
        assert "_background_noise_" in refused.json()["error"]["message"]
        report = _prune(c, model, noisy.json()["id"], augment)
    assert report["spec"]["augment"] == augment
    assert report["input"]["frontend"]["type"] == "log_mel"
    assert np.isfinite(report["schedule"]["rounds"][0]["train_loss"][0])


def test_a_zip_of_shards_with_a_cut_shard_is_refused_naming_it(embedded: Service, tmp_path: Path) -> None:
    good = write_records(tmp_path / "a-train.tfrecord", [example(x=[1.0], label=0)] * 4)
    out = tmp_path / "cut.zip"
    with zipfile.ZipFile(out, "w") as z:
        z.write(good, good.name)
        z.writestr("b-val.tfrecord", good.read_bytes()[:-5])
    spec = {"x": {"dtype": "float32", "shape": [1]}, "label": {"dtype": "int64"}}
    with embedded.client(embedded.new_key()) as c:
        r = _upload(c, "cut.zip", out.read_bytes(), {"features": spec})
    assert r.status_code == 422, r.text
    assert "b-val.tfrecord: record 3" in r.json()["error"]["message"]
