import inspect
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# As the engine does (pruning/__init__.py): test modules import Keras before the engine does.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# No test calibrates the host tables by accident (minutes of CPU): tests/pruning/test_host_calibration.py does, tiny.
os.environ.setdefault("SHEARS_HOST_CALIBRATION", "off")
# Nor reads this machine's own calibration (./data/host-profiles): every run, a fresh clone's or a developer's
# after `calibrate-host`, estimates with the same committed tables (pruning/profiles/host.json).
os.environ.setdefault("SHEARS_HOST_PROFILES_DIR", tempfile.mkdtemp(prefix="shears-test-host-profiles-"))

from tests.services import Service, postgres_database, redis_broker  # noqa: E402

MAX_UPLOAD = 8 * 1024 * 1024

# Test tiers: `make test-fast` runs `-m "not service"`. A test is a `service` test when it, one of
# its fixtures (however deep) or a helper of its module that it calls starts a subprocess service:
# uvicorn and a Celery worker (tests.services.Service), the shared services, or Chromium.
# Long engine runs (each over ~5 s here: TensorFlow in a subprocess, or several trainings), left out of
# `make test-fast` as `slow`; by node id without parameters. `pytest --durations=40` finds new ones.
SLOW = {
    "tests/workers/test_resume.py::test_a_run_resumed_after_round_one_matches_an_uninterrupted_run",
    "tests/workers/test_confine.py::test_tensorflow_loads_trains_converts_and_runs_litert_under_the_filter",
    "tests/workers/test_confine.py::test_without_seccomp_the_job_fails_with_a_code_unless_turned_off",
    "tests/workers/test_confine.py::test_microcontroller_ram_is_still_measured_with_tflite_micro_under_the_filter",
    "tests/workers/test_confine.py::test_the_tflite_micro_process_confines_itself_before_reading_the_model",
    "tests/cli/test_prune_latency.py::test_prune_to_a_latency_budget",
    "tests/api/test_devices.py::test_profile_command",
    "tests/pruning/test_scores.py::test_gradient_and_activation_are_reproducible",
    "tests/pruning/test_scores.py::test_every_score_with_every_granularity",
    "tests/pruning/test_channels.py::test_a_channel_pruned_resnet_fine_tunes",
    "tests/pruning/test_latency_search.py::test_search_meets_a_reachable_budget_through_run",
    "tests/pruning/test_latency_search.py::test_per_layer_estimate_agrees_with_the_tflite_estimate",
    "tests/pruning/test_plots.py::test_a_run_writes_its_plots_and_lists_them",
    "tests/pruning/test_engine.py::test_regression_uses_mae_and_the_error_guard",
    "tests/pruning/test_engine.py::test_unstructured_masks_hold_through_finetune_and_export",
    "tests/pruning/test_engine.py::test_same_seed_same_result",
    "tests/pruning/test_engine.py::test_guard_backs_off_to_the_last_step_that_met_it",
    "tests/pruning/test_qat.py::test_a_job_asked_for_quantization_aware_int8_says_which_file_ships",
    "tests/pruning/test_qat.py::test_auto_runs_quantization_aware_finetuning_only_when_post_training_int8_breaks_the_guard",
    "tests/pruning/test_estimate.py::test_host_estimate_within_a_loose_factor_of_measurement",
}
# Modules whose every test runs a whole service (`shears serve`, or the deployments by parameter).
SERVICE_MODULES = {"tests/e2e/test_end_to_end.py", "tests/cli/test_serve.py"}
STARTS_A_SERVICE = re.compile(r"\bService\(|\bshared_services\(|\bwebdriver\.Chrome\(|\brunning_service\(")


@cache
def _source(func: Callable[..., Any]) -> str:
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        return ""


def _starts_a_service(item: pytest.Function) -> bool:
    funcs = [item.function]
    funcs += [d.func for defs in item._fixtureinfo.name2fixturedefs.values() for d in defs]
    module = vars(inspect.getmodule(item.function) or object())
    for func in list(funcs):  # one level of module helpers the test or its fixtures call
        code = getattr(func, "__code__", None)
        funcs += [module[n] for n in (code.co_names if code else ()) if callable(module.get(n))]
    return any(STARTS_A_SERVICE.search(_source(f)) for f in funcs)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "service: starts subprocess services; `make test-fast` leaves it out")
    config.addinivalue_line("markers", "slow: a long engine run; `make test-fast` leaves it out")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = Path(str(item.fspath)).relative_to(Path(__file__).parent.parent).as_posix()
        if isinstance(item, pytest.Function) and (module in SERVICE_MODULES or _starts_a_service(item)):
            item.add_marker(pytest.mark.service)
        if item.nodeid.split("[", 1)[0] in SLOW:
            item.add_marker(pytest.mark.slow)


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
    return embedded.cli("keys", "create", "--tenant", "tenant-a")  # the command itself, once
