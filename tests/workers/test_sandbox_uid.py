"""Who a confined child is outside: a uid of its own when the worker is root (CI), and nothing of the
worker's within its reach when it is not (`contract.sandbox_ids`); checkpoints taken, not followed."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app.storage import LocalArtifactStore
from contract import jail, sandbox_ids
from pruning import attacks
from workers.checkpoints import JobCheckpoint

ROOT_WITH_NAMESPACES = os.geteuid() == 0 and jail.probe().level == "namespaces"


@pytest.mark.skipif(not ROOT_WITH_NAMESPACES, reason="a uid of its own needs a root worker and bubblewrap")
def test_a_root_workers_child_is_a_uid_of_its_own_and_the_worker_reads_what_it_wrote(tmp_path: Path) -> None:
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "request.json").write_text('{"from": "worker"}')
    upload = tmp_path / "private-upload.bin"  # as the API spools it: root's, 0600
    upload.write_bytes(b"uploaded")
    upload.chmod(0o600)
    code = (
        "import os, sys, pathlib; p = pathlib.Path(sys.argv[1]);"
        "(p / 'out.txt').write_text(f\"{os.getuid()} {(p / 'request.json').read_text()} \""
        " + open(sys.argv[2]).read())"
    )
    launch = jail.launch(
        [sys.executable, "-c", code, str(workdir), str(upload)],
        workdir=workdir,
        limits=jail.Limits(cpu_seconds=30),
        readable=[upload],
    )
    done = subprocess.run(launch.argv, preexec_fn=launch.preexec, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert launch.ids is not None
    first, last = sandbox_ids.configured_range() or (0, 0)
    written = workdir / "out.txt"
    assert first <= written.stat().st_uid <= last
    assert written.stat().st_uid == launch.ids.uid
    # It ran as that uid (not root seen through a user namespace), read its inputs, and the worker reads it back.
    assert written.read_text() == f'{launch.ids.uid} {{"from": "worker"}} uploaded'
    assert stat.S_IMODE(upload.stat().st_mode) == 0o640  # the child's group reads it; nobody else does


@pytest.mark.skipif(not ROOT_WITH_NAMESPACES, reason="a uid of its own needs a root worker and bubblewrap")
def test_with_the_uid_switch_off_a_root_worker_fails_the_check_on_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shears.cli", "sandbox-check", "--fast", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SHEARS_SANDBOX_UIDS": "off"},
    )
    answer = json.loads(done.stdout)
    assert done.returncode == 1
    assert [a["name"] for a in answer["attempts"] if not a["blocked"]] == ["own_files_as_worker_uid"]


def test_a_malformed_uid_range_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHEARS_SANDBOX_UIDS", "1000-oops")
    with pytest.raises(ValueError, match="SHEARS_SANDBOX_UIDS"):
        sandbox_ids.configured_range()
    monkeypatch.setenv("SHEARS_SANDBOX_UIDS", "2000000-2000009")
    assert sandbox_ids.configured_range() == (2000000, 2000009)


def test_the_inside_probe_finds_a_private_or_writable_file(tmp_path: Path) -> None:
    """What `find_worker_files` reports from inside, shown on a tree of this process's own."""
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "mine").write_text("the job's own: not reported")
    (tmp_path / "shared").write_text("readable by all")
    (tmp_path / "shared").chmod(0o444)
    secret = tmp_path / "secret"
    secret.write_text("the worker's key")
    secret.chmod(0o400)
    found = attacks.private_files(str(tmp_path), str(tmp_path / "job"))
    assert any(str(secret) in f for f in found)
    assert not any("job" in f for f in found)
    if os.geteuid() != 0:  # root may write anything here: the sandbox's child never is root
        assert not any("shared" in f for f in found)


def test_a_checkpoint_file_swapped_for_a_link_is_refused_not_stored(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    workdir = tmp_path / "job"
    round_dir = workdir / "checkpoint" / "1"
    round_dir.mkdir(parents=True)
    (round_dir / "state.json").write_text(json.dumps({"step": 1, "files": ["weights.bin"]}))
    secret = tmp_path / "worker-secret"
    secret.write_text("S3 keys")
    (round_dir / "weights.bin").symlink_to(secret)
    checkpoint = JobCheckpoint(store, "t1", "job1", workdir, tmp_path / "taken")
    with pytest.raises(ValueError, match="refused"):
        checkpoint.save(1)
    assert not store.exists("t1/jobs/job1/checkpoint/weights.bin")
    assert not store.exists("t1/jobs/job1/checkpoint/state.json")
    # A folder swapped for a link is not followed either.
    (workdir / "checkpoint" / "1" / "weights.bin").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "state.json").write_text(json.dumps({"step": 2, "files": []}))
    (workdir / "checkpoint" / "2").symlink_to(elsewhere)
    with pytest.raises(ValueError, match="refused"):
        checkpoint.save(2)
    # And a plain checkpoint is stored.
    (round_dir / "weights.bin").write_bytes(b"w")
    checkpoint.save(1)
    assert store.exists("t1/jobs/job1/checkpoint/weights.bin")


def test_a_checkers_output_that_is_a_link_is_refused_not_stored(tmp_path: Path) -> None:
    from app.errors import InvalidInput
    from app.models.inspection import take_output

    secret = tmp_path / "api-secret"
    secret.write_text("SHEARS_SECRET_KEY=...")
    produced, output = tmp_path / "output.bin", tmp_path / "data.npz"
    produced.symlink_to(secret)
    with pytest.raises(InvalidInput) as caught:
        take_output(produced, output, "dataset")
    assert caught.value.code == "dataset_load_failed"
    assert not output.exists()
    produced.unlink()
    produced.write_bytes(b"converted")
    take_output(produced, output, "dataset")
    assert output.read_bytes() == b"converted"
    assert output.stat().st_uid == os.geteuid()
