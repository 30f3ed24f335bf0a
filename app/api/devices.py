from typing import Any

from fastapi import APIRouter, Query

from app.errors import InvalidInput
from contract.devices import KINDS, load_profiles

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.get("")
def list_devices(
    kind: str | None = Query(None, description=f"Only profiles of this kind: {', '.join(KINDS)}."),
) -> dict[str, Any]:
    """The device profiles: clock, memory, runtime, throughput, power and where each number comes from.

    `host` is the machine that runs the jobs: its latency is measured as well as estimated.
    """
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r}; kinds: {', '.join(KINDS)}", code="unknown_kind")
    profiles = load_profiles().values()
    return {"items": [p.to_dict() for p in profiles if kind is None or p.kind == kind]}
