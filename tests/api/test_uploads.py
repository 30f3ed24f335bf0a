"""Uploads: streamed, hashed, capped, and checked by content; bad files are 4xx, never 500."""

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.api.test_auth_and_tenancy import _assert_error
from tests.conftest import MAX_UPLOAD
from tests.services import Service


def test_model_upload_is_hashed_and_described(embedded: Service, digits_model: Path) -> None:
    key = embedded.new_key()
    with embedded.client(key) as c, digits_model.open("rb") as f:
        # The name says .tflite; the content says Keras, and content wins.
        r = c.post("/v1/models", files={"file": ("misnamed.tflite", f)})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["sha256"] == hashlib.sha256(digits_model.read_bytes()).hexdigest()
    assert body["bytes"] == digits_model.stat().st_size
    assert body["format"] == "keras"
    assert body["layers"] == 6
    with embedded.client(key) as c:
        assert c.get(f"/v1/models/{body['id']}").json() == body


def test_h5_and_tflite_uploads(embedded: Service, key: str, tmp_path: Path) -> None:
    import keras

    from pruning.export import to_tflite

    # A non-zero bias: the converter drops an all-zero one from the file.
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, bias_initializer="ones")])
    model.save(tmp_path / "m.h5")
    (tmp_path / "m.bin").write_bytes(to_tflite(model))
    with embedded.client(key) as c:
        h5 = c.post("/v1/models", files={"file": ("m.h5", (tmp_path / "m.h5").read_bytes())})
        tfl = c.post("/v1/models", files={"file": ("m.bin", (tmp_path / "m.bin").read_bytes())})
    assert h5.status_code == 201, h5.text
    assert h5.json()["format"] == "h5"
    assert h5.json()["params"] == 15
    assert tfl.status_code == 201, tfl.text
    assert tfl.json()["format"] == "tflite"
    assert tfl.json()["params"] == 15
    assert tfl.json()["input_shape"] == [None, 4]


def test_not_a_model_is_415(embedded: Service, key: str) -> None:
    with embedded.client(key) as c:
        _assert_error(c.post("/v1/models", files={"file": ("m.keras", b"hello, I am text")}), 415, "unsupported_format")
        other_zip = io.BytesIO()
        with zipfile.ZipFile(other_zip, "w") as z:
            z.writestr("readme.txt", "not keras")
        _assert_error(c.post("/v1/models", files={"file": ("m.keras", other_zip.getvalue())}), 415)
        _assert_error(c.post("/v1/models", content=b"raw", headers={"content-type": "application/octet-stream"}), 415)
        _assert_error(c.post("/v1/models", files={"other": ("m.keras", b"x")}), 422, "missing_file")


def test_truncated_keras_is_422(embedded: Service, key: str, digits_model: Path) -> None:
    data = digits_model.read_bytes()
    with embedded.client(key) as c:
        _assert_error(c.post("/v1/models", files={"file": ("m.keras", data[: len(data) // 2])}), 422, "corrupt_archive")


def test_keras_file_that_does_not_load_fails_its_job_with_a_reason(embedded: Service, digits_model: Path) -> None:
    """It passes the static checks (Keras classes only), so it is accepted; loading it fails."""
    broken = io.BytesIO()
    with zipfile.ZipFile(digits_model) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "config.json":
                config = json.loads(payload)
                config["config"]["layers"][1]["class_name"] = "NoSuchLayer"
                payload = json.dumps(config).encode()
            dst.writestr(info, payload)
    from tests.services import wait_for_job

    with embedded.client(embedded.new_key()) as c:
        model = c.post("/v1/models", files={"file": ("m.keras", broken.getvalue())})
        assert model.status_code == 201, model.text
        spec = {"model_id": model.json()["id"], "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}}
        job = wait_for_job(c, c.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "model_load_failed"
    assert "NoSuchLayer" in job["error"]["message"]


def test_lambda_layers_are_refused(embedded: Service, key: str, tmp_path: Path) -> None:
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    with embedded.client(key) as c:
        r = c.post("/v1/models", files={"file": ("m.keras", (tmp_path / "lambda.keras").read_bytes())})
    _assert_error(r, 422, "unsafe_model")
    assert "Lambda" in r.json()["error"]["message"]


def _stream(total: int) -> Iterator[bytes]:
    boundary = b"XyZ"
    yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.keras"\r\n\r\n'
    yield b"PK\x03\x04"
    chunk = b"\0" * 65536
    sent = 4
    while sent < total:
        yield chunk
        sent += len(chunk)
    yield b"\r\n--" + boundary + b"--\r\n"


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_over_the_cap_is_413_and_leaves_nothing(embedded: Service, key: str, declared: bool) -> None:
    total = MAX_UPLOAD + 1_000_000
    headers = {"content-type": "multipart/form-data; boundary=XyZ"}
    body: bytes | Iterator[bytes] = b"".join(_stream(total)) if declared else _stream(total)
    with embedded.client(key) as c:
        before = c.get("/v1/models").json()["items"]
        r = c.post("/v1/models", content=body, headers=headers)
        _assert_error(r, 413, "payload_too_large")
        assert c.get("/v1/models").json()["items"] == before
    assert not any((embedded.root / "artifacts" / ".tmp").iterdir())


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def test_dataset_upload(embedded: Service, key: str) -> None:
    rng = np.random.default_rng(0)
    payload = _npz(
        x_train=rng.random((50, 8, 8, 1), dtype=np.float32),
        y_train=rng.integers(0, 10, 50),
        x_val=rng.random((20, 8, 8, 1), dtype=np.float32),
        y_val=rng.integers(0, 10, 20),
    )
    with embedded.client(key) as c:
        r = c.post("/v1/datasets", files={"file": ("d.npz", payload)})
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["task"] == "classification"
        assert body["arrays"]["x_train"] == {"shape": [50, 8, 8, 1], "dtype": "float32"}
        listing = c.get("/v1/datasets").json()
        assert {d["id"] for d in listing["builtin"]} == {"builtin:digits", "builtin:har"}
        assert "SYNTHETIC" in next(d["description"] for d in listing["builtin"] if d["id"] == "builtin:har")


@pytest.mark.parametrize(
    ("arrays", "code"),
    [
        ({"x_train": np.zeros((3, 2)), "y_train": np.zeros(3)}, "invalid_dataset"),  # no val split
        (
            {"x_train": np.zeros((3, 2)), "y_train": np.zeros(2), "x_val": np.zeros((1, 2)), "y_val": np.zeros(1)},
            "invalid_dataset",
        ),
        (
            {
                "x_train": np.array([{"a": 1}] * 3, dtype=object),
                "y_train": np.zeros(3),
                "x_val": np.zeros((1, 2)),
                "y_val": np.zeros(1),
            },
            "invalid_dataset",
        ),
    ],
    ids=["missing-val", "length-mismatch", "pickled-objects"],
)
def test_bad_datasets_are_422(embedded: Service, key: str, arrays: dict[str, np.ndarray], code: str) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **arrays)  # type: ignore[arg-type]
    with embedded.client(key) as c:
        _assert_error(c.post("/v1/datasets", files={"file": ("d.npz", buffer.getvalue())}), 422, code)
        _assert_error(c.post("/v1/datasets", files={"file": ("d.npz", b"not a zip")}), 415)
