"""The compatibility promise: a client too old for the server is told so with 426, others pass."""

import httpx
import pytest

from shears_client import http as remote
from tests.api.test_auth_and_tenancy import _assert_error
from tests.services import Service


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Shears-Client": "0.0.9"},
        {"User-Agent": "shears-remote/0.0.1"},
        {"X-Shears-Client": "0.0.9", "User-Agent": "x"},
    ],
)
def test_a_client_older_than_the_minimum_gets_426(embedded: Service, key: str, headers: dict[str, str]) -> None:
    with embedded.client(key) as c:
        r = c.get("/v1/models", headers=headers)
    _assert_error(r, 426, "client_too_old")
    error = r.json()["error"]
    assert error["minimum_version"] == "0.1.0"
    assert "pip install --upgrade" in error["message"]


@pytest.mark.parametrize(
    "headers", [{}, {"User-Agent": "curl/8.0"}, {"X-Shears-Client": "0.1.0"}, {"X-Shears-Client": "1.2.3rc1"}]
)
def test_current_clients_and_other_tools_pass(embedded: Service, key: str, headers: dict[str, str]) -> None:
    with embedded.client(key) as c:
        assert c.get("/v1/models", headers=headers).status_code == 200


def test_the_client_sends_its_version(embedded: Service, key: str) -> None:
    sent: list[httpx.Request] = []
    api = remote.Api(
        embedded.url, key, transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(200, json={}))
    )
    api.get_json("/v1/usage")
    assert sent[0].headers["x-shears-client"] == remote.VERSION != "unknown"
    assert sent[0].headers["user-agent"] == f"shears-remote/{remote.VERSION}"
    assert remote.Api(embedded.url, key).get_json("/v1/usage")["limits"]  # and the live server serves it
