"""Command-line flags made from the job spec (contract.spec): one definition of their choices and defaults."""

from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import BaseModel

from contract.spec import choices, default

_F = TypeVar("_F", bound=Callable[..., Any])


def spec_flag(flag: str, model: type[BaseModel], name: str, **kw: Any) -> Callable[[_F], _F]:
    """A flag whose default (unless given) and choices (for a Literal field) are the job spec's (contract.spec)."""
    kw.setdefault("default", default(model, name))
    kw.setdefault("show_default", True)
    kw.setdefault("type", click.Choice(choices(model, name)))
    return click.option(flag, **kw)
