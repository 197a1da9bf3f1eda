"""The database handle's counters and its connection pool, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from jobyard.store import Database
from jobyard.store.schema import organizations

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def test_counts_statements_and_transactions(db_url: str) -> None:
    db = Database(db_url, count_statements=True)
    try:
        assert db.counts is not None
        async with db.read() as tx:
            await tx.conn.execute(sa.select(organizations.c.id))
        # SQLite's BEGIN is a statement jobyard sends; PostgreSQL's driver sends its own.
        begin = 1 if db.is_sqlite else 0
        assert (db.counts.statements, db.counts.begun) == (1 + begin, 1)
        assert (db.counts.commits, db.counts.rollbacks) == (0, 1)

        async with db.begin() as tx:
            await tx.conn.execute(
                organizations.insert(),
                [{"name": f"org{i}", "display_name": "o", "created_at": NOW} for i in range(3)],
            )
        assert db.counts.statements == 2 * (1 + begin)
        assert db.counts.rows == 2 * (1 + begin) + 2  # one executemany of 3 rows
        assert (db.counts.begun, db.counts.commits, db.counts.rollbacks) == (2, 1, 1)
        assert f"jobyard_db_statements_total {db.counts.statements}" in list(db.counts.lines())
    finally:
        await db.close()


async def test_no_counters_unless_asked(db_url: str) -> None:
    db = Database(db_url)
    try:
        assert db.counts is None
    finally:
        await db.close()


async def test_concurrent_reads_reuse_pooled_connections(db_url: str) -> None:
    """As many readers as a server's concurrency are served by pooled connections: a second
    round of them opens none (an overflow connection is opened and closed per request)."""
    db = Database(db_url)
    opened: list[Any] = []
    event.listen(db.engine.sync_engine, "connect", lambda *_: opened.append(1))
    try:

        async def reader() -> None:
            async with db.read() as tx:
                await tx.conn.execute(sa.select(organizations.c.id))
                await asyncio.sleep(0.01)  # all of them hold a connection at once

        await asyncio.gather(*(reader() for _ in range(24)))
        first = len(opened)
        assert first == 24
        await asyncio.gather(*(reader() for _ in range(24)))
        assert len(opened) == first
    finally:
        await db.close()


async def test_quick_reads_are_counted(db_url: str) -> None:
    """The quick reads' statements count too, on SQLite's own read-only connection."""
    db = Database(db_url, count_statements=True)
    try:
        assert db.counts is not None
        before = db.counts.statements
        for _ in range(3):
            async with db.quick() as rows:
                await rows.all(sa.select(organizations.c.id))
        assert db.counts.statements - before == 3
    finally:
        await db.close()
