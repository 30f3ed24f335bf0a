"""`shears remote` as a CI machine runs it: the command in a subprocess, against the session's live server."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import Service


def _default_sigint() -> None:
    # A child of a background shell may inherit SIGINT ignored; Ctrl-C must reach the client.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    def __init__(self, service: Service, key: str) -> None:
        self.service, self.key = service, key
        self.env = {**os.environ, "SHEARS_URL": service.url, "SHEARS_API_KEY": key}
        self.env = {k: v for k, v in self.env.items() if k != "SHEARS_DATA_DIR"}  # a client-only machine

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shears.cli", "remote", *args]

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def client(self) -> httpx.Client:
        return self.service.client(self.key)


@pytest.fixture(scope="module")
def cli(embedded: Service) -> Cli:
    return Cli(embedded, embedded.new_key())


@pytest.fixture(scope="module")
def four_class_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Takes 8x8 digits but has 4 outputs: its jobs fail in the worker with data_mismatch."""
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("four") / "four.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def uploaded_four(cli: Cli, four_class_model: Path) -> dict[str, Any]:
    out = cli("upload", str(four_class_model))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))
