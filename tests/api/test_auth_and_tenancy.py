"""Keys and tenants: every request needs a key, and nobody sees another tenant's things."""

from pathlib import Path

import httpx

from tests.services import Service


def _assert_error(response: httpx.Response, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code


def test_missing_and_wrong_keys_are_401(embedded: Service) -> None:
    with embedded.client() as anonymous:
        _assert_error(anonymous.get("/v1/jobs"), 401, "unauthorized")
        assert anonymous.get("/v1/jobs").headers["www-authenticate"] == "Bearer"
        _assert_error(anonymous.get("/v1/jobs", headers={"Authorization": "Bearer shears_nope"}), 401)
        _assert_error(anonymous.get("/v1/jobs", headers={"Authorization": "Basic abc"}), 401)


def test_keys_are_stored_only_as_hashes(embedded: Service, key: str) -> None:
    import sqlite3

    with sqlite3.connect(embedded.root / "shears.db") as db:
        stored = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    assert stored
    assert key not in stored
    assert all(len(h) == 64 for h in stored)


def test_another_tenants_ids_answer_404(embedded: Service, key: str, digits_model: Path) -> None:
    with embedded.client(key) as a:
        with digits_model.open("rb") as f:
            model = a.post("/v1/models", files={"file": ("m.keras", f)}).json()
        job = a.post(
            "/v1/jobs",
            json={
                "model_id": model["id"],
                "dataset_id": "builtin:digits",
                "target": {"sparsity": 0.3},
                "finetune": {"epochs": 0},
            },
        ).json()
    with embedded.client(embedded.new_key("tenant-b")) as b:
        _assert_error(b.get(f"/v1/models/{model['id']}"), 404, "not_found")
        _assert_error(b.get(f"/v1/jobs/{job['id']}"), 404)
        _assert_error(b.get(f"/v1/jobs/{job['id']}/model.tflite"), 404)
        _assert_error(b.post(f"/v1/jobs/{job['id']}/cancel"), 404)
        _assert_error(
            b.post(
                "/v1/jobs", json={"model_id": model["id"], "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}}
            ),
            404,
        )
        assert b.get("/v1/jobs").json()["items"] == []
        assert b.get("/v1/models").json()["items"] == []


def test_health_readiness_and_metrics(embedded: Service) -> None:
    with embedded.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok", "worker": "ok"}
        assert "shears_http_requests_total" in c.get("/metrics").text
        _assert_error(c.get("/no/such/route"), 404)


def test_revoked_and_unknown_keys_get_the_same_401(embedded: Service) -> None:
    key = embedded.new_key()
    with embedded.client(key) as c:
        assert c.get("/v1/jobs").status_code == 200
    assert embedded.cli("keys", "revoke", key) == "revoked 1 key(s)"
    with embedded.client(key) as revoked, embedded.client(key[:-4] + "abcd") as unknown:
        a, b = revoked.get("/v1/jobs"), unknown.get("/v1/jobs")
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


def test_every_route_refuses_another_tenants_ids(embedded: Service, key: str, digits_model: Path) -> None:
    """Walk the OpenAPI document: every route with an id answers 404 to a stranger."""
    import numpy as np

    from tests.services import wait_for_job

    with embedded.client(key) as a:
        with digits_model.open("rb") as f:
            model = a.post("/v1/models", files={"file": ("m.keras", f)}).json()
        buffer = __import__("io").BytesIO()
        x, y = np.zeros((4, 8, 8, 1), np.float32), np.arange(4)
        np.savez(buffer, x_train=x, y_train=y, x_val=x, y_val=y)
        dataset = a.post("/v1/datasets", files={"file": ("d.npz", buffer.getvalue())}).json()
        job = a.post(
            "/v1/jobs",
            json={
                "model_id": model["id"],
                "dataset_id": "builtin:digits",
                "target": {"sparsity": 0.2},
                "finetune": {"epochs": 0},
            },
        ).json()
        wait_for_job(a, job["id"])
        paths = a.get("/openapi.json").json()["paths"]
        own = a.get(f"/v1/jobs/{job['id']}/model.tflite")
        assert own.status_code == 200
        assert "attachment" in own.headers["content-disposition"]
    ids = {"model_id": model["id"], "dataset_id": dataset["id"], "job_id": job["id"], "name": "model.tflite"}
    checked = 0
    with embedded.client(embedded.new_key()) as stranger:
        for route, methods in paths.items():
            params = [name for name in ids if "{" + name + "}" in route]
            if not params:
                continue
            url = route.format(**ids)
            for method in methods:
                response = stranger.request(method.upper(), url)
                assert response.status_code == 404, (method, route, response.text)
                checked += 1
    assert checked >= 9  # every GET and POST on a model, dataset or job id
