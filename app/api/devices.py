from typing import Any

from fastapi import APIRouter

from pruning.devices import load_profiles

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.get("")
def list_devices() -> dict[str, Any]:
    """The device profiles: clock, memory, runtime, throughput and where each number comes from.

    `host` is the machine that runs the jobs: its latency is measured as well as estimated.
    """
    return {"items": [profile.to_dict() for profile in load_profiles().values()]}
