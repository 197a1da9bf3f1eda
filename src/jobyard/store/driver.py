"""Batch statements of the hot path, sent as the driver's own SQL with plain tuples.

A 1,000-node round writes 1,000 run status changes and 1,000 events. Through a SQLAlchemy
statement each row is a dictionary whose every value passes a bind processor (the
compiled statement's parameters rebuilt per row); the driver's ``executemany`` of tuples
skips all of that. The statements are written once per database (``?`` for sqlite3 and
aiosqlite, ``$n`` for asyncpg), and the only values that need converting are converted
here as the column types would: times (once per distinct time: a batch shares one) and
JSON. They still go through ``exec_driver_sql``, so they are counted with the others
(store/counting.py), whichever connection runs them (the loop's SQLite writer,
aiosqlite's, asyncpg's). An executemany, not one UPDATE joined to arrays (PostgreSQL's
``unnest``): a round may move one run twice (ready, then was_ready when the quorum fails),
and a join updates a row once, with either of its changes; an executemany applies them in
order.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from jobyard.store.schema import UTCDateTime, events


def marks(dialect: str, count: int) -> list[str]:
    """The parameter markers of a statement with ``count`` positional parameters."""
    if dialect == "postgresql":
        return [f"${i}" for i in range(1, count + 1)]
    return ["?"] * count


def insert_sql(dialect: str, table: str, columns: Sequence[str]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(marks(dialect, len(columns)))})'


@functools.lru_cache(maxsize=8)
def _time_processor(dialect: sa.Dialect) -> Callable[[Any], Any] | None:
    return UTCDateTime().dialect_impl(dialect).bind_processor(dialect)


@functools.lru_cache(maxsize=8)
def json_processor(dialect: sa.Dialect) -> Callable[[Any], Any]:
    """A JSON column's value as the driver takes it (the engine's serializer)."""
    process = events.c.data.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda v: v)


def stamper(dialect: sa.Dialect) -> Callable[[dt.datetime | None], Any]:
    """A time as the driver takes it (UTC; on SQLite the text SQLAlchemy writes), the last
    one converted remembered: the rows of a batch share their time."""
    process = _time_processor(dialect)
    last: list[Any] = [None, None]

    def stamp(value: dt.datetime | None) -> Any:
        if value is None:
            return None
        if value is last[0]:
            return last[1]
        out = value if process is None else process(value)
        last[0], last[1] = value, out
        return out

    return stamp
