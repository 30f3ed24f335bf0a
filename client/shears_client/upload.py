"""Resumable dataset upload (tus 1.0.0) for `shears remote datasets upload` and the SDK: a cut connection is
resumed from the offset the server reports, without resending what arrived."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import click
import httpx

from shears_client.errors import Refused, ServerUnavailable
from shears_client.http import Api, error_text

CHUNK_BYTES = 16 << 20
TUS = {"Tus-Resumable": "1.0.0"}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def upload_resumable(
    api: Api, path: Path, options: dict[str, Any] | None, chunk_bytes: int = CHUNK_BYTES, progress: bool = True
) -> dict[str, Any]:
    """Create the upload, PATCH it in chunks (resuming after a cut), then make the dataset; its record."""
    size = path.stat().st_size
    metadata = f"filename {_b64(path.name)}" + (f",options {_b64(json.dumps(options))}" if options else "")
    headers = {**TUS, "Upload-Length": str(size), "Upload-Metadata": metadata}
    created = api.checked(
        api.retrying(lambda: api.http.post("/v1/uploads", headers=headers), "POST /v1/uploads"), "POST /v1/uploads"
    )
    location = created.headers["location"]

    def head() -> int:
        r = api.checked(api.retrying(lambda: api.http.head(location, headers=TUS), f"HEAD {location}"), "HEAD")
        return int(r.headers["upload-offset"])

    offset, failures, delay = 0, 0, api.backoff_s
    with (
        path.open("rb") as f,
        click.progressbar(length=size, label=f"uploading {path.name}", file=sys.stderr, hidden=not progress) as bar,
    ):
        while offset < size:
            f.seek(offset)
            chunk = f.read(chunk_bytes)
            patch = {**TUS, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
            try:
                r = api.http.patch(location, content=chunk, headers=patch)
            except httpx.TransportError as exc:
                failures += 1
                if failures >= api.tries:
                    raise ServerUnavailable(
                        f"PATCH {location}: cut {failures} times ({type(exc).__name__}: {exc})"
                    ) from exc
                click.echo(f"shears: upload cut at {offset} bytes ({exc}); resuming in {delay:.1f} s", err=True)
                api.sleep(delay)
                delay *= 2
                new = head()
            else:
                if r.status_code == 204:
                    new = int(r.headers["upload-offset"])
                elif r.status_code == 409 or r.status_code >= 500:
                    new = head()
                else:
                    api.checked(r, f"PATCH {location}")  # a 4xx raises its own class (413, 429...)
                    raise Refused(f"PATCH {location}: {error_text(r)}", status=r.status_code)
            bar.update(new - offset)
            offset = new
    return api.post_json(f"{location}/dataset")
