"""The one door (contract/): one job spec for every side, a typed engine protocol, one status set."""

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from click.testing import CliRunner

from app.tables import JobStatus, StatusName
from contract import checks
from contract.engine import (
    PROTOCOL,
    Checkpoint,
    Done,
    EngineRequest,
    Failed,
    Progress,
    ProgressThrottle,
    decode,
    encode,
)
from contract.errors import PruningError
from contract.spec import JobSpec, SpecError, Target, choices, default


def test_the_api_process_imports_no_engine_and_no_tensorflow() -> None:
    code = "import sys, app.api.main; print(sorted(m for m in ('pruning', 'tensorflow', 'keras') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cross_field_rules_answer_with_a_code() -> None:
    with pytest.raises(SpecError) as err:
        JobSpec(model_id="m", granularity="unstructured", target=Target(latency_ms=3, device="host")).check()
    assert err.value.code == "invalid_spec"
    with pytest.raises(SpecError) as err:
        JobSpec(model_id="m", target=Target(sparsity=0.5), devices=["toaster"]).check()
    assert err.value.code == "unknown_device"
    assert isinstance(err.value, PruningError)
    assert isinstance(err.value, ValueError)
    JobSpec(model_id="m", target=Target(sparsity=0.5)).check()


def test_the_engine_takes_its_defaults_and_rules_from_the_contract() -> None:
    from pruning.spec import PruneSpec

    spec = PruneSpec()
    assert (spec.method, spec.granularity, spec.quantization) == (
        default(JobSpec, "method"),
        default(JobSpec, "granularity"),
        default(JobSpec, "quantization"),
    )
    with pytest.raises(SpecError, match="block needs granularity unstructured"):
        PruneSpec(granularity="channel", block=4)


def test_the_command_line_offers_the_contracts_choices() -> None:
    from shears.cli import main

    help_text = CliRunner().invoke(main, ["prune", "--help"]).output
    assert "[" + "|".join(choices(JobSpec, "method")) + "]" in help_text
    assert "[" + "|".join(choices(JobSpec, "scope")) + "]" in help_text


def test_messages_round_trip_and_another_version_is_refused() -> None:
    for message in (
        Progress(stage="pruning", progress=0.5),
        Checkpoint(step=1, steps=2),
        Failed(code="x", message="y"),
    ):
        assert decode(encode(message)) == message
    assert decode(encode(Done())) == Done()
    assert decode('{"v": 2, "type": "done"}') is None
    assert decode("TensorFlow says hello") is None
    request = EngineRequest(kind="prune", spec={}, model="m.keras", out="out")
    assert request.v == PROTOCOL
    with pytest.raises(ValueError, match="v"):
        EngineRequest.model_validate({"v": 2, "kind": "prune", "spec": {}, "model": "m", "out": "o"})


def test_progress_is_throttled_within_a_stage_and_never_across_stages() -> None:
    throttle = ProgressThrottle(every_s=0.5)
    assert throttle.due("pruning", 0.1, now=10.0)
    assert not throttle.due("pruning", 0.2, now=10.2)  # too soon within the stage
    assert throttle.due("pruning", 1.0, now=10.3)  # a stage's end always passes
    assert throttle.due("finetuning", 0.0, now=10.35)  # so does a new stage, however soon
    assert not throttle.due("finetuning", 0.1, now=10.6)
    assert throttle.due("finetuning", 0.2, now=10.86)


def test_one_status_set() -> None:
    assert set(get_args(StatusName)) == {s.value for s in JobStatus}


def test_checkers_answer_in_the_typed_protocol(tmp_path: Path) -> None:
    """Both upload checkers, run as the API runs them, end with one versioned answer the API decodes."""
    bad_model, bad_data = tmp_path / "m.keras", tmp_path / "d.npz"
    bad_model.write_bytes(b"not a zip")
    bad_data.write_bytes(b"not an npz either")
    for argv in (
        ["pruning.inspect", str(bad_model)],
        ["pruning.check_dataset", str(bad_data), str(tmp_path / "o"), ""],
    ):
        proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        answer = checks.read_answer(proc.stdout)
        assert isinstance(answer, checks.Refused), (proc.stdout, proc.stderr[-2000:])
        assert answer.code in ("corrupt_archive", "invalid_dataset"), answer
        assert proc.returncode == checks.EXIT["error"]


def test_a_checker_answer_of_another_version_or_shape_is_not_read() -> None:
    line = checks.answer(checks.Checked(result={"params": 3}))
    assert checks.read_answer("noise from a parser\n" + line) == checks.Checked(result={"params": 3})
    assert checks.read_answer(line.replace('"v":1', '"v":2')) is None
    assert checks.read_answer('{"type": "error", "code": "x"}') is None  # no message
    assert checks.read_answer(line + "a line after it") is None  # the answer must be the last line
    assert checks.read_answer("") is None
    odd = checks.answer(checks.Checked(result={"classes": ["a\u2028b", "c\x85d"]}))  # raw in the JSON
    assert checks.read_answer(odd) == checks.Checked(result={"classes": ["a\u2028b", "c\x85d"]})
