"""The one-statement reads of the jobs API (store/reads.py) against the repository's reads,
on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from jobyard.domain.records import Job, NodeRun
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database, reads
from jobyard.store.jobs import JobFilter
from tests.store.test_jobs_store import T0, insert, job_row, world


async def test_job_with_runs_is_get_and_runs(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        three = await insert(tx, job_row(w.org, w.ann, env={"A": "1"}), ["n2", "n1", "n3"])
        none = await insert(tx, job_row(w.org, w.ann, status="draft"), [])
        foreign = await insert(tx, job_row(w.other_org, None), ["n1"])
    for job in (three, none):
        async with any_svc.db.read() as tx:
            want = (await tx.jobs.get(w.org, job.id), await tx.jobs.runs(job.id))
        async with any_svc.db.quick() as rows:
            assert await reads.job_with_runs(rows, w.org, job.id) == want
    async with any_svc.db.quick() as rows:
        found = await reads.job_with_runs(rows, w.org, three.id)
        assert found is not None
        assert [r.node_name for r in found[1]] == ["n1", "n2", "n3"]
        # Another organization's job, and a job that does not exist, are not found.
        assert await reads.job_with_runs(rows, w.org, foreign.id) is None
        assert await reads.job_with_runs(rows, w.org, foreign.id + 100) is None


async def test_page_past_the_end_still_counts(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        for _ in range(3):
            await insert(tx, job_row(w.org, w.ann), ["a", "b"])
    async with any_svc.db.quick() as rows:
        page = await reads.page_with_runs(rows, w.org, JobFilter(), offset=10, limit=5)
        assert (page.items, page.total) == ([], 3)
        page = await reads.page_with_runs(rows, w.org, JobFilter(), offset=2, limit=5)
        assert page.total == 3
        assert [len(runs) for _, runs in page.items] == [2]


async def test_page_with_jobs_shared_from_another_organization(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        own = await insert(tx, job_row(w.org, w.ann), ["a"])
        shared = await insert(tx, job_row(w.other_org, None, created_at=T0), ["x", "y"])
        await insert(tx, job_row(w.other_org, None), ["z"])
        await tx.notify.shares.put(w.other_org, shared.id, w.bob, None, "", T0)
    flt = JobFilter(shared_with=w.bob)
    async with any_svc.db.quick() as rows:
        page = await reads.page_with_runs(rows, w.org, flt, sort="id", descending=False)
    assert [(j.id, [r.node_name for r in runs]) for j, runs in page.items] == [
        (own.id, ["a"]),
        (shared.id, ["x", "y"]),
    ]
    assert page.total == 2


def test_the_plain_list_is_recognized_whatever_the_empty_statuses() -> None:
    assert reads._unfiltered(JobFilter())
    assert reads._unfiltered(JobFilter(statuses=[], shared_with=7))
    assert not reads._unfiltered(JobFilter(statuses=["new"]))
    assert not reads._unfiltered(JobFilter(node="a"))


async def test_quick_reads_see_each_commit_and_write_nothing(any_svc: Services) -> None:
    """On SQLite the quick reads run on a connection of their own (read-only, on the event
    loop's thread): a job committed just before is there, and a write is refused."""
    w = await world(any_svc)
    for n in range(3):
        async with any_svc.db.begin() as tx:
            job = await insert(tx, job_row(w.org, w.ann), ["a"])
        async with any_svc.db.quick() as rows:
            found = await reads.job_with_runs(rows, w.org, job.id)
            assert found is not None and found[0].id == job.id
            page = await reads.page_with_runs(rows, w.org, JobFilter())
            assert page.total == n + 1
    if any_svc.db.is_sqlite:
        async with any_svc.db.quick() as rows:
            assert isinstance(rows, reads.InlineRows)
            with pytest.raises(sa.exc.OperationalError, match="readonly"):
                await rows.all(sa.text("DELETE FROM jobs"))


async def test_the_plain_page_walks_the_index_on_postgresql(pg_url: str) -> None:
    """The default list (newest first) reads its page from ix_jobs_org_created backwards on
    PostgreSQL, instead of sorting every job of the organization for each page."""
    q = reads._page_statement(reads.job_scope(reads._ORG, None), "created_at", True)
    sql = str(q.compile(dialect=postgresql.asyncpg.dialect()))  # type: ignore[attr-defined]
    conn = await asyncpg.connect(pg_url.replace("+asyncpg", ""))
    try:
        org = await conn.fetchval(
            "INSERT INTO organizations (name, display_name, created_at) "
            "VALUES ('o', 'o', now()) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO jobs (org_id, command, target, quorum, env, status, meta, created_at,"
            " updated_at) SELECT $1, 'true', '{}', '100%', '{}', 'voting', '{}',"
            " now() - i * interval '1 second', now() FROM generate_series(1, 3000) i",
            org,
        )
        await conn.execute("ANALYZE jobs")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, org, 20, 0))
    finally:
        await conn.close()
    assert "Index Scan Backward using ix_jobs_org_created" in plan, plan
    assert "NULLS LAST" not in plan, plan


