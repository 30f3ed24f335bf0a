import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the engine does (pruning/__init__.py): test modules import Keras before the engine does.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# No test calibrates the host tables by accident (minutes of CPU): tests/pruning/test_host_calibration.py does, tiny.
os.environ.setdefault("SHEARS_HOST_CALIBRATION", "off")

from tests.services import Service, postgres_database, redis_broker  # noqa: E402

MAX_UPLOAD = 8 * 1024 * 1024


@pytest.fixture(scope="session")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The embedded default: SQLite and the filesystem broker under one data folder."""
    # Loopback webhook receivers in the tests need private callback addresses allowed.
    env = {"SHEARS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD), "SHEARS_WEBHOOK_ALLOW_PRIVATE": "true"}
    service = Service(tmp_path_factory.mktemp("embedded"), env)
    service.start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """PostgreSQL and Redis, as in production."""
    with postgres_database() as db_url, redis_broker() as broker_url:
        service = Service(
            tmp_path_factory.mktemp("production"),
            {
                "SHEARS_DATABASE_URL": db_url,
                "SHEARS_BROKER_URL": broker_url,
                "SHEARS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
            },
        )
        service.start()
        yield service
        service.stop()


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained briefly on the built-in digits."""
    from pruning.examples import digits_cnn

    path = tmp_path_factory.mktemp("models") / "digits.keras"
    digits_cnn(epochs=8).save(path)
    return path


@pytest.fixture(scope="session")
def key(embedded: Service) -> str:
    return embedded.new_key("tenant-a")
