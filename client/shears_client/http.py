"""The HTTP side of the client: retries with backoff, one Idempotency-Key per POST, errors as typed exceptions."""

from __future__ import annotations

import email.utils
import hashlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from shears_client.errors import ServerUnavailable, ShearsError, for_answer

RETRY_STATUSES = (502, 503, 504)
RETRY_AFTER_CAP_S = 120.0


def client_version() -> str:
    """This client's version, sent with every request (`X-Shears-Client`) so the server can refuse an old one."""
    for dist in ("shears-client", "shears"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


VERSION = client_version()
USER_AGENT = f"shears-remote/{VERSION}"


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_text(response: httpx.Response) -> str:
    """`HTTP 422 invalid_request: <message>` from the server's `{"error": {"code", "message"}}`."""
    try:
        error = response.json()["error"]
        return f"HTTP {response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = " ".join(response.text.split())[:200]
        return f"HTTP {response.status_code}: {text or response.reason_phrase} (not a Shears error body)"


def check_url(url: str) -> str:
    """The server address without its trailing slash; an address httpx cannot use is refused at once."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        fix = "use e.g. https://shears.example.com"
        raise ShearsError(f"SHEARS_URL {url!r} is not a URL ({exc})", fix=fix) from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ShearsError(
            f"SHEARS_URL {url!r} is not an http(s) address",
            fix="use the server's address with its scheme, e.g. https://shears.example.com",
        )
    return url.rstrip("/")


def _say(text: str) -> None:
    sys.stderr.write(f"shears: {text}\n")
    sys.stderr.flush()


@dataclass
class Api:
    """A Shears server: retries, error handling and the calls the commands and the SDK need."""

    url: str
    key: str
    tries: int = 5
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    say: Callable[[str], None] = _say
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.url = check_url(self.url)
        self.http = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}", "User-Agent": USER_AGENT, "X-Shears-Client": VERSION},
            timeout=httpx.Timeout(120.0, connect=10.0),
            transport=self.transport,
        )

    def close(self) -> None:
        self.http.close()

    def retrying(self, attempt: Callable[[], httpx.Response], what: str) -> httpx.Response:
        """`attempt()` until it answers other than 502/503/504, with backoff; network errors are retried."""
        delay = self.backoff_s
        for n in range(1, self.tries + 1):
            try:
                response = attempt()
            except httpx.TransportError as exc:
                if n == self.tries:
                    raise ServerUnavailable(
                        f"{what}: cannot reach {self.url} after {self.tries} tries ({type(exc).__name__}: {exc})"
                    ) from exc
                wait, reason = delay, f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES or n == self.tries:
                    return response
                hint = retry_after_s(response)
                wait = min(hint, RETRY_AFTER_CAP_S) if hint is not None else delay
                reason = f"HTTP {response.status_code}"
                response.close()
            self.say(f"{what}: {reason}; retry {n}/{self.tries - 1} in {wait:.1f} s")
            self.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def checked(self, response: httpx.Response, what: str) -> httpx.Response:
        """`response` when it is not an error; else the error class for its status and code, raised."""
        if response.status_code < 400:
            return response
        code = None
        try:
            code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            pass
        kind = for_answer(response.status_code, code)
        message = f"{what}: {error_text(response)}"
        retry_after = retry_after_s(response)
        error = kind(message, code=code, status=response.status_code, retry_after=retry_after)
        if response.status_code == 429 and retry_after is not None:
            error.fix = f"{error.fix} (the server says in {retry_after:.0f} s)"
        raise error

    def request(
        self, method: str, path: str, *, json_body: Any = None, upload: Path | None = None, key: str | None = None
    ) -> httpx.Response:
        """One call, retried; POSTs carry one Idempotency-Key across their retries (`key`, else a new one).
        4xx/5xx raise ShearsError."""
        headers = {"Idempotency-Key": key or str(uuid.uuid4())} if method == "POST" else {}
        what = f"{method} {path}"

        def attempt() -> httpx.Response:
            if upload is None:
                return self.http.request(method, path, json=json_body, headers=headers)
            with upload.open("rb") as f:  # reopened on every try, so a retry sends the whole file again
                return self.http.request(method, path, files={"file": (upload.name, f)}, headers=headers)

        return self.checked(self.retrying(attempt, what), what)

    def get_json(self, path: str) -> dict[str, Any]:
        return dict(self.request("GET", path).json())

    def post_json(
        self, path: str, body: Any = None, upload: Path | None = None, key: str | None = None
    ) -> dict[str, Any]:
        return dict(self.request("POST", path, json_body=body, upload=upload, key=key).json())

    def download(self, path: str, dest: Path) -> int:
        """Stream `path` to `dest` (atomically; checked against X-Content-SHA256 when sent); returns its size."""
        part = dest.with_name(dest.name + ".part")
        digest: dict[str, str] = {}

        def attempt() -> httpx.Response:
            response = self.http.send(self.http.build_request("GET", path), stream=True)
            try:
                if response.status_code != 200:
                    response.read()
                    return response
                sha = hashlib.sha256()
                with part.open("wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
                        sha.update(chunk)
                digest["sha256"] = sha.hexdigest()
                return response
            finally:
                response.close()

        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            response = self.checked(self.retrying(attempt, f"GET {path}"), f"GET {path}")
            expected = response.headers.get("x-content-sha256")
            if expected and expected != digest.get("sha256"):
                raise ServerUnavailable(f"GET {path}: the download does not match its sha256", fix="try again")
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest.stat().st_size

    # The names the resumable upload used before the client was its own distribution.
    _retrying = retrying
    _checked = checked
