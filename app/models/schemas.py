from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    sha256: str
    format: str
    bytes: int
    params: int | None
    input_shape: list[Any] | None
    output_shape: list[Any] | None
    layers: int | None
    created_at: datetime


class ModelList(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None
