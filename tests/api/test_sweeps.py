"""`kind: "sweep"`: one spec, several prune jobs on any workers, one Pareto set with the dense baseline."""

from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from contract.report import AnyReport, Report, SweepReport
from shears_client import report as typed
from tests.services import Service, upload_model, wait_for_job

FAST = {"finetune": {"epochs": 1}}


def test_a_sweep_runs_its_points_as_jobs_and_returns_the_pareto_set(
    embedded: Service, key: str, digits_model: Path
) -> None:
    with embedded.client(key) as client:
        model = upload_model(client, digits_model)
        submitted = client.post(
            "/v1/jobs",
            json={
                "model_id": model,
                "dataset_id": "builtin:digits",
                "kind": "sweep",
                "granularity": "channel",
                "sweep": {"sparsities": [0.25, 0.75], "device": "cortex-a53-1200mhz", "budget_ms": 1e6},
                "devices": ["host"],
                **FAST,
            },
        )
        assert submitted.status_code == 202, submitted.text
        sweep = submitted.json()
        assert sweep["kind"] == "sweep"
        assert sweep["status"] == "running"

        points = client.get("/v1/jobs", params={"parent_id": sweep["id"]}).json()["items"]
        assert sorted(p["spec"]["target"]["sparsity"] for p in points) == [0.25, 0.75]
        assert all(p["kind"] == "prune" and p["parent_id"] == sweep["id"] for p in points)
        # The sweep's device is profiled by every point, beside the ones the spec names.
        assert all(p["spec"]["devices"] == ["host", "cortex-a53-1200mhz"] for p in points)

        done = wait_for_job(client, sweep["id"], timeout=600)
        assert done["status"] == "succeeded", done
        assert done["progress"] == 1.0
        result = done["result"]
        assert result["succeeded"] == 2
        assert len(result["points"]) == 2
        for point in result["points"]:
            job = client.get(f"/v1/jobs/{point['job_id']}").json()
            assert job["status"] == "succeeded"
            assert point["accuracy"] == job["result"]["accuracy"]["after"]
            assert point["size_bytes"] == job["result"]["size"]["tflite_gzip_bytes"]
            assert set(point["latency_ms"]) == {"host", "cortex-a53-1200mhz"}
        baseline = result["baseline"]
        assert baseline["is_baseline"]
        assert baseline["size_bytes"] > max(p["size_bytes"] for p in result["points"])

        # The Pareto set per device: no point in it is beaten on accuracy, latency and size at once.
        for device, front in result["pareto"].items():
            assert front, device
            candidates = {p["job_id"]: p for p in result["points"]} | {"dense": baseline}
            for name in front:
                me = candidates[name]
                for other in candidates.values():
                    assert not (
                        other["accuracy"] >= me["accuracy"]
                        and other["latency_ms"][device] <= me["latency_ms"][device]
                        and other["size_bytes"] <= me["size_bytes"]
                        and (other["accuracy"], other["latency_ms"][device], other["size_bytes"])
                        != (me["accuracy"], me["latency_ms"][device], me["size_bytes"])
                    )
        # A budget every point meets: the best of them is the most accurate.
        best = max(result["points"], key=lambda p: p["accuracy"])
        assert result["budget"]["best_job_id"] == best["job_id"]
        assert len(result["budget"]["met_by"]) == 2

        report = client.get(f"/v1/jobs/{sweep['id']}/report")
        assert report.status_code == 200
        assert report.json()["pareto"] == result["pareto"]
        _holds_the_contract(report.json(), client.get(f"/v1/jobs/{result['points'][0]['job_id']}/report").json())
        plot = client.get(f"/v1/jobs/{sweep['id']}/artifacts/tradeoff-cortex-a53-1200mhz.png")
        assert plot.status_code == 200, plot.text
        assert plot.content.startswith(b"\x89PNG\r\n\x1a\n")


def _holds_the_contract(raw: dict[str, Any], point_report: dict[str, Any]) -> None:
    """A live sweep's report is the published `SweepReport` (its point's a `Report`), and every field of the
    client's typed records is one the server writes."""
    reports: TypeAdapter[Any] = TypeAdapter(AnyReport)
    checked = reports.validate_python(raw)
    assert isinstance(checked, SweepReport)
    assert checked.artifacts == ["report.json", *(f"tradeoff-{device}.png" for device in raw["pareto"])]
    assert isinstance(reports.validate_python(point_report), Report)
    sweep = typed.typed_report(raw)
    assert isinstance(sweep, typed.SweepReport)
    assert set(sweep.fields()) <= set(raw), set(sweep.fields()) - set(raw)
    for record, entries in (
        (typed.SweepPoint, raw["points"]),
        (typed.SweepBaseline, [raw["baseline"]]),
        (typed.SweepBudget, [raw["budget"]]),
    ):
        assert all(set(record.fields()) <= set(entry) for entry in entries), record
    assert {p.job_id for p in sweep.front("host")} <= {p["job_id"] for p in raw["points"]} | {None}


