from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class DatasetImport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=1024, description="s3://bucket/key of a dataset file, under an allowed prefix")
    options: dict[str, Any] = Field(default_factory=dict, description="as for POST /v1/datasets")
    expires_in: int | None = Field(None, ge=1, description="seconds until the dataset is deleted")
