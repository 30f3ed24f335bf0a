"""Cursor pagination, newest first: the cursor names the last row a page ended on."""

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_

from app.errors import InvalidInput

T = TypeVar("T")


def encode(created_at: datetime, row_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), row_id]).encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, row_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), str(row_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor; use next_cursor from the previous page", code="invalid_cursor") from exc


def page(query: Select[T], table: Any, cursor: str | None, limit: int) -> Select[T]:
    """`query` ordered newest first, after `cursor`, one row more than `limit` to see if more follow."""
    if cursor:
        at, row_id = decode(cursor)
        query = query.where(tuple_(table.created_at, table.id) < tuple_(at, row_id))
    return query.order_by(table.created_at.desc(), table.id.desc()).limit(limit + 1)


def split(rows: Sequence[Any], limit: int) -> tuple[list[Any], str | None]:
    """The page's rows and the cursor of the next page (None on the last page)."""
    items = list(rows[:limit])
    more = len(rows) > limit
    return items, (encode(items[-1].created_at, items[-1].id) if more and items else None)
