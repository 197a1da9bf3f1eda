"""The database handle: engines, migrations, and one transaction per use case.

``Database.begin()`` opens a write transaction and yields a ``Tx`` whose attributes
are the repositories (``tx.jobs``, ``tx.accounts`` ...). ``Database.read()`` does the
same for reads. On SQLite, writers in this process queue on a lock before
``BEGIN IMMEDIATE`` so they never spin on "database is locked"; on PostgreSQL the
database does the serializing.

``Database.observe``, when set (the server sets it to its metrics), is told the duration of
every committed transaction: ``observe(kind, use_case, seconds)``, where kind is ``read`` or
``write`` and the use case is the function that opened it (``submit_job``). A write is timed
from BEGIN to COMMIT, after any wait for SQLite's write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobyard.store.accounts import AccountsRepo
from jobyard.store.chef_keys import ChefKeysRepo
from jobyard.store.clusters import ClustersRepo
from jobyard.store.counting import Counts, count_statements
from jobyard.store.counting import install as count_statements_of
from jobyard.store.events import EventsRepo
from jobyard.store.files import FilesRepo
from jobyard.store.inline import WRITE_PRAGMAS, InlineConnection, InlineWriter, loop_engine
from jobyard.store.jobs import JobsRepo
from jobyard.store.nodes import NodesRepo
from jobyard.store.notify import NotifyStore
from jobyard.store.outputs import OutputsRepo
from jobyard.store.reads import ConnRows, InlineRows, PoolRows, Rows
from jobyard.store.sessions import SessionsRepo
from jobyard.store.stack_runs import StackRunsRepo
from jobyard.store.tasks import TaskRunsRepo, TasksRepo
from jobyard.store.triggers import SchedulesRepo, StacksRepo, TriggersRepo
from jobyard.store.writer import GroupWriter

T = TypeVar("T")


def async_url(url: str) -> str:
    """Map the user-facing URL forms to the async drivers jobyard uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(
            f"unsupported database URL {url!r}: use sqlite:///path or postgresql://..."
        )
    return parsed.render_as_string(hide_password=False)


