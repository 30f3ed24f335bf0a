"""Webhooks: where a finished job may be POSTed, how the body is signed, and one delivery attempt."""

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.errors import InvalidInput

# Cloud metadata services that are not link-local addresses.
METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


def check_url(url: str, allow_private: bool) -> str:
    """Refuse callback URLs that would reach the host's own network in ways a tenant must not;
    returns the checked address to connect to (no second lookup: DNS rebinding)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("callback_url must be an http(s) URL with a host", code="invalid_callback_url")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"callback_url host does not resolve: {exc}", code="invalid_callback_url") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_link_local
            or address in METADATA
            or address.is_multicast
            or address.is_unspecified
            or address.is_reserved
        ):
            raise InvalidInput(f"callback_url resolves to a forbidden address {address}", code="forbidden_callback_url")
        if not allow_private and not address.is_global:
            raise InvalidInput(
                f"callback_url resolves to a private address {address} (set SHEARS_WEBHOOK_ALLOW_PRIVATE to allow)",
                code="forbidden_callback_url",
            )
    return str(infos[0][4][0])


def signature(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """`t=<unix>,v1=<hex>`: HMAC-SHA256 over `<t>.<body>` with the tenant's secret."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance_s: int = 300) -> bool:
    """What a receiver does: check the signature and that it is recent."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    expected = signature(secret, body, t).split("v1=", 1)[1]
    return abs(time.time() - t) <= tolerance_s and hmac.compare_digest(expected, fields.get("v1", ""))


def deliver(url: str, secret: str, payload: dict[str, Any], allow_private: bool, timeout_s: float = 10.0) -> int:
    """POST the payload once; returns the HTTP status. Raises on network errors and refused URLs."""
    # Checked again at delivery (DNS may have changed since the job was submitted), and the
    # connection goes to the address that was checked: a name that answers differently on a second
    # lookup (DNS rebinding) cannot turn a public address into a private one.
    address = check_url(url, allow_private)
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    pinned = parts._replace(netloc=f"{literal}:{parts.port}" if parts.port else literal).geturl()
    body = json.dumps(payload, default=str, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "Shears-Signature": signature(secret, body),
        "host": parts.netloc.rsplit("@", 1)[-1],
    }
    with httpx.Client(timeout=timeout_s, follow_redirects=False) as client:
        # TLS still names (SNI) and verifies the certificate of the host in the URL.
        request = client.build_request("POST", pinned, content=body, headers=headers, extensions={"sni_hostname": host})
        return client.send(request).status_code
