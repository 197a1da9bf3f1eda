"""Tasks, and the task runs that say where a job came from and what it waits for."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JOB_TERMINAL, JobStatus
from jobyard.domain.policies import ConcurrencyPolicy, RetryPolicy
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Page
from jobyard.domain.targets import Target
from jobyard.domain.tasks import (
    Argument,
    Hold,
    InputRequest,
    InputStatus,
    Task,
    TaskRun,
    TaskSpec,
    TaskType,
)
from jobyard.store.schema import jobs
from jobyard.store.tasks_schema import input_requests, stacks, task_runs, tasks, triggers

# Jobs that hold a concurrency slot: dispatched and not finished.
DISPATCHED = (JobStatus.NEW.value, JobStatus.VOTING.value, JobStatus.RUNNING.value)


def task_values(spec: TaskSpec) -> dict[str, Any]:
    """The task-table columns of a spec."""
    return {
        "name": spec.name,
        "type": spec.type.value,
        "description": spec.description,
        "command": spec.command,
        "argv": list(spec.argv) if spec.argv is not None else None,
        "target": spec.target.as_json() if spec.target is not None else None,
        "quorum": spec.quorum.render(),
        "run_timeout": spec.run_timeout,
        "env": dict(spec.env),
        "dir": spec.dir,
        "arguments": [a.as_json() for a in spec.arguments],
        "approvers": list(spec.approvers),
        "approve_label": spec.approve_label,
        "reject_label": spec.reject_label,
        "allow_self_approval": spec.allow_self_approval,
        "message": spec.message,
        "recipients": list(spec.recipients),
        "cancellable": spec.cancellable,
        "hold_timeout": spec.hold_timeout,
        "retry": spec.retry.as_json(),
        "concurrency": spec.concurrency.as_json(),
    }


def _task(row: sa.RowMapping) -> Task:
    spec = TaskSpec(
        name=row["name"],
        type=TaskType(row["type"]),
        description=row["description"],
        command=row["command"],
        argv=tuple(row["argv"]) if row["argv"] is not None else None,
        target=Target.from_json(row["target"]) if row["target"] else None,
        quorum=Quorum.parse(row["quorum"]),
        run_timeout=row["run_timeout"],
        env=dict(row["env"]),
        dir=row["dir"],
        arguments=tuple(Argument.from_json(a) for a in row["arguments"]),
        approvers=tuple(row["approvers"]),
        approve_label=row["approve_label"],
        reject_label=row["reject_label"],
        allow_self_approval=row["allow_self_approval"],
        message=row["message"],
        recipients=tuple(row["recipients"]),
        cancellable=row["cancellable"],
        hold_timeout=row["hold_timeout"],
        retry=RetryPolicy.from_json(row["retry"]),
        concurrency=ConcurrencyPolicy.from_json(row["concurrency"]),
    )
    return Task(
        id=row["id"],
        org_id=row["org_id"],
        spec=spec,
        secret_prefix=row["secret_prefix"],
        secret_rotated_at=row["secret_rotated_at"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _run(row: sa.RowMapping) -> TaskRun:
    data = dict(row)
    data["hold"] = Hold(data["hold"]) if data["hold"] else None
    return TaskRun(**data)


def _input(row: sa.RowMapping) -> InputRequest:
    data = dict(row)
    data["status"] = InputStatus(data["status"])
    return InputRequest(**data)


class TasksRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> Task:
        q = tasks.insert().values(**values).returning(*tasks.c)
        return _task((await self.conn.execute(q)).mappings().one())

    async def update(self, task_id: int, values: dict[str, Any]) -> Task:
        q = tasks.update().where(tasks.c.id == task_id).values(**values).returning(*tasks.c)
        return _task((await self.conn.execute(q)).mappings().one())

    async def get(self, org_id: int, task_id: int, *, for_update: bool = False) -> Task | None:
        """One task of an organization; ``for_update`` serializes its runs' admissions (PG)."""
        q = tasks.select().where(tasks.c.org_id == org_id, tasks.c.id == task_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _task(row)

    async def by_name(self, org_id: int, name: str) -> Task | None:
        q = tasks.select().where(tasks.c.org_id == org_id, tasks.c.name == name)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _task(row)

    async def by_secret_hash(self, secret_hash: str) -> Task | None:
        """The task whose trigger secret hashes to this (the hash is unique)."""
        q = tasks.select().where(tasks.c.secret_hash == secret_hash)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _task(row)

    async def secret_hash_of(self, task_id: int) -> str | None:
        q = sa.select(tasks.c.secret_hash).where(tasks.c.id == task_id)
        return (await self.conn.execute(q)).scalar()

    async def page(
        self, org_id: int, *, type: str | None = None, offset: int = 0, limit: int = 20
    ) -> Page[Task]:
        """Tasks by name."""
        where = tasks.c.org_id == org_id
        if type:
            where = sa.and_(where, tasks.c.type == type)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(tasks).where(where))
        ).scalar_one()
        q = tasks.select().where(where).order_by(tasks.c.name, tasks.c.id)
        rows = (await self.conn.execute(q.offset(offset).limit(limit))).mappings()
        return Page([_task(r) for r in rows], total)

    async def delete(self, task_id: int) -> None:
        await self.conn.execute(tasks.delete().where(tasks.c.id == task_id))

    async def users_of(self, task_id: int) -> list[str]:
        """Names of the stacks and triggers that use this task."""
        names = [
            f"stack {n!r}"
            for n in (
                await self.conn.execute(sa.select(stacks.c.name).where(stacks.c.task_id == task_id))
            ).scalars()
        ]
        names += [
            f"trigger {n or i}"
            for i, n in (
                await self.conn.execute(
                    sa.select(triggers.c.id, triggers.c.name).where(triggers.c.task_id == task_id)
                )
            ).all()
        ]
        return names


