"""Runs of chained stacks and the job of each step they started."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.chains import StackRun, StackRunStatus, StackRunStep, Step
from jobyard.domain.jobs import JOB_TERMINAL
from jobyard.domain.records import Page
from jobyard.store.schema import jobs
from jobyard.store.tasks_schema import stack_run_steps, stack_runs


def _run(row: sa.RowMapping) -> StackRun:
    data = dict(row)
    for key in ("env", "target"):
        data.pop(key)
    data["status"] = StackRunStatus(data["status"])
    data["steps"] = tuple(Step.from_json(s) for s in data["steps"])
    data["on_failure"] = Step.from_json(data["on_failure"]) if data["on_failure"] else None
    return StackRun(**data)


class StackRunsRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> StackRun:
        q = stack_runs.insert().values(**values).returning(*stack_runs.c)
        return _run((await self.conn.execute(q)).mappings().one())

    async def get(
        self, org_id: int | None, run_id: int, *, for_update: bool = False
    ) -> StackRun | None:
        q = stack_runs.select().where(stack_runs.c.id == run_id)
        if org_id is not None:
            q = q.where(stack_runs.c.org_id == org_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _run(row)

    async def where(self, run_id: int) -> tuple[dict[str, Any], dict[str, str]]:
        """The run's target and environment (the stack's, when the run started)."""
        q = sa.select(stack_runs.c.target, stack_runs.c.env).where(stack_runs.c.id == run_id)
        target, env = (await self.conn.execute(q)).one()
        return dict(target), dict(env)

    async def page(
        self, org_id: int, offset: int, limit: int, stack_id: int | None = None
    ) -> Page[StackRun]:
        where = stack_runs.c.org_id == org_id
        if stack_id is not None:
            where = sa.and_(where, stack_runs.c.stack_id == stack_id)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(stack_runs).where(where))
        ).scalar_one()
        q = (
            stack_runs.select()
            .where(where)
            .order_by(stack_runs.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return Page([_run(r) for r in (await self.conn.execute(q)).mappings()], total)

    async def finish(
        self, run_id: int, status: StackRunStatus, reason: str | None, now: Any
    ) -> bool:
        """Compare-and-set from running; False when the run had ended already."""
        q = (
            stack_runs.update()
            .where(
                stack_runs.c.id == run_id,
                stack_runs.c.status == StackRunStatus.RUNNING.value,
            )
            .values(status=status.value, reason=reason, updated_at=now, finished_at=now)
        )
        return bool((await self.conn.execute(q)).rowcount)

    async def set_reason(self, run_id: int, reason: str) -> None:
        await self.conn.execute(
            stack_runs.update().where(stack_runs.c.id == run_id).values(reason=reason)
        )

    async def claim_step(self, run_id: int, idx: int, job_id: int, now: Any) -> bool:
        """Record the job of step ``idx``; False if that step was started already."""
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        q = (
            insert(stack_run_steps)
            .values(stack_run_id=run_id, idx=idx, job_id=job_id, created_at=now)
            .on_conflict_do_nothing(index_elements=["stack_run_id", "idx"])
            .returning(stack_run_steps.c.idx)
        )
        return (await self.conn.execute(q)).first() is not None

    async def move_step(self, run_id: int, idx: int, old_job: int, new_job: int) -> bool:
        """Step ``idx`` now waits for ``new_job`` (a retry of ``old_job``); compare-and-set."""
        q = (
            stack_run_steps.update()
            .where(
                stack_run_steps.c.stack_run_id == run_id,
                stack_run_steps.c.idx == idx,
                stack_run_steps.c.job_id == old_job,
            )
            .values(job_id=new_job)
        )
        return bool((await self.conn.execute(q)).rowcount)

    async def steps(self, run_id: int) -> list[StackRunStep]:
        q = (
            stack_run_steps.select()
            .where(stack_run_steps.c.stack_run_id == run_id)
            .order_by(stack_run_steps.c.idx)
        )
        return [StackRunStep(**r) for r in (await self.conn.execute(q)).mappings()]

    async def step_of_job(self, job_id: int) -> StackRunStep | None:
        q = stack_run_steps.select().where(stack_run_steps.c.job_id == job_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else StackRunStep(**row)

    async def stalled(self, limit: int) -> list[tuple[int, int]]:
        """Running runs whose last started step's job has ended: (run id, job id).

        The observer advances a chain in the transaction that ends a step's job; this finds
        the runs it could not advance (a job ended by a path without observers), so a sweep
        can finish the work.
        """
        last = (
            sa.select(
                stack_run_steps.c.stack_run_id.label("run_id"),
                sa.func.max(stack_run_steps.c.idx).label("idx"),
            )
            .group_by(stack_run_steps.c.stack_run_id)
            .subquery()
        )
        q = (
            sa.select(stack_runs.c.id, stack_run_steps.c.job_id)
            .select_from(
                stack_runs.join(last, last.c.run_id == stack_runs.c.id)
                .join(
                    stack_run_steps,
                    sa.and_(
                        stack_run_steps.c.stack_run_id == last.c.run_id,
                        stack_run_steps.c.idx == last.c.idx,
                    ),
                )
                .join(jobs, jobs.c.id == stack_run_steps.c.job_id, isouter=True)
            )
            .where(
                stack_runs.c.status == StackRunStatus.RUNNING.value,
                sa.or_(
                    jobs.c.id.is_(None),
                    jobs.c.status.in_([s.value for s in JOB_TERMINAL]),
                ),
            )
            .limit(limit)
        )
        return [(r, j) for r, j in (await self.conn.execute(q)).all()]
