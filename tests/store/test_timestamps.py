"""Timestamps come back aware and in UTC, equal to what was written, on both databases;
SQLite's text in any shape it may hold reads as before."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from jobyard.service.context import Services
from jobyard.store.schema import UTCDateTime

_T = sa.Table("ts_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
              sa.Column("at", UTCDateTime()))  # fmt: skip

WRITTEN = [
    dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),  # no microseconds
    dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),  # not UTC
    None,
]


async def test_timestamps_read_back_as_written(any_svc: Services) -> None:
    kind = "TEXT" if any_svc.db.url.startswith("sqlite") else "TIMESTAMP WITH TIME ZONE"
    async with any_svc.db.begin() as tx:
        await tx.conn.exec_driver_sql(f"CREATE TABLE ts_probe (id INTEGER PRIMARY KEY, at {kind})")
        await tx.conn.execute(_T.insert(), [{"id": i, "at": v} for i, v in enumerate(WRITTEN)])
    async with any_svc.db.read() as tx:
        got = [r[0] for r in await tx.conn.execute(sa.select(_T.c.at).order_by(_T.c.id))]
    assert got == WRITTEN
    for value in got[:-1]:
        assert value is not None and value.tzinfo is dt.UTC


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-01-02 03:04:05.678901", dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)),
        ("2026-01-02 03:04:05", dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)),
        ("2026-01-02", dt.datetime(2026, 1, 2, tzinfo=dt.UTC)),  # a date alone, as SQL may write
    ],
)
async def test_sqlite_text_in_other_shapes(svc: Services, text: str, want: dt.datetime) -> None:
    async with svc.db.begin() as tx:
        await tx.conn.exec_driver_sql("CREATE TABLE ts_probe (id INTEGER PRIMARY KEY, at TEXT)")
        await tx.conn.exec_driver_sql("INSERT INTO ts_probe (id, at) VALUES (1, ?)", (text,))
    async with svc.db.read() as tx:
        [got] = [r[0] for r in await tx.conn.execute(sa.select(_T.c.at))]
    assert got == want and got.tzinfo is dt.UTC
