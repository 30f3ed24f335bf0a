from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    filename: str
    sha256: str
    bytes: int
    task: str
    arrays: dict[str, Any]
    format: str = "npz"
    summary: dict[str, Any] | None = None
    created_at: datetime


class BuiltinDataset(BaseModel):
    id: str
    description: str


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None
    builtin: list[BuiltinDataset]
