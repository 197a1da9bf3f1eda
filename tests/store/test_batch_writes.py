"""Store contract: the batch statements of the hot path (store/driver.py), sent as the
driver's own SQL, write what SQLAlchemy's statements wrote. On SQLite (the loop's writer
and aiosqlite's connection) and on PostgreSQL (asyncpg's executemany)."""

from __future__ import annotations

import datetime as dt

import pytest

from jobyard.domain.jobs import NodeRunStatus
from jobyard.domain.records import Job
from jobyard.service.context import Services
from jobyard.store import Database, Tx
from jobyard.store.jobs import RunWrite
from tests.store.event_rows import run_moves
from tests.store.test_events_bulk import T0
from tests.store.test_insert_many import job_values

T1 = T0 + dt.timedelta(seconds=5)
T2 = T0 + dt.timedelta(seconds=9)


async def _job_with_runs(tx: Tx, count: int) -> Job:
    org = await tx.accounts.insert_org("a", "A", T0)
    job = await tx.jobs.insert(job_values(org.id, "running"))
    await tx.jobs.insert_runs(job, [f"n{i:04d}" for i in range(count)], T0)
    return job


async def _moves(db: Database, count: int) -> None:
    async with db.begin() as tx:
        job = await _job_with_runs(tx, count)
        runs = await tx.jobs.runs(job.id)
        ready = [RunWrite(r.id, "new", "ready", None, None, T0, None, None) for r in runs]
        assert await tx.jobs.move_runs(ready) is True
        running = [RunWrite(r.id, "ready", "running", None, None, T1, T1, None) for r in runs]
        assert await tx.jobs.move_runs(running) is True
        # Every other run ends; the others' compare-and-set fails (they are not "ready").
        ended = [
            RunWrite(r.id, "running" if i % 2 else "ready", "failed", 3, "exit code 3", T2, T2, T2)
            for i, r in enumerate(runs)
        ]
        assert await tx.jobs.move_runs(ended) is True
        # One row: whether it moved.
        assert await tx.jobs.move_runs([ended[0]]) is False
        stored = await tx.jobs.runs(job.id)
    for i, run in enumerate(stored):
        assert run.updated_at == (T2 if i % 2 else T1)
        assert run.started_at == T1  # set once, not moved by the end
        if i % 2:
            assert (run.status, run.exit_code, run.reason) == (
                NodeRunStatus.FAILED,
                3,
                "exit code 3",
            )
            assert run.finished_at == T2
        else:
            assert (run.status, run.exit_code, run.reason, run.finished_at) == (
                NodeRunStatus.RUNNING,
                None,
                None,
                None,
            )


@pytest.mark.parametrize("count", [2, 300])
async def test_runs_move_in_one_batch(any_svc: Services, count: int) -> None:
    await _moves(any_svc.db, count)


async def test_runs_move_in_one_batch_through_aiosqlite(sqlite_url: str) -> None:
    db = Database(sqlite_url, inline_writes=False)
    try:
        await _moves(db, 300)
    finally:
        await db.close()


async def test_events_appended_in_one_batch_through_aiosqlite(sqlite_url: str) -> None:
    db = Database(sqlite_url, inline_writes=False)
    try:
        async with db.begin() as tx:
            org = await tx.accounts.insert_org("a", "A", T0)
            rows = run_moves(org.id, 1, 200, T1)
            rows[2]["data"] = None
            await tx.events.append_many(rows)
            ids = await tx.events.append_many_ids(rows[:60])
        async with db.read() as tx:
            stored = await tx.events.of_job(1, limit=1000)
    finally:
        await db.close()
    assert len(stored) == 260 and [e.id for e in stored[200:]] == ids
    assert [e.node_name for e in stored[:3]] == ["n0", "n1", "n2"]
    assert stored[1].data == {"exit_code": 0} and stored[2].data is None
    assert {e.created_at for e in stored} == {T1}
