"""The engine process may run threads but never start a program or a child process, even as root."""

import json
import os
import signal
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
    assert messages[-1]["type"] == "done"
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

    # Turned off, the same job runs to the end; one round and no fine-tuning is enough to show it (the
    # rounds and epochs under the filter are the test above's).
    light = _request(digits_model, tmp_path / "out")
    light["spec"] = {"target": {"sparsity": 0.5}, "schedule": {"kind": "one_shot"}, "finetune": {"epochs": 0}}
    rc, messages = _engine(light, tmp_path, {"SHEARS_ENGINE_SECCOMP": "false"}, pretend)
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
    assert described["type"] == "checked", proc.stderr
    assert described["result"]["params"] > 0
    assert seen == {"rc": 0, "seccomp": "2", "forked": False}


REACH = """
import ctypes, json, os, subprocess
target = subprocess.Popen(["sleep", "60"])  # started before the filter, as the engine starts its measuring server
from pruning.confine import confine
confine()
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
seen = {"ptrace": libc.ptrace(ctypes.c_long(16), ctypes.c_long(target.pid), None, None)}  # PTRACE_ATTACH
seen["ptrace_errno"] = ctypes.get_errno()
class Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local, remote = Iovec(ctypes.addressof(buf), 8), Iovec(ctypes.addressof(buf), 8)
libc.process_vm_readv.restype = ctypes.c_ssize_t
seen["vm_read"] = libc.process_vm_readv(target.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
seen["vm_read_errno"] = ctypes.get_errno()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
seen["caps"] = {k: status[k].strip() for k in ("CapEff", "CapPrm", "CapInh")}
target.kill()
print(json.dumps(seen))
"""


def test_confined_process_cannot_trace_or_read_a_process_it_started_and_has_no_capabilities() -> None:
    out = subprocess.run([sys.executable, "-c", REACH], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(out.stdout)
    assert (seen["ptrace"], seen["ptrace_errno"]) == (-1, 1), seen  # EPERM
    assert (seen["vm_read"], seen["vm_read_errno"]) == (-1, 1), seen
    assert seen["caps"] == {"CapEff": "0000000000000000", "CapPrm": "0000000000000000", "CapInh": "0000000000000000"}


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    code = (
        "import sys, keras, tensorflow as tf\n"
        "m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])\n"
        "open(sys.argv[1], 'wb').write(tf.lite.TFLiteConverter.from_keras_model(m).convert())\n"
    )
    path = tmp_path_factory.mktemp("micro") / "tiny.tflite"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, timeout=120, env=env)
    return path


def test_the_tflite_micro_process_confines_itself_before_reading_the_model(tiny_tflite: Path) -> None:
    """What `python -m pruning.micro MODEL ARENA` runs (`_main`), then a look at the process it leaves."""
    pytest.importorskip("tflite_micro")
    code = (
        f"import os, sys, json; from pruning import micro; rc = micro._main({str(tiny_tflite)!r}, 65536);"
        "status = dict(l.split(':', 1) for l in open('/proc/self/status') if ':' in l);"
        "forked = True\n"
        "try:\n    os.fork()\nexcept PermissionError:\n    forked = False\n"
        "print(json.dumps({'rc': rc, 'seccomp': status['Seccomp'].strip(), 'cap': status['CapEff'].strip(),"
        " 'forked': forked}))"
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("SHEARS_ENGINE_SECCOMP", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert "Arena allocation total" in proc.stdout + proc.stderr, proc.stdout + proc.stderr  # TFLM prints to stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"rc": 0, "seccomp": "2", "cap": "0000000000000000", "forked": False}

    # Where it cannot confine itself, the measurement fails (and the estimate falls back) ...
    pretend = (
        "import platform, sys; platform.machine = lambda: 'mips64'; from pruning import micro;"
        f"sys.exit(micro._main({str(tiny_tflite)!r}, 65536))"
    )
    proc = subprocess.run([sys.executable, "-c", pretend], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "error: cannot confine the measuring process" in proc.stdout
    assert "Arena allocation" not in proc.stdout + proc.stderr
    # ... unless SHEARS_ENGINE_SECCOMP=false says to run without.
    env["SHEARS_ENGINE_SECCOMP"] = "false"
    proc = subprocess.run([sys.executable, "-c", pretend], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Arena allocation total" in proc.stdout + proc.stderr


SERVER = """
import ctypes, json, os, sys
from pruning import micro
micro.start_server()
from pruning.confine import confine
confine()
server = micro._server
try:
    open(f"/proc/{server.pid}/mem", "rb").close()
    mem = "opened"
except OSError as exc:
    mem = exc.errno
usage = micro.arena_usage(open(sys.argv[1], "rb").read())
print(json.dumps({"mem": mem, "usage": usage, "server_alive": server.poll() is None}))
"""


def test_the_confined_engine_cannot_open_the_measuring_servers_memory_and_still_gets_measurements(
    tiny_tflite: Path,
) -> None:
    pytest.importorskip("tflite_micro")
    env = {k: v for k, v in os.environ.items() if k != "SHEARS_ENGINE_SECCOMP"}
    proc = subprocess.run(
        [sys.executable, "-c", SERVER, str(tiny_tflite)], capture_output=True, text=True, timeout=120, env=env
    )
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["mem"] == 13, seen  # EACCES: non-dumpable, and the engine has no CAP_SYS_PTRACE
    assert seen["usage"] is not None, proc.stderr
    assert seen["usage"]["total"] > 0
    assert seen["server_alive"]


def test_a_measuring_server_that_does_not_answer_in_time_is_stopped_not_read_later(tiny_tflite: Path) -> None:
    """A late answer would be taken for the next request's: after a timeout the server is killed."""
    pytest.importorskip("tflite_micro")
    from pruning import micro

    micro.start_server()
    server = micro._server
    assert server is not None
    os.kill(server.pid, signal.SIGSTOP)  # a server that takes too long
    timeout = micro.TIMEOUT_S
    micro.TIMEOUT_S = -9  # the wait is TIMEOUT_S + 10 seconds
    try:
        assert micro._ask_server(str(tiny_tflite), 65536) is None
    finally:
        micro.TIMEOUT_S = timeout
    assert micro._server is None
    assert server.poll() is not None  # killed
    assert micro._ask_server(str(tiny_tflite), 65536) is None  # later measurements fall back to `_run`
