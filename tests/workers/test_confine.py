"""The engine process may run threads but never start a program or a child process, even as root."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, os, subprocess, threading
from pruning.confine import confine
confine()
seen = {}
for name, attempt in {
    "fork": os.fork,
    "subprocess": lambda: subprocess.run(["true"]),
    "execv": lambda: os.execv("/bin/true", ["true"]),
}.items():
    try:
        attempt()
        seen[name] = "allowed"
    except PermissionError:
        seen[name] = "PermissionError"
out = []
threads = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seen["threads"] = len(out)
seen["seccomp"] = [line.split()[1] for line in open("/proc/self/status") if line.startswith("Seccomp:")][0]
seen["uid"] = os.getuid()
print(json.dumps(seen))
"""


def test_confined_process_gets_eperm_for_fork_exec_and_subprocess_but_starts_threads() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert seen["fork"] == seen["subprocess"] == seen["execv"] == "PermissionError", seen
    assert seen["threads"] == 8
    assert seen["seccomp"] == "2"  # filter mode


def _engine(request: dict[str, object], tmp_path: Path, env: dict[str, str], *prelude: str) -> tuple[int, list]:
    """Run the real engine entry, `pruning.job.main`, on `request`; returns its exit code and messages."""
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    code = ";".join([*prelude, "import sys", "from pruning.job import main", f"sys.exit(main({str(path)!r}))"])
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        cwd=tmp_path,
    )
    return proc.returncode, [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def _request(model: Path, out: Path, quantization: str = "none") -> dict[str, object]:
    spec = {
        "target": {"sparsity": 0.5},
        "schedule": {"kind": "polynomial", "steps": 2},
        "finetune": {"epochs": 2, "batch_size": 64},
        "quantization": quantization,
    }
    return {"spec": spec, "data": "builtin:digits", "model": str(model), "out": str(out), "kind": "prune"}


def test_tensorflow_loads_trains_converts_and_runs_litert_under_the_filter(digits_model: Path, tmp_path: Path) -> None:
    rc, messages = _engine(_request(digits_model, tmp_path / "out", "dynamic_int8"), tmp_path, {})
    assert rc == 0, messages
    assert messages[-1] == {"type": "done"}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["tflite_check"]["loads"] is True
    assert report["tflite_check"]["agreement"] >= 0.9
    assert len(report["schedule"]["rounds"]) == 2
    assert report["latency"][0]["measured_ms"] > 0  # LiteRT ran the model on this host


def test_without_seccomp_the_job_fails_with_a_code_unless_turned_off(digits_model: Path, tmp_path: Path) -> None:
    # A platform we have no filter for, as the engine sees it.
    pretend = "import platform; platform.machine = lambda: 'mips64'"
    rc, messages = _engine(_request(digits_model, tmp_path / "out"), tmp_path, {}, pretend)
    assert rc == 3
    assert messages[-1]["type"] == "error"
    assert messages[-1]["code"] == "sandbox_unavailable"
    assert "SHEARS_ENGINE_SECCOMP=false" in messages[-1]["message"]
    assert not (tmp_path / "out").exists()

    rc, messages = _engine(
        _request(digits_model, tmp_path / "out"), tmp_path, {"SHEARS_ENGINE_SECCOMP": "false"}, pretend
    )
    assert rc == 0, messages
    assert (tmp_path / "out" / "model.tflite").exists()


@pytest.mark.parametrize("value", ["true", ""])
def test_the_filter_is_on_by_default(value: str, tmp_path: Path) -> None:
    """The engine entry installs it before it reads the request (a missing request then fails after)."""
    code = (
        "import sys, os\n"
        "from pruning import job\n"
        "real = job.Path\n"
        "class Spy(type(real())):\n"
        "    def read_text(self, *a, **k):\n"
        "        status = open('/proc/self/status').read()\n"
        "        print([l for l in status.splitlines() if l.startswith('Seccomp:')][0], file=sys.stderr)\n"
        "        raise SystemExit(0)\n"
        "job.Path = Spy\n"
        "job.main('request.json')\n"
    )
    env = {**os.environ}
    env.pop("SHEARS_ENGINE_SECCOMP", None)
    if value:
        env["SHEARS_ENGINE_SECCOMP"] = value
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
    )
    assert "Seccomp:\t2" in proc.stderr, proc.stderr


def test_microcontroller_ram_is_still_measured_with_tflite_micro_under_the_filter(
    digits_model: Path, tmp_path: Path
) -> None:
    """TFLite Micro runs in a process of its own (it aborts on some models); the engine starts that
    process before it forbids itself children, and sends it the models to measure."""
    request = {
        "spec": {"kind": "profile", "devices": ["cortex-m7-216mhz"], "quantization": "int8"},
        "data": "builtin:digits",
        "model": str(digits_model),
        "out": str(tmp_path / "out"),
        "kind": "profile",
    }
    rc, messages = _engine(request, tmp_path, {})
    assert rc == 0, messages
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (entry,) = report["latency"]
    assert "measured with the tflite-micro interpreter" in entry["basis"], entry["basis"]
    assert entry["ram_bytes"] > 0


def test_the_upload_check_runs_under_the_same_filter(digits_model: Path, tmp_path: Path) -> None:
    """`python -m pruning.inspect` (what the API runs on every uploaded model) confines itself first."""
    code = (
        f"import os, sys, json; sys.argv = ['inspect', {str(digits_model)!r}];"
        "from pruning.inspect import main; rc = main();"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l);"
        "forked = True\n"
        "try:\n    os.fork()\nexcept PermissionError:\n    forked = False\n"
        "print(json.dumps({'rc': rc, 'seccomp': status['Seccomp'].strip(), 'forked': forked}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    described, seen = (json.loads(line) for line in proc.stdout.strip().splitlines()[-2:])
    assert described["params"] > 0, proc.stderr
    assert seen == {"rc": 0, "seccomp": "2", "forked": False}
