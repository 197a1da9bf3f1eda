"""SQLite write transactions run on the event loop's thread.

On SQLite every write of this process already waits for one lock (``Database._begin``), so
a write transaction never runs beside another one of the process; a keyed statement takes
tens of microseconds in SQLite itself, less than aiosqlite's hand-off to its thread (a
future, a queue and a greenlet switch per statement) that it replaces. ``InlineConnection``
gives the repositories the part of ``AsyncConnection`` they use, on a synchronous
connection: their code is the same whichever runs it.

SQLite checkpoints its WAL from the connection that commits (which fsyncs the database
file): on this connection the automatic checkpoint is off, and ``due_checkpoint`` tells
``Database`` when to run one through aiosqlite's thread instead, so the loop never waits
for the disk.

The connection asks for the write lock without waiting (``busy_timeout=0``): when another
process holds it (``jobyard admin``, a backup), ``try_begin`` says so and the transaction
runs through aiosqlite instead, which waits for the lock in its own thread, so the event
loop never blocks on another process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from jobyard.store.counting import Counts, count_statements, count_transactions

# Rows written between two checkpoints of the WAL.
CHECKPOINT_ROWS = 5_000


# The pragmas of every connection that writes (aiosqlite's and the loop's).
WRITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")


def loop_engine(url: str, pragmas: Sequence[str], json_serializer: Any = None) -> sa.Engine:
    """A synchronous SQLite engine of one connection, used on the event loop's thread,
    each connection set up with ``pragmas``."""
    options: dict[str, Any] = {"json_deserializer": orjson.loads}
    if json_serializer is not None:
        options["json_serializer"] = json_serializer
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.StaticPool,
        connect_args={"check_same_thread": False, "isolation_level": None},
        **options,
    )

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        for pragma in pragmas:
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    return engine


class InlineConnection:
    """``AsyncConnection``'s methods that the repositories call, run synchronously."""

    __slots__ = ("dialect", "sync")

    def __init__(self, sync: sa.Connection) -> None:
        self.sync = sync
        self.dialect = sync.dialect

    async def execute(
        self,
        statement: sa.Executable,
        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> sa.CursorResult[Any]:
        return self.sync.execute(statement, parameters, execution_options=execution_options)

    async def exec_driver_sql(
        self, statement: str, parameters: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> sa.CursorResult[Any]:
        return self.sync.exec_driver_sql(statement, parameters)

    def begin_nested(self) -> _Savepoint:
        return _Savepoint(self.sync)


class _Savepoint:
    """``async with conn.begin_nested():`` on the synchronous connection."""

    __slots__ = ("sync", "trans")

    def __init__(self, sync: sa.Connection) -> None:
        self.sync = sync
        self.trans: sa.NestedTransaction | None = None

    async def __aenter__(self) -> sa.NestedTransaction:
        self.trans = self.sync.begin_nested()
        return self.trans

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.trans is not None
        if exc is None:
            self.trans.commit()
        elif self.trans.is_active:
            self.trans.rollback()


class InlineWriter:
    """The synchronous write connection of one SQLite file (made on first use)."""

    def __init__(self, url: str, json_serializer: Any, counts: Counts | None) -> None:
        engine = loop_engine(
            url,
            # never wait on the loop's thread; checkpoints run off the loop
            (*WRITE_PRAGMAS, "busy_timeout=0", "wal_autocheckpoint=0"),
            json_serializer=json_serializer,
        )

        @event.listens_for(engine, "begin")
        def on_begin(conn: sa.Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        if counts is not None:
            count_statements(engine, counts)
            count_transactions(engine, counts)
        self.engine = engine
        self.conn = engine.connect()
        self._changes_at_checkpoint = 0

    def due_checkpoint(self) -> bool:
        """True once enough rows changed since the last checkpoint was asked for (about
        SQLite's own 1,000-page threshold for rows of a few hundred bytes)."""
        changes = self.conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
        if changes - self._changes_at_checkpoint < CHECKPOINT_ROWS:
            return False
        self._changes_at_checkpoint = changes
        return True

    def try_begin(self) -> sa.RootTransaction | None:
        """The write transaction, or None when another process holds the write lock."""
        try:
            return self.conn.begin()
        except (sa.exc.OperationalError, sqlite3.OperationalError) as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if self.conn.in_transaction():
                self.conn.rollback()
            return None

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()
