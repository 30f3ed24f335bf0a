from typing import Any

from fastapi import APIRouter

router = APIRouter(prefix="/v1/devices", tags=["devices"])

# Only the machine that runs the job is profiled so far: its latency is measured, not estimated.
DEVICES = [
    {
        "name": "host",
        "kind": "host",
        "runtime": "LiteRT (ai-edge-litert) with XNNPACK",
        "threads": 1,
        "basis": "measured on the worker that ran the job: median of repeated runs after warm-up",
    }
]


@router.get("")
def list_devices() -> dict[str, Any]:
    return {"items": DEVICES}