class TaskRunsRepo:
    """``task_runs`` and ``input_requests``: per-job bookkeeping of runs made from tasks."""

    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> TaskRun:
        q = task_runs.insert().values(**values).returning(*task_runs.c)
        return _run((await self.conn.execute(q)).mappings().one())

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.conn.execute(task_runs.insert(), list(rows))

    async def get(self, job_id: int) -> TaskRun | None:
        q = task_runs.select().where(task_runs.c.job_id == job_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _run(row)

    async def set_hold(
        self, job_id: int, hold: Hold | None, release_at: dt.datetime | None = None
    ) -> None:
        await self.conn.execute(
            task_runs.update()
            .where(task_runs.c.job_id == job_id)
            .values(hold=hold.value if hold else None, release_at=release_at)
        )

    def _scope(self, task_id: int | None, trigger_id: int | None) -> sa.ColumnElement[bool]:
        if task_id is not None:
            return task_runs.c.task_id == task_id
        return task_runs.c.trigger_id == trigger_id

    async def running(
        self, org_id: int, *, task_id: int | None = None, trigger_id: int | None = None
    ) -> list[int]:
        """Ids of dispatched, unfinished jobs of a task (or trigger), oldest first."""
        col = jobs.c.task_id if task_id is not None else jobs.c.trigger_id
        q = (
            sa.select(jobs.c.id)
            .where(
                jobs.c.org_id == org_id,
                jobs.c.status.in_(DISPATCHED),
                col == (task_id if task_id is not None else trigger_id),
            )
            .order_by(jobs.c.id)
        )
        return list((await self.conn.execute(q)).scalars())

    async def waiting(
        self,
        hold: Hold,
        *,
        task_id: int | None = None,
        trigger_id: int | None = None,
        limit: int | None = None,
    ) -> list[TaskRun]:
        """Runs of a task (or trigger) held for ``hold``, oldest first."""
        q = (
            task_runs.select()
            .where(self._scope(task_id, trigger_id), task_runs.c.hold == hold.value)
            .order_by(task_runs.c.job_id)
        )
        if limit is not None:
            q = q.limit(limit)
        return [_run(r) for r in (await self.conn.execute(q)).mappings()]

    async def queued(self, limit: int) -> list[TaskRun]:
        """Runs waiting in a concurrency queue, first come first served."""
        q = (
            task_runs.select()
            .where(task_runs.c.hold == Hold.QUEUE.value)
            .order_by(task_runs.c.job_id)
            .limit(limit)
        )
        return [_run(r) for r in (await self.conn.execute(q)).mappings()]

    async def due(self, now: dt.datetime, holds: Sequence[Hold], limit: int) -> list[TaskRun]:
        """Held runs whose release time has come (a retry's backoff, a hold's timeout)."""
        q = (
            task_runs.select()
            .where(
                task_runs.c.hold.in_([h.value for h in holds]),
                task_runs.c.release_at.is_not(None),
                task_runs.c.release_at <= now,
            )
            .order_by(task_runs.c.release_at)
            .limit(limit)
        )
        return [_run(r) for r in (await self.conn.execute(q)).mappings()]

    async def next_release_any(self) -> dt.datetime | None:
        """The soonest release time of a held run or deadline of an open input request."""
        held = sa.select(sa.func.min(task_runs.c.release_at)).where(task_runs.c.hold.is_not(None))
        asked = sa.select(sa.func.min(input_requests.c.deadline)).where(
            input_requests.c.status == InputStatus.OPEN.value
        )
        found = [
            t
            for t in [(await self.conn.execute(q)).scalar() for q in (held, asked)]
            if t is not None
        ]
        return min(found) if found else None

    async def finished_jobs(
        self,
        org_id: int,
        *,
        before: dt.datetime | None,
        statuses: Sequence[str],
        task_id: int | None,
        limit: int,
    ) -> list[int]:
        """Ids of finished jobs matching the filters, oldest first (history deletion)."""
        done = [s.value for s in JOB_TERMINAL]
        conds: list[sa.ColumnElement[bool]] = [
            jobs.c.org_id == org_id,
            jobs.c.status.in_([s for s in statuses if s in done] if statuses else done),
        ]
        if before is not None:
            conds.append(sa.func.coalesce(jobs.c.finished_at, jobs.c.updated_at) < before)
        if task_id is not None:
            conds.append(jobs.c.task_id == task_id)
        q = sa.select(jobs.c.id).where(*conds).order_by(jobs.c.id).limit(limit)
        return list((await self.conn.execute(q)).scalars())

    # -- input requested by a running command
    async def insert_input(self, values: dict[str, Any]) -> InputRequest:
        q = input_requests.insert().values(**values).returning(*input_requests.c)
        return _input((await self.conn.execute(q)).mappings().one())

    async def open_inputs(self, job_id: int) -> list[InputRequest]:
        q = (
            input_requests.select()
            .where(
                input_requests.c.job_id == job_id,
                input_requests.c.status == InputStatus.OPEN.value,
            )
            .order_by(input_requests.c.id)
        )
        return [_input(r) for r in (await self.conn.execute(q)).mappings()]

    async def input(self, request_id: int) -> InputRequest | None:
        q = input_requests.select().where(input_requests.c.id == request_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _input(row)

    async def close_input(self, request_id: int, values: dict[str, Any]) -> bool:
        """Answer, expire or cancel an open request; False if it was closed already."""
        res = await self.conn.execute(
            input_requests.update()
            .where(
                input_requests.c.id == request_id,
                input_requests.c.status == InputStatus.OPEN.value,
            )
            .values(**values)
        )
        return bool(res.rowcount)

    async def expired_inputs(self, now: dt.datetime, limit: int) -> list[InputRequest]:
        q = (
            input_requests.select()
            .where(
                input_requests.c.status == InputStatus.OPEN.value,
                input_requests.c.deadline.is_not(None),
                input_requests.c.deadline <= now,
            )
            .order_by(input_requests.c.deadline)
            .limit(limit)
        )
        return [_input(r) for r in (await self.conn.execute(q)).mappings()]
