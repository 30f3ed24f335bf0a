"""`examples/pipeline.sh` (curl + jq), resumable uploads and the housekeeping commands, against a live server."""

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shears_client.errors import EXIT_REQUEST
from tests.cli.conftest import Cli
from tests.services import Service

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STAGES = ("queued", "loading", "scoring", "pruning", "finetuning", "converting", "profiling", "succeeded")
PROGRESS_LINE = re.compile(r"^(job_\S+)\s+(\w+)\s+(\d+)%$")


@pytest.fixture
def jq() -> str:
    path = shutil.which("jq")
    if path is None:
        pytest.skip("jq is not installed; examples/pipeline.sh needs curl and jq")
    return path


def test_pipeline_script(cli: Cli, digits_model: Path, uploaded_four: dict[str, Any], tmp_path: Path, jq: str) -> None:
    assert shutil.which("curl"), "curl is needed for examples/pipeline.sh"

    def run(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        cwd.mkdir()
        return subprocess.run(
            ["bash", str(EXAMPLES / "pipeline.sh")],
            env={**cli.env, "EPOCHS": "0", "POLL_S": "0.3", **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=240,
        )

    # Upload, submit, poll, download; the budget is met: the build passes.
    ok = run(tmp_path / "ok", MODEL=str(digits_model), MAX_SIZE_KB="100000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^job job_\S+ running (loading|scoring|pruning) \d+%$", ok.stdout, re.MULTILINE), ok.stdout
    assert re.search(r"^job job_\S+ succeeded profiling 100%$", ok.stdout, re.MULTILINE), ok.stdout
    assert "size budget met" in ok.stdout
    tflite = tmp_path / "ok" / "pruned.tflite"
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["size"]["tflite_bytes"] == tflite.stat().st_size > 0

    # The same model (by id, no second upload) against a budget it cannot meet: the build fails.
    model_id = re.search(r"-> (mdl_\S+)", ok.stdout).group(1)  # type: ignore[union-attr]
    missed = run(tmp_path / "missed", MODEL_ID=model_id, MAX_SIZE_KB="1")
    assert missed.returncode == 5, missed.stdout + missed.stderr
    assert "budget missed: size" in missed.stderr
    assert "budget 1 KB" in missed.stderr
    assert (tmp_path / "missed" / "pruned.tflite").stat().st_size > 0

    # A job that fails: the build fails with the job's error.
    failed = run(tmp_path / "failed", MODEL_ID=uploaded_four["id"], MAX_SIZE_KB="100000")
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert re.search(r"job job_\S+ failed: data_mismatch: ", failed.stderr), failed.stderr
    assert not (tmp_path / "failed" / "pruned.tflite").exists()


def test_pipeline_script_fails_the_build_on_a_refused_request(cli: Cli, tmp_path: Path, jq: str) -> None:
    (tmp_path / "model.keras").write_bytes(b"not a model")
    env = {**cli.env, "MODEL": str(tmp_path / "model.keras")}
    out = subprocess.run(
        ["bash", str(EXAMPLES / "pipeline.sh")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"POST /v1/models: HTTP 4\d\d \w+: ", out.stderr), out.stderr


def test_datasets_upload_resumable_with_options(cli: Cli, tmp_path: Path) -> None:
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "img.zip", "w") as z:
        for label in ("a", "b"):
            for i in range(6):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"{label}/{i}.png", buffer.getvalue())
    out = cli("datasets", "upload", "--resumable", "--options", '{"image_size": [8, 8]}', str(tmp_path / "img.zip"))
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["format"] == "images"
    assert record["summary"]["shape"] == [8, 8, 3]
    bad = cli("datasets", "upload", "--options", "{", str(tmp_path / "img.zip"))
    assert bad.returncode == 1


def test_delete_commands_and_usage(embedded: Service, four_class_model: Path, tmp_path: Path) -> None:
    cli = Cli(embedded, embedded.new_key())  # a tenant of its own: the deletes touch no other test's rows
    model_id = json.loads(cli("upload", str(four_class_model)).stdout)["id"]
    usage = cli("usage", "--json")
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)["models"] == 1
    text = cli("usage")
    assert "models    1" in text.stdout, text.stdout
    assert "retention off" in text.stdout
    out = cli("models", "delete", model_id)
    assert out.returncode == 0, out.stderr
    assert f"{model_id} deleted" in out.stdout
    again = cli("models", "delete", model_id)
    assert again.returncode == EXIT_REQUEST
    assert "404 not_found" in again.stderr
    for group, row_id in (("jobs", "job_nope"), ("datasets", "ds_nope")):
        gone = cli(group, "delete", row_id)
        assert gone.returncode == EXIT_REQUEST, gone.stderr
        assert "404 not_found" in gone.stderr
    assert json.loads(cli("usage", "--json").stdout)["models"] == 0
