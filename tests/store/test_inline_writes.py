"""SQLite write transactions on the event loop's thread (store/inline.py): the same
repositories, all-or-nothing, counted, and never waiting on the loop for a lock that
another process holds (the write goes through aiosqlite instead)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from jobyard.domain.errors import Invalid
from jobyard.store import Database, inline
from jobyard.store.inline import InlineConnection
from jobyard.store.schema import organizations

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Database]:
    database = Database(sqlite_url, count_statements=True, group_commit=False)
    yield database
    await database.close()


async def _add(db: Database, name: str) -> None:
    async with db.begin() as tx:
        assert isinstance(tx.conn, InlineConnection)  # not through aiosqlite
        await tx.conn.execute(
            organizations.insert().values(name=name, display_name=name, created_at=NOW)
        )


async def _names(db: Database) -> set[str]:
    async with db.read() as tx:
        return set((await tx.conn.execute(sa.select(organizations.c.name))).scalars())


async def test_a_write_commits_on_the_loops_thread_and_is_counted(db: Database) -> None:
    assert db.counts is not None
    before = db.counts.commits
    await _add(db, "acme")
    assert await _names(db) == {"acme"}  # another connection (aiosqlite's) sees it
    assert db.counts.commits == before + 1
    assert db.inline_fallbacks == 0


async def test_a_failing_write_keeps_nothing(db: Database) -> None:
    with pytest.raises(Invalid):
        async with db.begin() as tx:
            await tx.conn.execute(
                organizations.insert().values(name="gone", display_name="g", created_at=NOW)
            )
            raise Invalid("refused after its write")
    assert await _names(db) == set()
    await _add(db, "next")  # the connection is usable again
    assert await _names(db) == {"next"}


async def test_savepoints_roll_back_alone(db: Database) -> None:
    async with db.begin() as tx:
        await tx.conn.execute(
            organizations.insert().values(name="kept", display_name="k", created_at=NOW)
        )
        with pytest.raises(Invalid):
            async with tx.conn.begin_nested():
                await tx.conn.execute(
                    organizations.insert().values(name="dropped", display_name="d", created_at=NOW)
                )
                raise Invalid("inner")
    assert await _names(db) == {"kept"}


async def test_another_process_holding_the_lock_never_blocks_the_loop(
    db: Database, sqlite_url: str
) -> None:
    """Another connection (as ``jobyard admin`` would, from its own process) holds SQLite's
    write lock: the write waits for it in aiosqlite's thread while the loop runs on."""
    await _add(db, "first")  # the loop's writer exists
    other = sqlite3.connect(make_url(sqlite_url).database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def write() -> None:
        async with db.begin() as tx:
            assert not isinstance(tx.conn, InlineConnection)
            await tx.conn.execute(
                organizations.insert().values(name="waited", display_name="w", created_at=NOW)
            )

    counting = asyncio.create_task(ticker())
    writing = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writing.done()  # waiting for the other's lock ...
    assert ticks > 0  # ... without blocking the loop
    other.execute("COMMIT")
    other.close()
    await writing
    counting.cancel()
    assert db.inline_fallbacks == 1
    assert await _names(db) == {"first", "waited"}
    await _add(db, "after")  # and the loop's writer is used again
    assert db.inline_fallbacks == 1


async def test_off_when_told(sqlite_url: str) -> None:
    db = Database(sqlite_url, inline_writes=False)
    try:
        async with db.begin() as tx:
            assert not isinstance(tx.conn, InlineConnection)
    finally:
        await db.close()


async def test_the_wal_is_checkpointed_off_the_loop(db: Database) -> None:
    """The loop's connection never checkpoints (that fsyncs the file): after enough rows
    a PASSIVE checkpoint runs through aiosqlite's thread."""
    await _add(db, "one")
    assert db._checkpoint is None
    raw = db.write_engines()[-1].raw_connection()
    try:
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    finally:
        raw.close()
    rows = [
        {"name": f"org{i}", "display_name": "x", "created_at": NOW}
        for i in range(inline.CHECKPOINT_ROWS)
    ]
    async with db.begin() as tx:
        await tx.conn.execute(organizations.insert(), rows)
    assert db._checkpoint is not None
    await db._checkpoint  # ran, without error
    assert len(await _names(db)) == inline.CHECKPOINT_ROWS + 1
