"""Workers on several hosts: two workers with data folders of their own, sharing only the broker,
the database and the S3 store, run the points of one sweep between them."""

import re
from pathlib import Path

from sqlalchemy import create_engine, select

from app.tables import Job
from tests.services import Service, shared_services, upload_model, wait_for_job


def _files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_two_workers_with_nothing_shared_but_broker_database_and_store(tmp_path: Path, digits_model: Path) -> None:
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    host_a.mkdir()
    host_b.mkdir()
    with shared_services() as shared:
        # Host A runs the API and a worker; host B only a worker, with its own data folder.
        service = Service(host_a, shared).start()
        try:
            logs = [host_a / "worker1.log", service.start_worker(env={"SHEARS_DATA_DIR": str(host_b)})]
            with service.client(service.new_key()) as client:
                model = upload_model(client, digits_model)
                sweep = client.post(
                    "/v1/jobs",
                    json={
                        "model_id": model,
                        "dataset_id": "builtin:digits",
                        "kind": "sweep",
                        "sweep": {"sparsities": [0.2, 0.4, 0.6, 0.8]},
                        "finetune": {"epochs": 1},
                    },
                )
                assert sweep.status_code == 202, sweep.text
                done = wait_for_job(client, sweep.json()["id"], timeout=600)
                assert done["status"] == "succeeded", done
                assert done["result"]["succeeded"] == 4
                point = done["result"]["points"][0]["job_id"]
                assert client.get(f"/v1/jobs/{point}/model.tflite").status_code == 200
                assert client.get(f"/v1/jobs/{done['id']}/report").status_code == 200

            engine = create_engine(shared["SHEARS_DATABASE_URL"])
            with engine.connect() as conn:
                points = set(conn.execute(select(Job.id).where(Job.parent_id == done["id"])).scalars())
            engine.dispose()
        finally:
            service.stop()

    # Both workers ran points: each worker's log lines carry the ids of the jobs it ran.
    ran = [set(re.findall(r"job_id=(job_[0-9A-Za-z]+)", log.read_text())) & points for log in logs]
    assert all(ran), ran
    assert ran[0] | ran[1] == points, ran
    assert not ran[0] & ran[1], ran
    # Nothing was kept on either host's disk: every file is in the S3 store.
    for host in (host_a, host_b):
        assert _files_under(host / "artifacts") == [], host