def test_cancelling_a_sweep_cancels_its_points(embedded: Service, digits_model: Path) -> None:
    with embedded.client(embedded.new_key()) as client:
        model = upload_model(client, digits_model)
        # Workers held still from submit to cancel: the points are queued when cancelled, so they are
        # cancelled at once (before, a point could start, costing an engine start, and race the cancel).
        with embedded.workers_paused():
            sweep = client.post(
                "/v1/jobs",
                json={
                    "model_id": model,
                    "dataset_id": "builtin:digits",
                    "kind": "sweep",
                    "sweep": {"sparsities": [0.3, 0.6]},
                    **FAST,
                },
            ).json()
            assert client.post(f"/v1/jobs/{sweep['id']}/cancel").status_code == 200
        done = wait_for_job(client, sweep["id"], timeout=300)
        assert done["status"] == "cancelled", done
        points = client.get("/v1/jobs", params={"parent_id": sweep["id"]}).json()["items"]
        assert {p["status"] for p in points} <= {"cancelled", "succeeded"}
        assert all(p["status"] == "cancelled" or p["cancel_requested"] is False for p in points)


def test_bad_sweeps_are_422(embedded: Service, key: str, digits_model: Path) -> None:
    with embedded.client(key) as client:
        model = upload_model(client, digits_model)
        base = {"model_id": model, "dataset_id": "builtin:digits", "kind": "sweep"}
        cases = [
            ({}, "invalid_spec"),
            ({"sweep": {"sparsities": [0.5]}, "target": {"sparsity": 0.5}}, "invalid_spec"),
            ({"sweep": {"sparsities": [0.5, 1.5]}}, "invalid_request"),
            ({"sweep": {"sparsities": [0.5, 0.5]}}, "invalid_request"),
            ({"sweep": {"sparsities": [0.5], "latency_ms": [3.0]}}, "invalid_request"),
            ({"sweep": {"latency_ms": [3.0]}}, "invalid_request"),
            ({"sweep": {"sparsities": [0.5]}, "granularity": "n_of_m"}, "invalid_spec"),
            ({"sweep": {"sparsities": [0.5], "device": "toaster"}}, "unknown_device"),
        ]
        for extra, code in cases:
            response = client.post("/v1/jobs", json={**base, **extra})
            assert response.status_code == 422, (extra, response.text)
            assert response.json()["error"]["code"] == code, (extra, response.text)
        prune_with_sweep = client.post(
            "/v1/jobs", json={**base, "kind": "prune", "target": {"sparsity": 0.5}, "sweep": {"sparsities": [0.5]}}
        )
        assert prune_with_sweep.status_code == 422


def test_a_sweep_of_latency_budgets_runs_the_search_for_each(embedded: Service, key: str, digits_model: Path) -> None:
    device = "cortex-a53-1200mhz"
    with embedded.client(key) as client:
        model = upload_model(client, digits_model)
        profile = client.post("/v1/jobs", json={"model_id": model, "kind": "profile", "devices": [device]})
        dense_ms = wait_for_job(client, profile.json()["id"])["result"]["latency"][0]["estimate_ms"]
        budgets = [round(dense_ms * 0.8, 4), round(dense_ms * 0.6, 4)]
        sweep = client.post(
            "/v1/jobs",
            json={
                "model_id": model,
                "dataset_id": "builtin:digits",
                "kind": "sweep",
                "granularity": "channel",
                "sweep": {"latency_ms": budgets, "device": device, "budget_ms": budgets[0]},
                **FAST,
            },
        )
        assert sweep.status_code == 202, sweep.text
        done = wait_for_job(client, sweep.json()["id"], timeout=600)
        assert done["status"] == "succeeded", done
        for point in done["result"]["points"]:
            budget = point["target"]["latency_ms"]
            assert point["target"]["device"] == device
            report = client.get(f"/v1/jobs/{point['job_id']}/report").json()
            assert report["latency_search"]["budget_ms"] == budget
            # The search met each budget on the exported model, as the point's own figures show.
            assert report["latency_search"]["met"] is True
            assert point["latency_ms"][device] <= budget
        assert done["result"]["budget"]["met_by"]  # both points are within the looser budget