class Tx:
    """One open transaction and the repositories bound to it."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect
        self.accounts = AccountsRepo(conn)
        self.sessions = SessionsRepo(conn)
        self.chef_keys = ChefKeysRepo(conn)
        self.jobs = JobsRepo(conn, dialect)
        self.events = EventsRepo(conn)
        self.nodes = NodesRepo(conn)
        self.clusters = ClustersRepo(conn)
        self.files = FilesRepo(conn)
        self.outputs = OutputsRepo(conn)
        self.tasks = TasksRepo(conn, dialect)
        self.task_runs = TaskRunsRepo(conn, dialect)
        self.schedules = SchedulesRepo(conn)
        self.stacks = StacksRepo(conn)
        self.stack_runs = StackRunsRepo(conn, dialect)
        self.triggers = TriggersRepo(conn, dialect)
        self.notify = NotifyStore(conn, dialect)
        self._after_commit: list[Any] = []

    async def leader(self, name: str) -> bool:
        """Take a transaction-scoped lock so that one replica at a time runs ``name``.

        On SQLite there is one process, so the answer is always yes.
        """
        if self.dialect != "postgresql":
            return True
        got = await self.conn.execute(
            sa.text("SELECT pg_try_advisory_xact_lock(hashtext(:name))"), {"name": name}
        )
        return bool(got.scalar())

    def after_commit(self, callback: Any) -> None:
        """Run ``callback()`` once the transaction has committed (wake-ups, streams)."""
        self._after_commit.append(callback)

    def fork(self) -> Tx:
        """The same transaction, with after-commit callbacks of its own (a use case of a
        group commit: its callbacks run only if it was kept)."""
        return Tx(self.conn, self.dialect)

    def run_after_commit(self) -> None:
        for callback in self._after_commit:
            callback()


# observe(kind, use_case, seconds): told of each committed transaction (see the docstring).
Observe = Callable[[str, str, float], None]


class Database:
    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        count_statements: bool = False,
        group_commit: bool = True,
        inline_writes: bool = True,
    ) -> None:
        self.url = url
        self.engine: AsyncEngine = _make_engine(async_url(url), echo)
        self.dialect = self.engine.dialect.name
        # Statement and transaction counters (store/counting.py), when asked for.
        self.counts: Counts | None = count_statements_of(self.engine) if count_statements else None
        self._write_lock = asyncio.Lock() if self.dialect == "sqlite" else None
        self.observe: Observe | None = None
        self.writer = GroupWriter(self) if group_commit else None
        # SQLite in a file: the quick reads' own read-only connection (``quick``).
        self._inline_url = _inline_url(self.engine) if self.dialect == "sqlite" else None
        self._inline: sa.Connection | None = None
        # SQLite in a file: write transactions on the loop's thread (store/inline.py).
        self._inline_writes = inline_writes and self._inline_url is not None
        self._inline_writer: InlineWriter | None = None
        self.inline_fallbacks = 0  # writes that went through aiosqlite: the lock was taken
        self._checkpoint: asyncio.Task[None] | None = None
        # PostgreSQL: the quick reads' asyncpg pool (``driver_pool``).
        self._driver_pool: asyncio.Future[asyncpg.Pool] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    def begin(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        """A write transaction: committed when the block ends, rolled back on an exception."""
        return self._begin(_use_case() if self.observe is not None else "")

    async def write(self, use_case: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``use_case(tx)`` in a write transaction, committed before it returns: with
        group commit (store/writer.py), in one transaction with the other writes queued
        meanwhile, each in its own savepoint; else in a transaction of its own."""
        name = getattr(use_case, "__qualname__", "write").split(".<locals>")[0]
        if self.writer is None:
            async with self._begin(name) as tx:
                return await use_case(tx)
        return await self.writer.run(use_case, name)

    def group_transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]:
        """The transaction of a group commit: its callbacks are the writer's to run."""
        return self._begin("", callbacks=False)

    @contextlib.asynccontextmanager
    async def quick(self) -> AsyncIterator[Rows]:
        """Where the hot reads run their short statements, each in a snapshot of its own
        (store/reads.py). SQLite in a file: a read-only connection used synchronously on
        this thread (WAL: it sees every commit made before it, and blocks no writer), with
        no hand-off to a driver thread, no pool checkout and no greenlet; else a pooled
        connection outside a transaction."""
        if self._inline_url is not None:
            if self._inline is None:
                self._inline = _inline_connection(self._inline_url)
                if self.counts is not None:
                    count_statements(self._inline.engine, self.counts)
            yield InlineRows(self._inline, self.counts)
            return
        if self.dialect == "postgresql":
            yield PoolRows(self, self.counts)
            return
        async with self.sqlalchemy_rows() as rows:
            yield rows

    @contextlib.asynccontextmanager
    async def sqlalchemy_rows(self) -> AsyncIterator[Rows]:
        """A pooled connection outside a transaction, through SQLAlchemy."""
        async with self._read("", snapshot=False) as tx:
            yield ConnRows(tx.conn)

    @property
    def sql_dialect(self) -> sa.Dialect:
        return self.engine.dialect

    async def driver_pool(self) -> asyncpg.Pool:
        """PostgreSQL: the quick reads' own asyncpg pool (opened on first use; opened
        again by the next read if opening failed)."""
        if self._driver_pool is None:
            self._driver_pool = asyncio.ensure_future(_open_driver_pool(self.engine))
        opening = self._driver_pool
        try:
            return await asyncio.shield(opening)
        except Exception:
            if self._driver_pool is opening and opening.done():
                self._driver_pool = None
            raise

    def read(self, *, snapshot: bool = True) -> contextlib.AbstractAsyncContextManager[Tx]:
        """A read transaction (nothing it does is committed). With ``snapshot=False`` no
        transaction is opened: each statement sees its own snapshot, and no BEGIN nor
        ROLLBACK goes to the database (for reads of one statement, or of statements that
        need not agree with each other)."""
        return self._read(_use_case() if self.observe is not None else "", snapshot)

    @contextlib.asynccontextmanager
    async def _begin(self, use_case: str, *, callbacks: bool = True) -> AsyncIterator[Tx]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                started = time.perf_counter()
                tx = Tx(conn, self.dialect)
                yield tx
        else:
            async with self._write_lock:
                trans = self._inline_begin()
                if trans is not None:
                    started = time.perf_counter()
                    inline = InlineConnection(self._writer_of_the_loop().conn)
                    tx = Tx(inline, self.dialect)  # type: ignore[arg-type]
                    try:
                        yield tx
                    except BaseException:
                        if trans.is_active:
                            trans.rollback()
                        raise
                    trans.commit()
                    if self._writer_of_the_loop().due_checkpoint():
                        self._checkpoint_soon()
                else:
                    async with self.engine.connect() as raw:
                        conn = await raw.execution_options(jobyard_write=True)
                        started = time.perf_counter()
                        async with conn.begin():
                            tx = Tx(conn, self.dialect)
                            yield tx
        if not callbacks:
            return
        if self.observe is not None:
            self.observe("write", use_case, time.perf_counter() - started)
        tx.run_after_commit()

    def write_engines(self) -> list[sa.Engine]:
        """The engines this database's writes run on (to listen for their statements):
        the async engine's, and on SQLite in a file the loop-thread writer's."""
        engines = [self.engine.sync_engine]
        if self._inline_writes:
            engines.append(self._writer_of_the_loop().engine)
        return engines

    def _writer_of_the_loop(self) -> InlineWriter:
        if self._inline_writer is None:
            assert self._inline_url is not None
            self._inline_writer = InlineWriter(self._inline_url, json_text, self.counts)
        return self._inline_writer

    def _checkpoint_soon(self) -> None:
        """Checkpoint the WAL through aiosqlite's thread (PASSIVE: it waits for nobody and
        nobody waits for it), unless one is running already."""
        if self._checkpoint is not None and not self._checkpoint.done():
            return

        async def checkpoint() -> None:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

        self._checkpoint = asyncio.get_running_loop().create_task(checkpoint())

    def _inline_begin(self) -> sa.RootTransaction | None:
        """A write transaction on the loop's thread (SQLite in a file, under the write
        lock), or None: not enabled, or another process holds SQLite's write lock."""
        if not self._inline_writes:
            return None
        trans = self._writer_of_the_loop().try_begin()
        if trans is None:
            self.inline_fallbacks += 1
        return trans

    @contextlib.asynccontextmanager
    async def _read(self, use_case: str, snapshot: bool) -> AsyncIterator[Tx]:
        conn = await self.engine.connect()
        started = time.perf_counter()
        try:
            if not snapshot:
                if self._write_lock is None:
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                else:
                    await conn.execution_options(jobyard_no_begin=True)
            yield Tx(conn, self.dialect)
        finally:
            await _close(conn)
        if self.observe is not None:
            self.observe("read", use_case, time.perf_counter() - started)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def migrate(self) -> None:
        from jobyard.store.migrate import upgrade

        async with self.engine.connect() as conn:
            await conn.run_sync(upgrade)
            await conn.commit()

    async def close(self) -> None:
        if self._checkpoint is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint
        if self._inline_writer is not None:
            writer, self._inline_writer = self._inline_writer, None
            writer.close()
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()
            inline.engine.dispose()
        if self._driver_pool is not None:
            opening, self._driver_pool = self._driver_pool, None
            with contextlib.suppress(Exception):
                await (await opening).close()
        await self.engine.dispose()


