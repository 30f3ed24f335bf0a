"""The client's parts that need no server: budgets, summaries, durations, retries, errors, and its
typed views and flags checked against the published API (docs/openapi.json)."""

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shears_client import budgets, errors, http
from shears_client.submit import Duration

# The parts that need no server -------------------------------------------------------------

REPORT = {
    "accuracy": {"before": 0.97, "after": 0.95, "metric": "accuracy"},
    "size": {"tflite_bytes": 20480},
    "latency": [{"device": "host", "measured_ms": 0.5}, {"device": "phone", "measured_ms": 9.0, "estimate_ms": 3.0}],
}


def test_budgets() -> None:
    assert budgets.check_budgets(REPORT, max_latency_ms=1, max_size_kb=20, max_accuracy_drop=0.02) == []
    (miss,) = budgets.check_budgets(REPORT, max_latency_ms=0.25)
    assert miss == "latency on host: 0.5 ms (measured), budget 0.25 ms, over by 0.25 ms"
    assert budgets.check_budgets(REPORT, max_latency_ms=4, devices=["phone"]) == []  # the estimate counts
    (absent,) = budgets.check_budgets(REPORT, max_latency_ms=4, devices=["cortex-a53-1200mhz"])
    assert "cortex-a53-1200mhz" in absent
    assert "no figure" in absent
    assert "host, phone" in absent
    (size,) = budgets.check_budgets(REPORT, max_size_kb=15)
    assert size == "size: 20.0 KB (20480 bytes), budget 15 KB, over by 5.0 KB"
    (drop,) = budgets.check_budgets(REPORT, max_accuracy_drop=0.01)
    assert drop.startswith("accuracy drop (accuracy): 0.02 (0.97 -> 0.95), budget 0.01, over by 0.01")
    mae = {"accuracy": {"before": 1.0, "after": 1.5, "metric": "mae"}}
    (worse,) = budgets.check_budgets(mae, max_accuracy_drop=0.2)
    assert worse.startswith("error increase (mae): 0.5")
    assert (
        budgets.check_budgets({"accuracy": {"before": 1.5, "after": 1.0, "metric": "mae"}}, max_accuracy_drop=0) == []
    )


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("1.5m", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m", "1h30", "0s"])
def test_bad_durations(text: str) -> None:
    import click

    with pytest.raises(click.BadParameter):
        Duration().convert(text, None, None)


def _api(handler: Any, sleeps: list[float]) -> http.Api:
    return http.Api("http://shears.test", "k", transport=httpx.MockTransport(handler), sleep=sleeps.append)


def test_retries_with_backoff_and_retry_after_and_one_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503, headers={"Retry-After": "7"})
        if len(seen) == 3:
            return httpx.Response(502)
        return httpx.Response(202, json={"id": "job_1"})

    sleeps: list[float] = []
    assert _api(handler, sleeps).post_json("/v1/jobs", {"a": 1}) == {"id": "job_1"}
    assert sleeps == [0.5, 7.0, 2.0]
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1
    assert all(r.headers["Authorization"] == "Bearer k" for r in seen)


def test_gives_up_after_five_tries_and_never_retries_a_4xx() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(errors.ServerUnavailable) as unreachable:
        _api(down, sleeps).get_json("/v1/jobs/x")
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert unreachable.value.exit_code == errors.EXIT_UNREACHABLE

    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(409, json={"error": {"code": "job_finished", "message": "job x has already succeeded"}})

    with pytest.raises(errors.Refused) as refused:
        _api(refuse, []).post_json("/v1/jobs/x/cancel")
    assert calls == [1]
    assert refused.value.exit_code == 1
    assert refused.value.message == "POST /v1/jobs/x/cancel: HTTP 409 job_finished: job x has already succeeded"


