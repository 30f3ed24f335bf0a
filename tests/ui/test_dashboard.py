"""The dashboard in a real browser: headless Chromium (Debian's package) driven by Selenium,
against a running API and worker, with a real prune job."""

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import REQUIRE_SERVICES, Service, ui_session, upload_model, wait_for_job

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("SHEARS_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "test-artifacts")
DEVICES = ["host", "cortex-a53-1200mhz"]
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium with an empty profile."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        message = f"headless Chromium needs {' and '.join(missing)} (apt-get install chromium chromium-driver)"
        if REQUIRE_SERVICES:
            pytest.fail(message + "; SHEARS_TEST_REQUIRE_SERVICES=1 so this is a failure")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=DriverService(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(condition: Any, timeout: float = 30, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"condition not met in {timeout} s")


def _log_in(driver: Any, key: str) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.ID, "key")
    field.clear()
    field.send_keys(key)
    field.submit()


# What the page must show: the report's figures, written as a person reads them -----------


def _resolve(report: dict[str, Any], field: str) -> Any:
    """The report value a `data-field` names; list entries go by their device, layer, step or job id."""
    node: Any = report
    parts = field.split(".")
    while parts:
        if isinstance(node, list):
            for k in range(len(parts), 0, -1):
                name = ".".join(parts[:k])
                found = [e for e in node if name in (str(e.get(i)) for i in ("device", "layer", "step", "job_id"))]
                if found:
                    node, parts = found[0], parts[k:]
                    break
            else:
                raise KeyError(f"{field}: no entry {parts[0]!r}")
        else:
            node, parts = node[parts[0]], parts[1:]
    return node


def _is_fraction(field: str) -> bool:
    parts = field.split(".")
    first, last = parts[0], parts[-1]
    return (
        first == "accuracy"
        or field == "guard.max_drop"
        or (first == "sparsity" and last in ("target", "reached", "overall", "sparsity"))
        or (first == "schedule" and last in ("sparsity", "accuracy", "drop"))
        or (first in ("points", "baseline") and last == "accuracy")
    )


def _shown(field: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if _is_fraction(field):
        return f"{value * 100:.2f} %"
    if any(part.endswith(("_ms", "_mj")) for part in field.split(".")):
        return f"{value:.3f}" if value >= 1 else f"{value:.3g}"
    if field.endswith(".inferences_per_mah"):
        return f"{round(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _prune_fields(report: dict[str, Any]) -> set[str]:
    fields = {f"accuracy.{k}" for k in ("before", "after", "tflite_after")}
    fields |= {"params.after", "params.nonzero", "baseline.params", "macs.after", "baseline.macs"}
    fields |= {f"{p}size.{k}" for p in ("", "baseline.") for k in ("keras_bytes", "tflite_bytes", "tflite_gzip_bytes")}
    fields |= {"sparsity.overall", "guard.met", "guard.max_drop"}
    fields |= {f"sparsity.per_layer.{layer['layer']}.nonzero" for layer in report["sparsity"]["per_layer"]}
    fields |= {f"schedule.rounds.{r['step']}.sparsity" for r in report["schedule"]["rounds"]}
    figures = ("estimate_ms", "low_ms", "high_ms", "measured_ms", "ram_bytes", "flash_bytes", "fits", "basis")
    figures += ("energy_mj", "energy_low_mj", "energy_high_mj", "inferences_per_mah")
    fields |= {f"{p}latency.{d}.{k}" for p in ("", "baseline.") for d in DEVICES for k in figures}
    return fields


def _sweep_fields(report: dict[str, Any]) -> set[str]:
    rows = [f"points.{p['job_id']}" for p in report["points"]] + ["baseline"]
    return {f"{row}.{k}" for row in rows for k in ("accuracy", "size_bytes")} | {
        f"{row}.latency_ms.{d}" for row in rows for d in DEVICES
    }


def _check_figures(browser: Any, report: dict[str, Any], required: set[str]) -> None:
    """Every `data-field` on the page shows its report value, formatted; none of `required` is missing."""
    from selenium.webdriver.common.by import By

    shown = {
        cell.get_attribute("data-field"): cell.get_attribute("textContent").strip()
        for cell in browser.find_elements(By.CSS_SELECTOR, "[data-field]")
    }
    missing = required - set(shown)
    assert not missing, f"the page lacks {sorted(missing)}"
    expected = {field: _shown(field, _resolve(report, field)) for field in shown}
    wrong = {field: (text, expected[field]) for field, text in shown.items() if text != expected[field]}
    assert not wrong, f"shown vs report: {wrong}"


def _check_plots(browser: Any, api: httpx.Client, job_id: str) -> set[str]:
    """Every image the job has is on its page, and has loaded. Returns their names."""
    from selenium.webdriver.common.by import By

    listed = api.get(f"/v1/jobs/{job_id}/artifacts").json()["items"]
    plots = {img.get_attribute("data-plot"): img for img in browser.find_elements(By.CSS_SELECTOR, "img[data-plot]")}
    assert set(plots) == {a["name"] for a in listed if a["media_type"].startswith("image/")}
    for name, img in plots.items():
        assert _wait(lambda img=img: browser.execute_script("return arguments[0].complete", img)), name
        assert browser.execute_script("return arguments[0].naturalWidth", img) > 0, name
    return set(plots)


def _screenshot(browser: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(int(height) + 120, 12000))
    assert browser.save_screenshot(str(ARTIFACTS / name))
    browser.set_window_size(1400, 1000)


# Tests ----------------------------------------------------------------------------------


def test_log_in_follow_a_sweep_live_and_read_its_reports(
    browser: Any, embedded: Service, key: str, digits_model: Path
) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{embedded.url}/ui")
    assert browser.current_url == f"{embedded.url}/ui/login"

    with embedded.client(key) as api:
        spec = {
            "model_id": upload_model(api, digits_model),
            "dataset_id": "builtin:digits",
            "kind": "sweep",
            "sweep": {"sparsities": [0.5, 0.8], "device": DEVICES[1]},
            "schedule": {"kind": "polynomial", "steps": 2},
            "max_accuracy_drop": 0.05,
            "devices": DEVICES[:1],
        }
        submitted = api.post("/v1/jobs", json=spec)
        assert submitted.status_code == 202, submitted.text
        sweep_id = submitted.json()["id"]
        point_ids = [p["id"] for p in api.get("/v1/jobs", params={"parent_id": sweep_id}).json()["items"]]
        assert len(point_ids) == 2

        _log_in(browser, key)
        _wait(lambda: browser.current_url == f"{embedded.url}/ui/jobs")
        rows = {i: browser.find_element(By.CSS_SELECTOR, f'tr[data-job="{i}"]') for i in [sweep_id, *point_ids]}
        # The worker needs seconds to load TensorFlow: the page opens on unfinished jobs and must
        # follow them to the end without being reloaded.
        statuses = {i: row.get_attribute("data-status") for i, row in rows.items()}
        assert all(status in ("queued", "running") for status in statuses.values()), statuses
        browser.execute_script("window.notReloaded = true")
        for row in rows.values():
            _wait(lambda row=row: row.get_attribute("data-status") in FINISHED, timeout=600, every=0.5)
        assert browser.execute_script("return window.notReloaded") is True
        for row in rows.values():
            assert row.find_element(By.CSS_SELECTOR, "[data-live=status]").text == "succeeded"
            assert row.find_element(By.CSS_SELECTOR, "[data-live=percent]").text == "100 %"
            assert browser.execute_script("return arguments[0].value", row.find_element(By.TAG_NAME, "progress")) == 1

        assert wait_for_job(api, sweep_id, timeout=30)["status"] == "succeeded"
        sweep_report = api.get(f"/v1/jobs/{sweep_id}/report").json()
        point_id = point_ids[0]
        report = api.get(f"/v1/jobs/{point_id}/report").json()
        report_bytes = api.get(f"/v1/jobs/{point_id}/report").content

        # The sweep: its points and the dense baseline, with the trade-off plots.
        rows[sweep_id].find_element(By.LINK_TEXT, sweep_id).click()
        _wait(lambda: browser.current_url == f"{embedded.url}/ui/jobs/{sweep_id}")
        _check_figures(browser, sweep_report, _sweep_fields(sweep_report))
        assert _check_plots(browser, api, sweep_id)
        _screenshot(browser, "ui-sweep.png")

        # One point: every figure of its report.
        browser.find_element(By.CSS_SELECTOR, f'a[data-point="{point_id}"]').click()
        _wait(lambda: browser.current_url == f"{embedded.url}/ui/jobs/{point_id}")
        _check_figures(browser, report, _prune_fields(report))
        for layer in report["sparsity"]["per_layer"]:
            derived = f'[data-derived="sparsity.per_layer.{layer["layer"]}.sparsity"]'
            cell = browser.find_element(By.CSS_SELECTOR, derived)
            expected = "—" if not layer["params"] else f"{(1 - layer['nonzero'] / layer['params']) * 100:.2f} %"
            assert cell.text == expected
        _check_plots(browser, api, point_id)

    files = {a.get_attribute("data-file") for a in browser.find_elements(By.CSS_SELECTOR, "a[data-file]")}
    assert {"model.tflite", "model.keras", "report.json"} <= files
    # The download links work with the browser's session, and give the API's bytes.
    cookie = browser.get_cookie("shears_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert key not in cookie["value"]
    with httpx.Client(base_url=embedded.url, cookies={"shears_session": cookie["value"]}) as session:
        assert session.get(f"/ui/jobs/{point_id}/files/report.json").content == report_bytes
    _screenshot(browser, "ui-job.png")


def test_a_wrong_key_shows_the_form_again_with_an_error(browser: Any, embedded: Service, key: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{embedded.url}/ui/login")
    _log_in(browser, key[:-4] + "abcd")
    error = _wait(lambda: browser.find_elements(By.ID, "login-error"))[0]
    assert "unknown or revoked" in error.text
    assert browser.current_url == f"{embedded.url}/ui/login"
    assert browser.get_cookie("shears_session") is None
    with httpx.Client(base_url=embedded.url) as client:
        assert client.post("/ui/login", data={"key": key[:-4] + "abcd"}).status_code == 401
        assert client.post("/ui/login", data={}).status_code == 401


def test_pages_need_a_live_session(embedded: Service) -> None:
    key = embedded.new_key()
    with httpx.Client(base_url=embedded.url) as anonymous:
        for path in ("/ui", "/ui/jobs", "/ui/jobs/job_x", "/ui/jobs/job_x/files/report.json"):
            response = anonymous.get(path, follow_redirects=True)
            assert response.url.path == "/ui/login", path
            assert response.history[-1].status_code == 303
        assert anonymous.get("/ui/jobs/job_x/progress.json").status_code == 401

    with ui_session(embedded, key) as client:
        token = client.cookies["shears_session"]
        assert key not in token
        assert client.get("/ui/jobs").status_code == 200
        key_id, expires, signature = token.split(".")
        forged = {
            "tampered signature": f"{key_id}.{expires}.{'0' * len(signature)}",
            "stretched expiry": f"{key_id}.{int(expires) + 3600}.{signature}",
            "the raw key": key,
        }
        for what, value in forged.items():
            with httpx.Client(base_url=embedded.url, cookies={"shears_session": value}) as other:
                assert other.get("/ui/jobs").status_code == 303, what
        # Revoking the key ends its sessions.
        assert embedded.cli("keys", "revoke", key) == "revoked 1 key(s)"
        assert client.get("/ui/jobs").status_code == 303


def test_the_session_cookie_is_locked_down(embedded: Service) -> None:
    key = embedded.new_key()
    with httpx.Client(base_url=embedded.url) as client:
        plain = client.post("/ui/login", data={"key": key}).headers["set-cookie"]
        # Behind a TLS proxy (uvicorn trusts X-Forwarded-Proto from loopback) the cookie is Secure.
        tls = client.post("/ui/login", data={"key": key}, headers={"X-Forwarded-Proto": "https"}).headers["set-cookie"]
        cross_site = client.post("/ui/login", data={"key": key}, headers={"Origin": "https://evil.example"})
        logout = client.post("/ui/logout")
    for cookie in (plain, tls):
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/ui" in cookie
    assert "Secure" not in plain
    assert "Secure" in tls
    assert cross_site.status_code == 403
    assert "set-cookie" not in cross_site.headers
    assert logout.status_code == 303
    assert 'shears_session=""' in logout.headers["set-cookie"]


def _waiting_job(service: Service, key: str, model: Path) -> str:
    """A job of `key`'s tenant that has not finished: a profile job, just submitted."""
    with service.client(key) as api:
        submitted = api.post("/v1/jobs", json={"model_id": upload_model(api, model), "kind": "profile"})
        assert submitted.status_code == 202, submitted.text
        return str(submitted.json()["id"])


def test_another_tenants_job_is_not_found(embedded: Service, key: str, digits_model: Path) -> None:
    job_id = _waiting_job(embedded, key, digits_model)
    with ui_session(embedded, key) as owner, ui_session(embedded, embedded.new_key()) as stranger:
        assert owner.get(f"/ui/jobs/{job_id}").status_code == 200
        assert owner.get(f"/ui/jobs/{job_id}/progress.json").json()["id"] == job_id
        page = stranger.get(f"/ui/jobs/{job_id}")
        assert page.status_code == 404
        assert "Not found" in page.text
        assert stranger.get(f"/ui/jobs/{job_id}/progress.json").status_code == 404
        assert stranger.get(f"/ui/jobs/{job_id}/files/report.json").status_code == 404
        assert stranger.post(f"/ui/jobs/{job_id}/cancel", data={"form_token": "x"}).status_code == 404
        assert job_id not in stranger.get("/ui/jobs").text


def test_the_cancel_button_works_only_from_the_job_page(embedded: Service, key: str, digits_model: Path) -> None:
    job_id = _waiting_job(embedded, key, digits_model)
    with ui_session(embedded, key) as owner, embedded.client(key) as api:
        page = owner.get(f"/ui/jobs/{job_id}").text
        assert 'id="cancel"' in page
        match = re.search(r'name="form_token" value="([0-9a-f]+)"', page)
        assert match
        token = match.group(1)
        url = f"/ui/jobs/{job_id}/cancel"
        assert owner.post(url).status_code == 403  # no token: a form from elsewhere
        elsewhere = {"Origin": "https://evil.example"}
        assert owner.post(url, data={"form_token": token}, headers=elsewhere).status_code == 403
        with httpx.Client(base_url=embedded.url, cookies={"shears_session": "x"}) as logged_out:
            assert logged_out.post(url, data={"form_token": token}).status_code == 303  # to the login form
        assert api.get(f"/v1/jobs/{job_id}").json()["cancel_requested"] is False

        done = owner.post(url, data={"form_token": token}, headers={"Origin": embedded.url})
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/jobs/{job_id}"
        job = api.get(f"/v1/jobs/{job_id}").json()
        assert job["cancel_requested"] is True
        assert 'id="cancel"' not in owner.get(f"/ui/jobs/{job_id}").text
        assert wait_for_job(api, job_id, timeout=120)["status"] == "cancelled"