def _use_case() -> str:
    """The name of the function that asked for a transaction (two frames up: it called
    ``begin`` or ``read``)."""
    return sys._getframe(2).f_code.co_qualname


async def _close(conn: AsyncConnection) -> None:
    """Give a connection back to the pool. ``async with engine.connect()`` closes in a task
    of its own behind ``asyncio.shield`` (so that a cancellation cannot abandon it halfway):
    a task per request. That protection is kept for a task already being cancelled (server
    shutdown); otherwise the close is awaited in place, and a cancellation arriving during
    it makes the pool invalidate the connection instead of reusing it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        await conn.__aexit__(None, None, None)  # SQLAlchemy's shielded close
    else:
        await conn.close()


# Connections kept open per process. Beyond the pool, overflow connections are opened for a
# request and closed after it, which costs more than the request; the pool is sized for
# the concurrency one process serves (HTTP requests plus the background loops).
SQLITE_POOL = (64, 64)  # pool_size, max_overflow: a connection is a file handle and a thread
POSTGRESQL_POOL = (48, 16)  # each is a PostgreSQL backend process: bounded harder
# Statements each PostgreSQL connection keeps prepared (asyncpg's default is 100; lists of
# ids render one statement per length, and a fan-out's rounds use many lengths).
PREPARED_STATEMENTS = 500


def _make_engine(url: str, echo: bool) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        pool: dict[str, Any] = {}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            pool = {"pool_size": SQLITE_POOL[0], "max_overflow": SQLITE_POOL[1]}
        engine = create_async_engine(
            url,
            echo=echo,
            connect_args={"isolation_level": None, "timeout": 30},
            json_serializer=json_text,
            json_deserializer=orjson.loads,
            **pool,
        )
        _sqlite_pragmas(engine)
        return engine
    return create_async_engine(
        url,
        echo=echo,
        pool_size=POSTGRESQL_POOL[0],
        max_overflow=POSTGRESQL_POOL[1],
        # The connection returned last is taken first: the hot loops keep reusing a few
        # connections whose prepared statements are cached (asyncpg prepares per
        # connection), instead of walking all 48 and preparing each statement again.
        pool_use_lifo=True,
        connect_args={"prepared_statement_cache_size": PREPARED_STATEMENTS},
        pool_pre_ping=False,
        json_serializer=json_text,
        json_deserializer=orjson.loads,
    )


# Connections of the quick reads' asyncpg pool: each read holds one for one statement.
QUICK_POOL = 8


class _QuickConnection(asyncpg.Connection):  # type: ignore[misc]
    """A quick read leaves nothing on its connection (one statement, no transaction):
    nothing to reset when it goes back to the pool (asyncpg's reset is a round trip)."""

    def get_reset_query(self) -> str:
        return ""


async def _open_driver_pool(engine: AsyncEngine) -> asyncpg.Pool:
    """An asyncpg pool to the engine's database, with the engine's connection settings
    and JSON decoded as the engine decodes it (orjson)."""
    _, params = engine.dialect.create_connect_args(engine.url)
    for own in ("prepared_statement_cache_size", "prepared_statement_name_func"):
        params.pop(own, None)  # SQLAlchemy's, not asyncpg's

    async def codecs(conn: asyncpg.Connection) -> None:
        for name in ("json", "jsonb"):
            await conn.set_type_codec(
                name, encoder=json_text, decoder=orjson.loads, schema="pg_catalog"
            )

    pool = await asyncpg.create_pool(
        min_size=1,
        max_size=QUICK_POOL,
        connection_class=_QuickConnection,
        init=codecs,
        statement_cache_size=PREPARED_STATEMENTS,
        **params,
    )
    assert pool is not None
    return pool


def _inline_url(engine: AsyncEngine) -> str | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return engine.url.set(drivername="sqlite+pysqlite").render_as_string(hide_password=False)


def _inline_connection(url: str) -> sa.Connection:
    """A synchronous read-only SQLite connection in autocommit (no BEGIN: each statement
    reads the latest commit), for ``Database.quick``."""
    engine = loop_engine(url, ("query_only=ON", "busy_timeout=30000"))
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def json_text(value: Any) -> str:
    """JSON columns are written as the API reads them back (orjson): a value it could not
    render, such as an integer over 64 bits, fails the write and its transaction instead of
    being saved and failing every later read."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        for pragma in (*WRITE_PRAGMAS, "busy_timeout=30000"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("jobyard_no_begin", False):
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get("jobyard_write", False) else "BEGIN")

    # A ROLLBACK where no transaction is open (after a COMMIT, after a read without BEGIN,
    # the pool's reset on return) does nothing in SQLite, yet costs a hand-off to the
    # connection's thread: it is skipped, by the driver's own in_transaction flag.
    rollback = engine.dialect.do_rollback

    def do_rollback(dbapi_conn: Any) -> None:
        driver = getattr(dbapi_conn, "driver_connection", None)
        if getattr(driver, "in_transaction", True):
            rollback(dbapi_conn)

    engine.dialect.do_rollback = do_rollback  # type: ignore[method-assign,assignment]
