"""Turning result rows into domain records."""

from __future__ import annotations

from typing import Any, TypeVar

import sqlalchemy as sa

R = TypeVar("R")


def record(cls: type[R], row: sa.RowMapping | None) -> R | None:
    return None if row is None else cls(**row)


def records(cls: type[R], rows: Any) -> list[R]:
    return [cls(**row) for row in rows]
