"""Group commit (store/writer.py) on SQLite and PostgreSQL: concurrent writes share
transactions, each stays all-or-nothing, and callers are answered after the commit."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import sqlalchemy as sa

from jobyard.domain.errors import Invalid
from jobyard.store import Database, Tx, writer
from jobyard.store.schema import organizations

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url, count_statements=True)
    yield database
    await database.close()


def _adds(
    name: str, *, fail: bool = False, log: list[str] | None = None
) -> Callable[[Tx], Awaitable[str]]:
    async def add(tx: Tx) -> str:
        await tx.conn.execute(
            organizations.insert().values(name=name, display_name=name, created_at=NOW)
        )
        tx.after_commit(lambda: log.append(name) if log is not None else None)
        if fail:
            raise Invalid(f"{name} refused after its write")
        return name

    return add


async def _names(db: Database) -> set[str]:
    async with db.read() as tx:
        return set((await tx.conn.execute(sa.select(organizations.c.name))).scalars())


async def test_concurrent_writes_share_transactions(db: Database) -> None:
    assert db.writer is not None and db.counts is not None
    log: list[str] = []
    names = [f"org{i}" for i in range(40)]
    results = await asyncio.gather(*(db.write(_adds(n, log=log)) for n in names))
    assert results == names
    assert await _names(db) == set(names)
    assert sorted(log) == sorted(names)  # every caller's callbacks ran
    assert db.writer.use_cases == 40
    assert db.writer.batches < 40  # the first runs alone, the rest queued behind it
    assert db.counts.commits == db.writer.batches


async def test_a_failing_use_case_fails_alone(db: Database) -> None:
    log: list[str] = []
    outcomes = await asyncio.gather(
        db.write(_adds("a", log=log)),
        db.write(_adds("b", log=log)),
        db.write(_adds("bad", fail=True, log=log)),
        db.write(_adds("c", log=log)),
        return_exceptions=True,
    )
    assert outcomes[:2] == ["a", "b"] and outcomes[3] == "c"
    assert isinstance(outcomes[2], Invalid)
    assert await _names(db) == {"a", "b", "c"}  # its row rolled back to its savepoint
    assert sorted(log) == ["a", "b", "c"]  # its after-commit callback never ran


async def test_a_database_error_fails_alone(db: Database) -> None:
    """A statement the database refuses (a duplicate name) inside a batch: PostgreSQL's
    transaction goes on after the rollback to the savepoint."""
    outcomes = await asyncio.gather(
        db.write(_adds("x")),
        db.write(_adds("y")),
        db.write(_adds("x")),  # duplicate
        db.write(_adds("z")),
        return_exceptions=True,
    )
    assert outcomes[0] == "x" and outcomes[1] == "y" and outcomes[3] == "z"
    assert isinstance(outcomes[2], sa.exc.IntegrityError)
    assert await _names(db) == {"x", "y", "z"}


async def test_a_lone_failure_keeps_nothing(db: Database) -> None:
    with pytest.raises(Invalid):
        await db.write(_adds("alone", fail=True))
    assert await _names(db) == set()


async def test_a_caller_cancelled_while_queued_is_not_run(db: Database) -> None:
    first = asyncio.ensure_future(db.write(_adds("first")))
    queued = asyncio.ensure_future(db.write(_adds("dropped")))
    await asyncio.sleep(0)  # both queued, the writer not started yet
    queued.cancel()
    assert await first == "first"
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert await _names(db) == {"first"}


async def test_without_group_commit_each_write_is_its_own_transaction(db_url: str) -> None:
    db = Database(db_url, count_statements=True, group_commit=False)
    try:
        assert db.writer is None and db.counts is not None
        await asyncio.gather(*(db.write(_adds(f"o{i}")) for i in range(5)))
        assert db.counts.commits == 5
        assert len(await _names(db)) == 5
    finally:
        await db.close()


class _Conflict(Exception):
    """What the driver raises for a deadlock's victim (its SQLSTATE is what counts)."""

    sqlstate = "40P01"


