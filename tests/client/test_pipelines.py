"""The CI examples as their runners would run them, minus the runner: the `run:` steps of the reusable
GitHub Actions workflow and the before_script/script of the GitLab CI template, in bash with the
environment they declare, the client from its own virtual environment, against a live server."""

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.client.conftest import ClientVenv
from tests.services import Service

# The installed client in its own environment (made once per session): out of `make test-fast`.
pytestmark = pytest.mark.service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _github(expression: str, context: dict[str, dict[str, str]]) -> str:
    """The few GitHub expressions the workflow uses: `a.b`, and `x || y` (the first non-empty)."""
    for part in expression.split("||"):
        scope, _, name = part.strip().partition(".")
        value = context.get(scope, {}).get(name, "")
        if value:
            return value
    return ""


def _bash(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # GitHub's `shell: bash` and GitLab's shell executor both stop at the first failing command.
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def run_github_workflow(
    venv: ClientVenv, server: Service, key: str, workspace: Path, inputs: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], Path]:
    workflow = yaml.safe_load((EXAMPLES / "github-workflow.yml").read_text())
    declared = workflow[True]["workflow_call"]["inputs"]  # YAML 1.1 reads the key `on` as True
    missing = {name for name, spec in declared.items() if spec.get("required") and name not in inputs}
    assert not missing, missing
    context = {
        "inputs": {name: str(inputs.get(name, spec.get("default", ""))) for name, spec in declared.items()},
        "secrets": {"SHEARS_API_KEY": key},
        "vars": {"SHEARS_URL": server.url},
    }
    (job,) = workflow["jobs"].values()
    summary = workspace / "step-summary.md"
    env = venv.env(GITHUB_STEP_SUMMARY=str(summary), GITHUB_WORKSPACE=str(workspace))

    def expand(values: dict[str, Any]) -> dict[str, str]:
        return {k: EXPRESSION.sub(lambda m: _github(m.group(1), context), str(v)) for k, v in values.items()}

    env.update(expand(job.get("env", {})))
    out = None
    for step in job["steps"]:
        if "run" not in step:
            assert step["uses"].startswith(("actions/checkout@", "actions/setup-python@", "actions/upload-artifact@"))
            continue
        out = _bash(step["run"], {**env, **expand(step.get("env", {}))}, workspace)
        if out.returncode != 0:
            break
    assert out is not None
    return out, summary


def run_gitlab_template(
    venv: ClientVenv, server: Service, key: str, workspace: Path, variables: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    template = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())[".shears-prune"]
    env = venv.env(SHEARS_URL=server.url, SHEARS_API_KEY=key)  # the project's CI/CD variables
    env.update({k: str(v) for k, v in template["variables"].items()})
    env.update(variables)  # the including job's `variables:`
    return _bash("\n".join(template["before_script"] + template["script"]), env, workspace)


@pytest.fixture
def workspace(tmp_path: Path, digits_model: Path) -> Path:
    """A checkout of the user's repository: the model at model/model.keras."""
    (tmp_path / "model").mkdir()
    shutil.copyfile(digits_model, tmp_path / "model" / "model.keras")
    return tmp_path


def _junit(path: Path) -> tuple[int, int, list[str]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    failed = [str(c.get("name")) for c in suite.iter("testcase") if c.find("failure") is not None]
    return int(suite.get("tests", 0)), int(suite.get("failures", 0)), failed


def test_the_github_workflow_prunes_and_writes_the_step_summary(
    client_venv: ClientVenv, embedded: Service, workspace: Path
) -> None:
    inputs = {"model": "model/model.keras", "sparsity": "0.5", "epochs": "0", "scope": "global", "block": "2",
              "devices": "host cortex-m4f-120mhz", "max-size-kb": "1000", "max-latency-ms": "5000"}  # fmt: skip
    out, summary = run_github_workflow(client_venv, embedded, embedded.new_key(), workspace, inputs)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (workspace / "pruned.tflite").read_bytes()[4:8] == b"TFL3"
    text = summary.read_text()
    assert "budgets passed" in text
    assert "| host |" in text
    assert "| cortex-m4f-120mhz |" in text
    assert _junit(workspace / "shears-junit.xml") == (4, 0, [])  # the job, latency on two devices, size
    assert re.search(r"submitted job_\S+", out.stderr)


def test_the_gitlab_template_fails_the_job_on_a_missed_budget_with_a_junit_failure(
    client_venv: ClientVenv, embedded: Service, workspace: Path
) -> None:
    variables = {"SHEARS_EPOCHS": "0", "SHEARS_MAX_SIZE_KB": "0.5", "SHEARS_QUANTIZATION": "dynamic_int8"}
    out = run_gitlab_template(client_venv, embedded, embedded.new_key(), workspace, variables)
    assert out.returncode == 5, out.stdout + out.stderr
    assert "budget missed (1)" in out.stderr
    tests, failures, failed = _junit(workspace / "shears-junit.xml")
    assert (tests, failures, failed) == (2, 1, ["size <= 0.5 KB"])
    assert "budgets failed" in (workspace / "shears-summary.md").read_text()
