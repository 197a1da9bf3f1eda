"""Turning result rows into domain records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

R = TypeVar("R")


def record(cls: type[R], row: sa.RowMapping | None) -> R | None:
    return None if row is None else cls(**row)


def records(cls: type[R], rows: Any) -> list[R]:
    return [cls(**row) for row in rows]


# Rows per multi-row INSERT on SQLite: under its limit of 32,766 bound values for the
# widest table written this way (events: 12 columns).
SQLITE_ROWS_PER_INSERT = 1000


async def insert_returning(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[sa.RowMapping]:
    """Insert rows and return them as written (ids, defaults), in the given order, in one
    statement per ``SQLITE_ROWS_PER_INSERT`` rows.

    PostgreSQL: SQLAlchemy's batched INSERT ... RETURNING with the rows' order kept. SQLite:
    SQLAlchemy keeps the order there only by sending one INSERT per row, so one multi-row
    INSERT ... RETURNING is sent instead and its rows sorted by id: SQLite numbers the rows
    of one statement in the order of its VALUES, and RETURNING gives them in no set order.
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        result = await conn.execute(
            table.insert().returning(*table.c, sort_by_parameter_order=True), list(rows)
        )
        return list(result.mappings())
    out: list[sa.RowMapping] = []
    for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
        chunk = rows[start : start + SQLITE_ROWS_PER_INSERT]
        stmt = table.insert().values(list(chunk)).returning(*table.c)
        written = sorted((await conn.execute(stmt)).mappings(), key=lambda r: r["id"])
        if len(written) != len(chunk):
            raise RuntimeError(f"inserted {len(chunk)} rows into {table.name}, got {len(written)}")
        out += written
    return out
