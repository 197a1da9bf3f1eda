"""Turning result rows into domain records."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

R = TypeVar("R")


def record(cls: type[R], row: sa.RowMapping | None) -> R | None:
    return None if row is None else cls(**row)


def records(cls: type[R], rows: Any) -> list[R]:
    return [cls(**row) for row in rows]


# Up to this many rows, SQLite writes them in one multi-row INSERT ... RETURNING; more
# (under its limit of 32,766 bound values in any case) by executemany and a read-back.
SQLITE_FEW_ROWS = 50


async def insert_returning(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[sa.RowMapping]:
    """Insert rows and return them as written (ids, defaults), in the given order.

    PostgreSQL: SQLAlchemy's batched INSERT ... RETURNING with the rows' order kept. SQLite:
    SQLAlchemy keeps the order there only by sending one INSERT per row, so a few rows go
    in one multi-row INSERT ... RETURNING, sorted by id (SQLite numbers the rows of one
    statement in the order of its VALUES, and RETURNING gives them in no set order); many
    by one executemany and a read-back of the rows past the old maximum id.
    """
    if not rows:
        return []
    if conn.dialect.name != "sqlite":
        result = await conn.execute(
            table.insert().returning(*table.c, sort_by_parameter_order=True), list(rows)
        )
        return list(result.mappings())
    if len(rows) > SQLITE_FEW_ROWS:
        return await _insert_many_sqlite(conn, table, rows)
    stmt, params = values_insert(table, rows)
    written = sorted((await conn.execute(stmt, params)).mappings(), key=lambda r: r["id"])
    if len(written) != len(rows):
        raise RuntimeError(f"inserted {len(rows)} rows into {table.name}, got {len(written)}")
    return written


async def _insert_many_sqlite(
    conn: AsyncConnection, table: sa.Table, rows: Sequence[dict[str, Any]]
) -> list[sa.RowMapping]:
    # A multi-row INSERT of 1,000 rows is a statement of 12,000 values built and compiled
    # for every call (a tenth of a 1,000-node fan-out's CPU on SQLite); an executemany's
    # statement is the same for any count.
    ids = await numbered(conn, table, len(rows), lambda: conn.execute(table.insert(), list(rows)))
    q = table.select().where(table.c.id >= ids.start).order_by(table.c.id)
    return list((await conn.execute(q)).mappings())


_TOPS: dict[str, sa.Select[Any]] = {}


async def numbered(
    conn: AsyncConnection, table: sa.Table, count: int, write: Callable[[], Awaitable[Any]]
) -> range:
    """The ids SQLite gave the ``count`` rows that ``write()`` inserted into ``table``, in
    order. The writer holds SQLite's write lock (BEGIN IMMEDIATE) and SQLite numbers a new
    row max(id) + 1, so they are the ids past the old maximum; the new maximum checks it."""
    top = _TOPS.get(table.name)
    if top is None:
        top = _TOPS[table.name] = sa.select(sa.func.max(table.c.id))
    before = (await conn.execute(top)).scalar() or 0
    await write()
    after = (await conn.execute(top)).scalar() or 0
    if after - before != count:
        raise RuntimeError(
            f"wrote {count} rows into {table.name} but ids moved by {after - before}"
        )
    return range(before + 1, after + 1)


# Multi-row INSERT ... RETURNING statements (up to SQLITE_FEW_ROWS rows) are made once per
# table, columns and row count, as text with typed parameters and columns: SQLAlchemy gives
# a multi-row ``insert().values([...])`` no cache key, so it would compile it on every call.
_KEPT: dict[tuple[str, tuple[str, ...], int, tuple[str, ...]], sa.TextualSelect] = {}


def values_insert(
    table: sa.Table, rows: Sequence[dict[str, Any]], returning: Sequence[str] = ()
) -> tuple[sa.Executable, dict[str, Any]]:
    """One INSERT of ``rows`` (all with the same columns) returning ``returning`` (every
    column when empty), and its parameters."""
    keys = tuple(rows[0])
    columns = [table.c[c] for c in returning] or list(table.c)
    if any(tuple(r) != keys for r in rows):
        return table.insert().values(list(rows)).returning(*columns), {}
    key = (table.name, keys, len(rows), tuple(returning))
    stmt = _KEPT.get(key)
    if stmt is None:
        stmt = _KEPT[key] = _text_insert(table, keys, len(rows), columns)
    return stmt, {f"{k}_{i}": row[k] for i, row in enumerate(rows) for k in keys}


def _text_insert(
    table: sa.Table, keys: tuple[str, ...], count: int, columns: list[sa.Column[Any]]
) -> sa.TextualSelect:
    names = ", ".join(f'"{table.c[k].name}"' for k in keys)
    values = ", ".join("(" + ", ".join(f":{k}_{i}" for k in keys) + ")" for i in range(count))
    returned = ", ".join(f'"{c.name}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES {values} RETURNING {returned}'
    params = [sa.bindparam(f"{k}_{i}", type_=table.c[k].type) for i in range(count) for k in keys]
    return sa.text(sql).bindparams(*params).columns(*columns)
