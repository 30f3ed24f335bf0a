"""tus 1.0.0 resumable dataset uploads: a cut connection keeps what arrived; the client resumes from HEAD."""

import hashlib
import io
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.services import Service

TUS = {"Tus-Resumable": "1.0.0"}


def _npz_bytes(n: int = 4000) -> bytes:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (n, 8, 8, 1), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x, y_train=np.arange(n) % 10, x_val=x[:100], y_val=np.arange(100) % 10)
    return buffer.getvalue()


def _cut_patch(service: Service, key: str, location: str, payload: bytes, send: int) -> None:
    """A PATCH that declares all of `payload` but sends `send` bytes and drops the connection."""
    host, port = "127.0.0.1", service.port
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((host, port)) as s:
        s.sendall(head.encode() + payload[:send])
        time.sleep(0.5)


def test_a_cut_patch_keeps_what_arrived_and_the_rest_completes_it(embedded: Service) -> None:
    payload = _npz_bytes()
    key = embedded.new_key()
    with embedded.client(key) as c:
        assert c.post("/v1/uploads", headers={**TUS, "Upload-Length": str(64 << 40)}).status_code == 413
        created = c.post("/v1/uploads", headers={**TUS, "Upload-Length": str(len(payload))})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        _cut_patch(embedded, key, location, payload, len(payload) // 2)
        offset = int(c.head(location, headers=TUS).headers["upload-offset"])
        assert 0 < offset <= len(payload) // 2
        octets = {**TUS, "Content-Type": "application/offset+octet-stream"}
        wrong = c.patch(location, content=payload, headers={**octets, "Upload-Offset": "0"})
        assert wrong.status_code == 409
        early = c.post(f"{location}/dataset")
        assert early.status_code == 409
        done = c.patch(location, content=payload[offset:], headers={**octets, "Upload-Offset": str(offset)})
        assert done.status_code == 204
        assert int(done.headers["upload-offset"]) == len(payload)
        dataset = c.post(f"{location}/dataset")
        assert dataset.status_code == 201, dataset.text
        assert dataset.json()["sha256"] == hashlib.sha256(payload).hexdigest()
        assert dataset.json()["summary"]["samples"] == {"train": 4000, "val": 100}
        other = embedded.client(embedded.new_key())
        assert other.head(location, headers=TUS).status_code == 404  # another tenant's upload is not there


class CutFirstPatch(httpx.HTTPTransport):
    """Delivers half of the first PATCH's body to the server, then fails as a dropped connection."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and not self.cut:
            self.cut = True
            body = request.read()
            half = httpx.Request("PATCH", request.url, headers=request.headers, content=body[: len(body) // 2])
            half.headers["Content-Length"] = str(len(body) // 2)
            super().handle_request(half).close()
            raise httpx.ReadError("connection reset by peer")
        return super().handle_request(request)


def test_the_client_resumes_after_a_cut_without_resending(embedded: Service, tmp_path: Path) -> None:
    from shears_client.http import Api
    from shears_client.upload import upload_resumable

    path = tmp_path / "d.npz"
    path.write_bytes(_npz_bytes(3000))
    transport = CutFirstPatch()
    api = Api(embedded.url, embedded.new_key(), transport=transport, sleep=lambda _s: None)
    sent: list[int] = []
    original = api.http.patch

    def counting_patch(url: str, **kwargs: object) -> httpx.Response:
        sent.append(len(kwargs["content"]))  # type: ignore[arg-type]
        return original(url, **kwargs)  # type: ignore[arg-type]

    api.http.patch = counting_patch  # type: ignore[method-assign]
    record = upload_resumable(api, path, {"scale": 0.5}, chunk_bytes=64 << 10, progress=False)
    assert transport.cut
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["summary"]["scale"] == pytest.approx(0.5)
    # Only the second half of the cut chunk was sent again, not the whole file.
    assert sum(sent) == path.stat().st_size + sent[0] - sent[0] // 2
