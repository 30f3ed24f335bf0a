"""Shears. `shears.Client` is the Python SDK of a Shears server, from the shears-client distribution
(`shears_client`, which the server depends on); it is imported on first use, so `import shears`
stays light and never imports TensorFlow or the engine."""

from typing import Any

__all__ = ["Client"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from shears_client import Client

        return Client
    raise AttributeError(f"module 'shears' has no attribute {name!r}")