def test_records_take_the_columns_in_order() -> None:
    """Rows become records positionally: the records' fields are the tables' columns."""
    assert tuple(f.name for f in dataclasses.fields(Job)) == reads.JOB_KEYS
    assert tuple(f.name for f in dataclasses.fields(NodeRun)) == reads.RUN_KEYS


async def test_postgresql_quick_reads_go_to_the_driver_and_read_the_same(pg_url: str) -> None:
    """On PostgreSQL the statements built once are sent as compiled SQL to asyncpg (no
    SQLAlchemy execution: its statement events do not fire) and give the same records."""
    db = Database(pg_url, count_statements=True)
    svc = Services(db=db, settings=Settings())
    try:
        w = await world(svc)
        async with db.begin() as tx:
            job = await insert(tx, job_row(w.org, w.ann, env={"A": "1"}), ["n2", "n1"])
            await insert(tx, job_row(w.org, w.ann), ["n3"])
        fired: list[str] = []
        sa.event.listen(
            db.engine.sync_engine, "before_cursor_execute", lambda *a: fired.append("x")
        )
        assert db.counts is not None
        before = db.counts.statements
        async with db.quick() as rows:
            assert isinstance(rows, reads.PoolRows)
            got = await reads.job_with_runs(rows, w.org, job.id)
            page = await reads.page_with_runs(rows, w.org, JobFilter(), limit=10)
            shared = await reads.has_shares(rows, w.ann)
        assert fired == [] and db.counts.statements - before == 3
        async with db.begin() as tx:  # the same through SQLAlchemy
            slow = reads.ConnRows(tx.conn)
            assert got == await reads.job_with_runs(slow, w.org, job.id)
            assert page == await reads.page_with_runs(slow, w.org, JobFilter(), limit=10)
            assert shared is await reads.has_shares(slow, w.ann) is False
        assert got is not None and [r.node_name for r in got[1]] == ["n1", "n2"]
        assert got[0].env == {"A": "1"} and got[0].created_at.tzinfo is not None
    finally:
        await db.close()


async def test_a_job_read_finds_its_runs_by_the_job_on_sqlite(svc: Services) -> None:
    """SQLite (no statistics gathered) finds a job's runs through the (job_id, node_name)
    index, not by walking every run of the organization."""
    compiled = reads.JOB_WITH_RUNS.compile(dialect=sqlite.dialect())
    values = [
        {"org_id": 1, "job_id": 1}.get(n, compiled.params.get(n))
        for n in compiled.positiontup or []
    ]
    async with svc.db.read() as tx:
        plan = [
            r[-1]
            for r in await tx.conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + str(compiled), tuple(values)
            )
        ]
    runs = [step for step in plan if "node_runs" in step]
    assert runs and all("(job_id=?)" in step for step in runs), plan
