"""The compatibility promise: a client says its version; one older than the server supports gets 426.

The client sends `X-Shears-Client: <version>` (and `User-Agent: shears-remote/<version>`); requests
without either (curl, browsers, other tools) are never refused on these grounds.
"""

import re

from fastapi import Request
from fastapi.responses import JSONResponse

CLIENT_HEADER = "x-shears-client"
USER_AGENT = re.compile(r"^shears(?:-remote|-client)?/(\d+(?:\.\d+)*)")


def parse_version(text: str) -> tuple[int, ...] | None:
    """`0.1.0` -> (0, 1, 0); None when it is not dotted numbers (pre-release tags are ignored)."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", text)
    if match is None:
        return None
    parts = [int(p) for p in match.group(1).split(".")][:3]
    return tuple(parts + [0] * (3 - len(parts)))


def client_version(request: Request) -> str | None:
    declared = request.headers.get(CLIENT_HEADER)
    if declared:
        return declared.strip()
    match = USER_AGENT.match(request.headers.get("user-agent", ""))
    return match.group(1) if match else None


def too_old(request: Request, minimum: str) -> JSONResponse | None:
    """The 426 answer for a client older than `minimum`, or None when it may go on."""
    version = client_version(request)
    floor = parse_version(minimum) if minimum else None
    if version is None or floor is None:
        return None
    have = parse_version(version)
    if have is not None and have >= floor:
        return None
    message = (
        f"this server supports shears clients from version {minimum}; this one is {version!r}. "
        "Upgrade it: pip install --upgrade shears"
    )
    body = {"error": {"code": "client_too_old", "message": message, "minimum_version": minimum}}
    return JSONResponse(body, status_code=426, headers={"Upgrade": f"shears/{minimum}"})
