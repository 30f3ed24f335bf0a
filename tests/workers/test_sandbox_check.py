"""Every built-in attack of `shears sandbox-check` fails where a job's engine runs (CI: SHEARS_SANDBOX=strict).

The attacks run through the launcher the engine gets (`workers.sandbox.start_confined`), once per
module; each one is a test of its own that fails if that attack went through.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contract import jail
from pruning import attacks
from workers import sandbox_check

BUILT_IN = list(
    attacks.suite(
        {
            "pids": [1, 2, 3],
            "ports": dict.fromkeys(("listener", "postgres", "redis", "store"), 1),
            "writes": {"installed_package": "", "tmp_outside": "", "database_file": ""},
        }
    )
)


@pytest.fixture(scope="module")
def results() -> dict[str, sandbox_check.Attempt]:
    found, attempts = sandbox_check.run()
    if os.environ.get("SHEARS_SANDBOX") == "strict":
        assert found["level"] == "namespaces", found
    return {a.name: a for a in attempts}


@pytest.mark.parametrize("name", BUILT_IN)
def test_the_attack_fails_inside_the_engines_sandbox(name: str, results: dict[str, sandbox_check.Attempt]) -> None:
    assert name in results, sorted(results)
    assert results[name].blocked, f"{name} went through: {results[name].detail}"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shears.cli", "sandbox-check", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_the_command_prints_each_attempt_and_runs_a_payload(tmp_path: Path) -> None:
    payload = tmp_path / "payload.py"
    payload.write_text("import os\nprint('PAYLOAD-RAN', os.getuid())\nopen('/etc/shadow').read()\n")
    done = _cli("--json", "--payload", str(payload))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    answer = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert answer["ok"] is True
    assert {a["name"] for a in answer["attempts"]} >= set(BUILT_IN)
    (ran,) = [a for a in answer["attempts"] if a["name"] == "payload"]
    assert ran["blocked"] is True  # it stopped at /etc/shadow
    assert "shadow" in ran["detail"]
    assert "PAYLOAD-RAN" in done.stdout


def test_the_landlock_fallback_also_stops_every_attack() -> None:
    if jail.landlock.abi() < 6:
        pytest.skip("this kernel's Landlock cannot scope signals (ABI < 6)")
    done = _cli("--json", env={"SHEARS_SANDBOX": "landlock"})
    answer = json.loads(done.stdout)
    assert answer["sandbox"]["level"] == "landlock"
    went_through = {a["name"] for a in answer["attempts"] if not a["blocked"]}
    if os.geteuid() == 0:  # only bubblewrap's level gives a root worker's child a uid of its own: said loudly
        assert went_through == {"own_files_as_worker_uid"}, went_through
        assert done.returncode == 1
    else:
        assert done.returncode == 0, went_through


def test_below_the_required_level_strict_refuses_and_the_check_says_why(tmp_path: Path) -> None:
    # A host without bubblewrap, as the launcher sees it.
    env = {"SHEARS_SANDBOX": "strict", "PATH": str(tmp_path)}
    done = _cli(env=env)
    assert done.returncode == 1
    assert "SUCCEEDED  start" in done.stdout
    assert "sandbox_unavailable" in done.stdout
    assert "bubblewrap" in done.stdout