def _conflicting(name: str, conflicts: int, tries: list[str]) -> Callable[[Tx], Awaitable[str]]:
    """A use case that writes, then is chosen as a deadlock's victim ``conflicts`` times."""
    add = _adds(name)

    async def use_case(tx: Tx) -> str:
        tries.append(name)
        await add(tx)
        if tries.count(name) <= conflicts:
            raise sa.exc.OperationalError("UPDATE nodes ...", {}, _Conflict())
        return name

    return use_case


async def test_a_deadlock_victim_runs_again(db: Database) -> None:
    tries: list[str] = []
    # Alone: its transaction is run again; in a batch: from its savepoint.
    assert await db.write(_conflicting("alone", 2, tries)) == "alone"
    outcomes = await asyncio.gather(
        db.write(_adds("p")),
        db.write(_conflicting("victim", 1, tries)),
        db.write(_adds("q")),
    )
    assert outcomes == ["p", "victim", "q"]
    # The victim: once in the batch without savepoints, once more from its savepoint.
    assert tries.count("alone") == 3 and tries.count("victim") == 2
    assert await _names(db) == {"alone", "p", "victim", "q"}  # each written once


async def test_a_use_case_that_keeps_conflicting_fails_alone(db: Database) -> None:
    tries: list[str] = []
    outcomes = await asyncio.gather(
        db.write(_adds("kept")),
        db.write(_conflicting("stuck", 99, tries)),
        return_exceptions=True,
    )
    assert outcomes[0] == "kept"
    assert isinstance(outcomes[1], sa.exc.OperationalError)
    # Once in the batch run without savepoints, then from its savepoint with the retries.
    assert tries.count("stuck") == 2 + writer.RETRIES
    assert await _names(db) == {"kept"}


async def test_a_batch_that_succeeds_takes_no_savepoints(db: Database) -> None:
    """Savepoints are taken only when a batch has to run again after a failure: a
    successful batch costs its use cases' statements and one per transaction."""
    assert db.writer is not None and db.counts is not None
    await db.write(_adds("warm"))
    before_statements, before_batches = db.counts.statements, db.writer.batches
    await asyncio.gather(*(db.write(_adds(f"s{i}")) for i in range(30)))
    statements = db.counts.statements - before_statements
    batches = db.writer.batches - before_batches
    assert batches < 30
    # 30 inserts, and per transaction SQLite's BEGIN or PostgreSQL's check (no SAVEPOINT
    # and RELEASE per use case: 60 more).
    assert statements <= 30 + batches, (statements, batches)


def _swallowing(name: str) -> Callable[[Tx], Awaitable[str]]:
    """A use case that meets a database error (a duplicate) and carries on without it."""

    async def use_case(tx: Tx) -> str:
        try:
            await tx.conn.execute(
                organizations.insert().values(name=name, display_name=name, created_at=NOW)
            )
        except sa.exc.IntegrityError:
            return "swallowed"
        return name

    return use_case


async def test_a_use_case_that_swallows_a_database_error_loses_no_one_elses_write(
    db: Database,
) -> None:
    """Last of its batch, a use case catches the database's refusal itself. PostgreSQL has
    aborted the transaction by then: committing it as it is would roll everyone's writes
    back in silence. The batch is checked and run again, each use case in its savepoint."""
    await db.write(_adds("dup"))
    outcomes = await asyncio.gather(
        db.write(_adds("blocker")),  # runs alone: the next three queue behind it
        db.write(_adds("m")),
        db.write(_adds("n")),
        db.write(_swallowing("dup")),
        return_exceptions=True,
    )
    assert outcomes[:3] == ["blocker", "m", "n"]
    # SQLite goes on after the refused statement; PostgreSQL refuses that use case's release.
    assert outcomes[3] == "swallowed" or isinstance(outcomes[3], sa.exc.DBAPIError)
    assert await _names(db) == {"dup", "blocker", "m", "n"}
