"""A corpus of hostile and broken files, built here: each one gets a 4xx or a failed job with a
specific code, the code inside never runs, and the server stays healthy."""

import io
import json
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.services import Service, wait_for_job

MARKER = Path("/tmp/shears-hostile-marker")


def _keras_bytes(tmp: Path, build: Callable[[], object]) -> bytes:
    model = build()
    model.save(tmp / "m.keras")  # type: ignore[attr-defined]
    return (tmp / "m.keras").read_bytes()


def _rezip(data: bytes, edit: Callable[[zipfile.ZipFile, zipfile.ZipFile], None]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        edit(src, dst)
    return out.getvalue()


def _copy_all(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
    for info in src.infolist():
        dst.writestr(info, src.read(info))


def _with_config(data: bytes, change: Callable[[dict], None]) -> bytes:  # type: ignore[type-arg]
    def edit(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "config.json":
                config = json.loads(payload)
                change(config)
                payload = json.dumps(config).encode()
            dst.writestr(info, payload)

    return _rezip(data, edit)


def _first_layer(config: dict) -> dict:  # type: ignore[type-arg]
    return config["config"]["layers"][1]  # type: ignore[no-any-return]


def _npz(**arrays: object) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=True, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def _model_corpus(tmp: Path, digits_model: Path) -> dict[str, tuple[bytes, int, str]]:
    import h5py
    import keras

    marker = str(MARKER)
    good = digits_model.read_bytes()
    lam = _keras_bytes(
        tmp,
        lambda: keras.Sequential(
            [keras.Input((4,)), keras.layers.Lambda(lambda x: (open(marker, "w").write("pwned"), x)[1])]  # noqa: SIM115
        ),
    )
    keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda x: (open(marker, "w").write("pwned"), x)[1])]).save(  # noqa: SIM115
        tmp / "lambda.h5"
    )
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save(tmp / "ok.h5")
    with h5py.File(tmp / "external.h5", "w") as f:
        (tmp / "outside.bin").write_bytes(b"\0" * 64)
        f.create_dataset("w", shape=(16,), dtype="f4", external=[(str(tmp / "outside.bin"), 0, 64)])
    with h5py.File(tmp / "empty.h5", "w") as f:
        f.attrs["nothing"] = 1

    def bomb(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        dst.writestr("assets/zeros", b"\0" * (300 << 20))

    def slip(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        dst.writestr("../../etc/cron.d/evil", b"* * * * * root touch /tmp/x")

    def absolute(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        dst.writestr("/etc/evil", b"x")

    def link(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        info = zipfile.ZipInfo("assets/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        dst.writestr(info, "/etc/passwd")

    def extra(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        dst.writestr("evil.py", b"import os; os.system('touch /tmp/x')")

    def no_weights(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        for info in src.infolist():
            if info.filename != "model.weights.h5":
                dst.writestr(info, src.read(info))

    def bad_json(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        for info in src.infolist():
            dst.writestr(info, b"{not json" if info.filename == "config.json" else src.read(info))

    def many(src: zipfile.ZipFile, dst: zipfile.ZipFile) -> None:
        _copy_all(src, dst)
        for i in range(10_050):
            dst.writestr(f"assets/{i}", b"")

    def custom(config: dict) -> None:  # type: ignore[type-arg]
        _first_layer(config).update(module="my_package.layers", registered_name="MyPackage>Conv")

    def foreign(config: dict) -> None:  # type: ignore[type-arg]
        _first_layer(config).update(module="os", class_name="system", registered_name=None)

    def tfsm(config: dict) -> None:  # type: ignore[type-arg]
        _first_layer(config)["class_name"] = "TFSMLayer"

    def torch(config: dict) -> None:  # type: ignore[type-arg]
        _first_layer(config)["class_name"] = "TorchModuleWrapper"

    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 200
    return {
        "lambda.keras": (lam, 422, "unsafe_model"),
        "lambda.h5": ((tmp / "lambda.h5").read_bytes(), 422, "unsafe_model"),
        "zip-bomb.keras": (_rezip(good, bomb), 422, "unsafe_archive"),
        "zip-slip.keras": (_rezip(good, slip), 422, "unsafe_archive"),
        "absolute-path.keras": (_rezip(good, absolute), 422, "unsafe_archive"),
        "symlink.keras": (_rezip(good, link), 422, "unsafe_archive"),
        "extra-member.keras": (_rezip(good, extra), 422, "unsafe_archive"),
        "many-members.keras": (_rezip(good, many), 422, "unsafe_archive"),
        "custom-object.keras": (_with_config(good, custom), 422, "unsafe_model"),
        "foreign-module.keras": (_with_config(good, foreign), 422, "unsafe_model"),
        "tfsmlayer.keras": (_with_config(good, tfsm), 422, "unsafe_model"),
        "torch-wrapper.keras": (_with_config(good, torch), 422, "unsafe_model"),
        "config-not-json.keras": (_rezip(good, bad_json), 422, "corrupt_model"),
        "no-weights.keras": (_rezip(good, no_weights), 422, "corrupt_model"),
        "truncated.keras": (good[: len(good) // 3], 422, "corrupt_archive"),
        "pk-header-only.keras": (b"PK\x03\x04", 422, "corrupt_archive"),
        "truncated.h5": ((tmp / "ok.h5").read_bytes()[:2048], 422, "corrupt_model"),
        "external-dataset.h5": ((tmp / "external.h5").read_bytes(), 422, "unsafe_model"),
        "no-model.h5": ((tmp / "empty.h5").read_bytes(), 422, "corrupt_model"),
        "empty.keras": (b"", 422, "empty_file"),
        "picture.keras": (png, 415, "unsupported_format"),
        "random.bin": (np.random.default_rng(0).bytes(4096), 415, "unsupported_format"),
        "corrupt.tflite": (b"\x1c\0\0\0TFL3" + np.random.default_rng(1).bytes(2048), 422, "model_load_failed"),
    }


def _dataset_corpus() -> dict[str, tuple[bytes, int, str]]:
    x, y = np.zeros((10, 8, 8, 1), np.float32), np.zeros(10, np.int64)
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("../x_train.npy", b"x")
    return {
        "pickled.npz": (_npz(x_train=np.array([object()] * 10), y_train=y, x_val=x, y_val=y), 422, "invalid_dataset"),
        "length-mismatch.npz": (_npz(x_train=x, y_train=y[:9], x_val=x, y_val=y), 422, "invalid_dataset"),
        "no-val.npz": (_npz(x_train=x, y_train=y), 422, "invalid_dataset"),
        "strings.npz": (_npz(x_train=np.array(["a"] * 10), y_train=y, x_val=x, y_val=y), 422, "invalid_dataset"),
        "zip-slip.npz": (slip.getvalue(), 422, "unsafe_archive"),
        "not-a-zip.npz": (b"x_train,y_train\n1,2\n", 415, "unsupported_format"),
    }


def _check_rejected(service: Service, route: str, name: str, payload: bytes, status: int, code: str) -> None:
    with service.client(service.new_key()) as c:
        response = c.post(route, files={"file": (name, payload)})
        assert response.status_code == status, (name, response.text)
        assert response.json()["error"]["code"] == code, (name, response.text)
        assert c.get("/healthz").status_code == 200


def test_hostile_models_are_refused(embedded: Service, digits_model: Path, tmp_path: Path) -> None:
    corpus = _model_corpus(tmp_path, digits_model)
    MARKER.unlink(missing_ok=True)  # building the Lambda models here ran their code once, in this process
    with embedded.client(embedded.new_key()) as c:
        for name, (payload, status, code) in corpus.items():
            response = c.post("/v1/models", files={"file": (name, payload)})
            assert response.status_code == status, (name, response.text)
            assert response.json()["error"]["code"] == code, (name, response.text)
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/models").json()["items"] == []
    assert not MARKER.exists()


def test_hostile_datasets_are_refused(embedded: Service) -> None:
    with embedded.client(embedded.new_key()) as c:
        for name, (payload, status, code) in _dataset_corpus().items():
            response = c.post("/v1/datasets", files={"file": (name, payload)})
            assert response.status_code == status, (name, response.text)
            assert response.json()["error"]["code"] == code, (name, response.text)
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("name", "arrays", "code"),
    [
        ("nan", {"x_train": np.full((20, 8, 8, 1), np.nan, np.float32)}, "invalid_dataset"),
        ("labels-out-of-range", {"y_train": np.full(20, 42)}, "data_mismatch"),
    ],
)
def test_broken_data_fails_the_job_with_a_code(
    embedded: Service, digits_model: Path, name: str, arrays: dict[str, np.ndarray], code: str
) -> None:
    base = {
        "x_train": np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32),
        "y_train": np.arange(20) % 10,
        "x_val": np.random.default_rng(1).random((10, 8, 8, 1), dtype=np.float32),
        "y_val": np.arange(10),
    }
    base.update(arrays)
    with embedded.client(embedded.new_key()) as c:
        dataset = c.post("/v1/datasets", files={"file": (f"{name}.npz", _npz(**base))}).json()
        with digits_model.open("rb") as f:
            model = c.post("/v1/models", files={"file": ("m.keras", f)}).json()
        spec = {"model_id": model["id"], "dataset_id": dataset["id"], "target": {"sparsity": 0.5}}
        job = wait_for_job(c, c.post("/v1/jobs", json=spec).json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == code


def test_a_sample_shape_that_does_not_fit_the_model_is_refused_at_submit(embedded: Service, digits_model: Path) -> None:
    x = np.zeros((10, 5, 5, 1), np.float32)
    y = np.zeros(10, np.int64)
    with embedded.client(embedded.new_key()) as c:
        dataset = c.post("/v1/datasets", files={"file": ("d.npz", _npz(x_train=x, y_train=y, x_val=x, y_val=y))}).json()
        with digits_model.open("rb") as f:
            model = c.post("/v1/models", files={"file": ("m.keras", f)}).json()
        response = c.post(
            "/v1/jobs", json={"model_id": model["id"], "dataset_id": dataset["id"], "target": {"sparsity": 0.5}}
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "data_mismatch"
