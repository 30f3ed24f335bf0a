"""Image folders through the API: checked and converted at upload, pruned from the memory-mapped form."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.pruning.test_dataformats import image_zip
from tests.services import Service, wait_for_job


def test_an_image_folder_zip_is_summarised_and_the_same_bytes_found_again(embedded: Service, tmp_path: Path) -> None:
    payload = image_zip(tmp_path / "img.zip", corrupt=1).read_bytes()
    options = json.dumps({"image_size": [8, 8], "max_bad_fraction": 0.1})
    with embedded.client(embedded.new_key()) as c:
        first = c.post("/v1/datasets", params={"options": options}, files={"file": ("img.zip", payload)})
        assert first.status_code == 201, first.text
        again = c.post("/v1/datasets", params={"options": options}, files={"file": ("img.zip", payload)})
    body = first.json()
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert body["format"] == "images"
    summary = body["summary"]
    assert summary["classes"] == 2
    assert summary["shape"] == [8, 8, 3]
    assert sum(summary["samples"].values()) == 20
    assert summary["skipped"]["count"] == 1
    assert summary["bytes"] == body["bytes"]
    assert body["arrays"]["x_train"]["dtype"] == "uint8"


@pytest.mark.parametrize(
    ("files", "options", "needle"),
    [
        ({"loose.png": b"x", "other.png": b"y"}, {}, "no class folders"),
        ({f"a/{i}.jpg": b"\xff\xd8junk" for i in range(3)}, {"image_size": [8, 8]}, "3 of 3 entries are unusable"),
        ({"a/1.png": b"x"}, {"colour": True}, "unknown options"),
    ],
    ids=["no-class-folders", "corrupt-jpegs", "unknown-option"],
)
def test_bad_image_folders_are_422_naming_the_entries(
    embedded: Service, tmp_path: Path, files: dict[str, bytes], options: dict[str, object], needle: str
) -> None:
    import zipfile

    path = tmp_path / "bad.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    with embedded.client(embedded.new_key()) as c:
        r = c.post(
            "/v1/datasets", params={"options": json.dumps(options)}, files={"file": ("bad.zip", path.read_bytes())}
        )
        assert r.status_code == 422, r.text
        assert needle in r.json()["error"]["message"]
        bad_json = c.post("/v1/datasets", params={"options": "{"}, files={"file": ("bad.zip", path.read_bytes())})
        assert bad_json.status_code == 422


def _tiny_model(path: Path) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    model.save(path)
    return path


def test_a_job_prunes_from_the_converted_images_with_augmentation(embedded: Service, tmp_path: Path) -> None:
    payload = image_zip(tmp_path / "img.zip").read_bytes()
    model_path = _tiny_model(tmp_path / "tiny.keras")
    with embedded.client(embedded.new_key()) as c:
        options = json.dumps({"image_size": [8, 8]})
        dataset = c.post("/v1/datasets", params={"options": options}, files={"file": ("img.zip", payload)}).json()
        model = c.post("/v1/models", files={"file": ("m.keras", model_path.read_bytes())}).json()
        spec = {
            "model_id": model["id"],
            "dataset_id": dataset["id"],
            "target": {"sparsity": 0.5},
            "finetune": {"epochs": 1, "batch_size": 4, "augment": {"flip": True, "crop": 1}},
        }
        created = c.post("/v1/jobs", json=spec)
        assert created.status_code in (200, 201, 202), created.text
        job = wait_for_job(c, created.json()["id"])
        assert job["status"] == "succeeded", job
        report = c.get(f"/v1/jobs/{job['id']}/report").json()
    assert report["input"]["format"] == "images"
    assert report["input"]["scale"] == pytest.approx(1 / 255)
    assert report["spec"]["augment"] == {"flip": True, "crop": 1}
    assert report["timings_s"]["finetuning_input"] >= 0
    assert np.isfinite(report["schedule"]["rounds"][0]["train_loss"][0])