def test_a_download_is_checked_against_its_sha256(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"abc", headers={"X-Content-SHA256": "0" * 64})

    with pytest.raises(errors.ServerUnavailable, match="sha256"):
        _api(handler, []).download("/v1/jobs/x/model.tflite", tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


# Checked against the published API ---------------------------------------------------------

OPENAPI = json.loads((Path(__file__).resolve().parents[2] / "docs" / "openapi.json").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]


# The client's typed records (shears_client.report) and the published schemas they read.
TYPED = {
    "JobRecord": "JobOut", "JobError": "JobError", "Usage": "Usage", "Limits": "Limits",
    "Report": "Report", "Baseline": "Baseline", "Accuracy": "Accuracy", "Params": "Params", "Before": "Macs",
    "Sparsity": "Sparsity", "Size": "Size", "DeviceFigures": "DeviceFigures",
    "SweepReport": "SweepReport", "SweepPoint": "SweepPoint", "SweepBaseline": "SweepBaseline",
    "SweepFailure": "SweepFailure", "SweepBudget": "SweepBudget", "Resources": "Resources",
    "Quantization": "Quantization", "QuantizedFile": "QuantizedFile",
}  # fmt: skip


@pytest.mark.parametrize(("typed", "schema"), TYPED.items())
def test_the_typed_records_have_the_fields_of_the_published_schemas(typed: str, schema: str) -> None:
    from shears_client import report

    kind = getattr(report, typed)
    assert sorted(kind.fields()) == sorted(SCHEMAS[schema]["properties"])
    for name, nested in kind.nested.items():  # a nested record reads the schema the field refers to
        prop = SCHEMAS[schema]["properties"][name]
        refs = [s["$ref"] for s in [prop, prop.get("items", {}), *prop.get("anyOf", [])] if "$ref" in s]
        assert refs == [f"#/components/schemas/{TYPED[nested.__name__]}"], (typed, name)


def test_the_report_route_publishes_a_report_or_a_sweep_report_and_the_client_reads_either() -> None:
    from shears_client import report

    answer = OPENAPI["paths"]["/v1/jobs/{job_id}/report"]["get"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["oneOf"] == [
        {"$ref": "#/components/schemas/Report"},
        {"$ref": "#/components/schemas/SweepReport"},
    ]
    assert SCHEMAS["SweepReport"]["properties"]["kind"]["const"] == "sweep"  # what tells one from the other
    assert isinstance(report.typed_report(REPORT), report.Report)
    point = {"job_id": "job_a", "label": "0.5", "accuracy": 0.9, "latency_ms": {"host": 1.0}, "size_bytes": 10}
    dense = {"job_id": None, "label": "dense", "accuracy": 0.95, "latency_ms": {"host": 2.0}, "size_bytes": 30}
    sweep = report.typed_report(
        {"kind": "sweep", "points": [point], "baseline": dense, "pareto": {"host": ["job_a", "dense"]}, "new": 1}
    )
    assert isinstance(sweep, report.SweepReport)
    assert sweep.points is not None
    assert isinstance(sweep.points[0], report.SweepPoint)
    assert [p.label for p in sweep.front("host")] == ["0.5", "dense"]
    # the SDK: `report` stays a Report (what prune and profile jobs return), a sweep's is `sweep_report`
    from shears_client.sdk import Job

    job = Job(client=None, data={"id": "job_s"}, _report={"kind": "sweep", "points": [point], "baseline": dense})  # type: ignore[arg-type]
    assert isinstance(job.sweep_report, report.SweepReport)
    assert isinstance(Job(client=None, data={"id": "job_p"}, _report=REPORT).report, report.Report)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a sweep"):
        Job(client=None, data={"id": "job_p"}, _report=REPORT).sweep_report  # type: ignore[arg-type]  # noqa: B018
    assert sweep.front("phone") == []
    assert sweep.extra == {"new": 1}


def test_every_field_of_the_job_spec_has_a_submit_flag() -> None:
    from shears_client.submit import SPEC_FLAGS, submit

    fields = set()
    for name, prop in SCHEMAS["JobSpec"]["properties"].items():
        refs = [s["$ref"] for s in [prop, *prop.get("anyOf", [])] if "$ref" in s]
        if refs:  # an object: each of its fields has its flag
            fields |= {f"{name}.{part}" for part in SCHEMAS[refs[0].rsplit("/", 1)[1]]["properties"]}
        else:
            fields.add(name)
    assert set(SPEC_FLAGS) == fields
    declared = {opt for param in submit.params for opt in param.opts + param.secondary_opts}
    assert set(SPEC_FLAGS.values()) <= declared


def test_flags_build_the_spec() -> None:
    from shears_client.submit import build_spec

    flags: dict[str, Any] = {
        "latency_ms": 20.0, "target_device": "cortex-a53-1200mhz", "scope": "global", "block": 4,
        "quantization": "int8", "devices": ("host", "cortex-m4f-120mhz"), "callback_url": "https://ci.example/hook",
        "n_of_m": "2:4", "control": True, "augment": '{"flip": true}', "epochs": 2, "steps": 3,
        "schedule": "polynomial", "sweep_sparsity": (), "seed": None,
    }  # fmt: skip
    spec = build_spec({"method": "gradient", "finetune": {"batch_size": 8}}, flags)
    assert spec == {
        "method": "gradient",
        "target": {"latency_ms": 20.0, "device": "cortex-a53-1200mhz"},
        "scope": "global",
        "block": 4,
        "quantization": "int8",
        "devices": ["host", "cortex-m4f-120mhz"],
        "callback_url": "https://ci.example/hook",
        "n_of_m": {"n": 2, "m": 4},
        "schedule": {"kind": "polynomial", "steps": 3},
        "finetune": {"batch_size": 8, "epochs": 2, "control": True, "augment": {"flip": True}},
    }
    # Without --target-device the latency target is on the first --device.
    assert (
        build_spec({}, {"latency_ms": 5.0, "devices": ("cortex-m4f-120mhz",)})["target"]["device"]
        == "cortex-m4f-120mhz"
    )
    sweep = build_spec({}, {"sweep_sparsity": (0.3, 0.6)})
    assert sweep == {"kind": "sweep", "sweep": {"sparsities": [0.3, 0.6]}}


# Summaries for CI --------------------------------------------------------------------------

FULL = {
    "accuracy": {"before": 0.97, "after": 0.95, "metric": "accuracy", "split": "val"},
    "size": {"tflite_bytes": 20480, "tflite_gzip_bytes": 10240},
    "latency": [
        {"device": "cortex-m4f-120mhz", "estimate_ms": 12.0, "low_ms": 9.0, "high_ms": 16.0, "ram_bytes": 4096,
         "fits": True, "energy_mj": 0.5, "energy_low_mj": 0.4, "energy_high_mj": 0.7},
    ],
    "baseline": {"size": {"tflite_bytes": 40960}, "latency": [{"device": "cortex-m4f-120mhz", "estimate_ms": 20.0}]},
}  # fmt: skip


def test_the_summary_has_accuracy_size_and_each_device_with_its_band_and_energy() -> None:
    text = budgets.summary({"id": "job_1"}, FULL, Path("m.tflite"), None)
    assert "accuracy   0.9700 -> 0.9500 (val split)" in text
    assert "size       20.0 KB .tflite (10.0 KB gzipped), dense 40.0 KB" in text
    assert (
        "latency    cortex-m4f-120mhz: 12 ms estimated (9-16); dense 20 ms; RAM 4.0 KiB, fits; 0.5 mJ (0.4-0.7)" in text
    )
    assert len(text.splitlines()) <= 24  # one screen


def test_markdown_and_junit() -> None:
    checks = budgets.budget_checks(FULL, max_latency_ms=10, devices=["cortex-m4f-120mhz"], max_size_kb=64)
    misses = [m for _, m in checks if m]
    md = budgets.markdown("job_1", "succeeded", FULL, misses)
    assert md.startswith("### Shears job `job_1`: succeeded, budgets failed")
    assert "| cortex-m4f-120mhz | 12 ms estimated (9-16) | 20 ms | RAM 4.0 KiB, fits | 0.5 mJ (0.4-0.7) |" in md
    assert "- latency on cortex-m4f-120mhz: 12 ms (estimated), budget 10 ms, over by 2 ms" in md

    import xml.etree.ElementTree as ET

    suite = ET.fromstring(budgets.junit("job_1", "succeeded", checks)).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("3", "1")
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["latency on cortex-m4f-120mhz <= 10 ms"]
    failed_job = ET.fromstring(budgets.junit("job_2", "failed", [], "job job_2 failed: data_mismatch: 4 != 10"))
    assert "data_mismatch" in ET.tostring(failed_job, encoding="unicode")


# Errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (401, "unauthorized", errors.AuthenticationError),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (429, "quota_exceeded", errors.QuotaExceeded),
        (426, "client_too_old", errors.ClientTooOld),
        (404, "not_found", errors.NotFound),
        (409, "job_finished", errors.Conflict),
        (422, "invalid_spec", errors.InvalidRequest),
        (418, "teapot", errors.Refused),
        (500, None, errors.ServerUnavailable),
    ],
)
def test_each_answer_has_its_class_exit_code_and_fix(status: int, code: str | None, kind: type) -> None:
    body = {"error": {"code": code, "message": "m"}} if code else None

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"Retry-After": "30"})

    with pytest.raises(errors.ShearsError) as raised:
        http.Api("http://shears.test", "k", tries=1, transport=httpx.MockTransport(handler)).get_json("/v1/x")
    assert type(raised.value) is kind
    assert raised.value.exit_code == (6 if status >= 500 else 1)
    line = raised.value.one_line()
    assert "\n" not in line
    assert f"HTTP {status}" in line
    if kind is not errors.Refused:
        assert " -> " in line  # the fix
    if status == 429:
        assert "in 30 s" in line


@pytest.mark.parametrize("url", ["shears.example.com", "ftp://shears.example.com", "http://"])
def test_a_url_that_is_not_http_fails_at_once(url: str) -> None:
    with pytest.raises(errors.ShearsError, match="SHEARS_URL") as raised:
        http.Api(url, "k")
    assert "https://shears.example.com" in raised.value.one_line()
