"""Each organization's number of jobs, kept by the database (migration 0010_org_job_counts):
equal to counting its jobs after inserts and deletes of one row or many, by any way in;
filled from the jobs already there when the migration runs; the job list's total."""

from __future__ import annotations

import importlib
from typing import Any

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from jobyard.service.context import Services
from jobyard.store import reads
from jobyard.store.jobs import JobFilter
from jobyard.store.schema import jobs, org_job_counts, organizations
from tests.store.test_jobs_store import insert, job_row, world

MIGRATION = importlib.import_module("jobyard.store.migrations.versions.0010_org_job_counts")


async def kept_and_counted(svc: Services) -> tuple[dict[int, int], dict[int, int]]:
    async with svc.db.read() as tx:
        kept = {
            r[0]: r[1]
            for r in await tx.conn.execute(
                sa.select(org_job_counts.c.org_id, org_job_counts.c.jobs)
            )
            if r[1]  # an organization whose jobs all went may keep a row of 0
        }
        counted = {
            r[0]: r[1]
            for r in await tx.conn.execute(
                sa.select(jobs.c.org_id, sa.func.count()).group_by(jobs.c.org_id)
            )
        }
    return kept, counted


async def test_the_count_follows_every_insert_and_delete(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        made = [await insert(tx, job_row(w.org, w.ann), ["a"]) for _ in range(5)]
        await insert(tx, job_row(w.other_org, None), [])
    kept, counted = await kept_and_counted(any_svc)
    assert kept == counted == {w.org: 5, w.other_org: 1}

    # Many rows in one statement, then deletes of one and of many, by plain SQL.
    async with any_svc.db.begin() as tx:
        await tx.conn.execute(jobs.insert(), [job_row(w.other_org, None) for _ in range(7)])
        await tx.conn.execute(jobs.delete().where(jobs.c.id == made[0].id))
        await tx.conn.execute(jobs.delete().where(jobs.c.id.in_([j.id for j in made[1:3]])))
    kept, counted = await kept_and_counted(any_svc)
    assert kept == counted == {w.org: 2, w.other_org: 8}

    # A rolled-back insert counts nothing.
    try:
        async with any_svc.db.begin() as tx:
            await tx.conn.execute(jobs.insert(), [job_row(w.org, None) for _ in range(3)])
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    assert await kept_and_counted(any_svc) == (counted, counted)

    # The list's total is the kept count.
    async with any_svc.db.quick() as rows:
        page = await reads.page_with_runs(rows, w.org, JobFilter(), limit=1)
    assert page.total == 2 and len(page.items) == 1

    # An organization deleted takes its jobs and its count with it.
    async with any_svc.db.begin() as tx:
        await tx.conn.execute(organizations.delete().where(organizations.c.id == w.other_org))
    kept, counted = await kept_and_counted(any_svc)
    assert kept == counted == {w.org: 2}


async def test_the_migration_counts_the_jobs_already_there(any_svc: Services) -> None:
    w = await world(any_svc)

    def migrate(conn: sa.Connection, step: Any) -> None:
        with Operations.context(MigrationContext.configure(conn)):
            step()

    async with any_svc.db.engine.begin() as conn:
        await conn.run_sync(migrate, MIGRATION.downgrade)
    async with any_svc.db.begin() as tx:  # no count kept meanwhile
        for _ in range(4):
            await insert(tx, job_row(w.org, w.ann), [])
        await insert(tx, job_row(w.other_org, None), [])
    async with any_svc.db.engine.begin() as conn:
        await conn.run_sync(migrate, MIGRATION.upgrade)
    kept, counted = await kept_and_counted(any_svc)
    assert kept == counted == {w.org: 4, w.other_org: 1}
    async with any_svc.db.begin() as tx:  # and kept from then on
        await insert(tx, job_row(w.org, w.ann), [])
    kept, counted = await kept_and_counted(any_svc)
    assert kept == counted == {w.org: 5, w.other_org: 1}
