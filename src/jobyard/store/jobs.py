"""Jobs and their node runs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job, NodeRun, Page
from jobyard.store.driver import insert_sql, marks, stamper
from jobyard.store.notify import shared_job_ids
from jobyard.store.rows import SQLITE_FEW_ROWS, insert_returning, numbered
from jobyard.store.schema import jobs, node_runs


@dataclass(frozen=True)
class JobFilter:
    statuses: Sequence[str] = ()
    name: str | None = None
    name_contains: str | None = None
    text: str | None = None  # found in the name or the command (dashboard search)
    owner_id: int | None = None
    node: str | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    updated_after: dt.datetime | None = None
    updated_before: dt.datetime | None = None
    visible_ids: Sequence[int] | None = None
    shared_with: int | None = None  # also the jobs shared with this user, of any organization
    trigger_id: int | None = None  # the runs of one trigger
    extra: dict[str, Any] = field(default_factory=dict)


SORTABLE = {"created_at", "updated_at", "id", "name", "status"}


def _job(row: sa.RowMapping) -> Job:
    data = dict(row)
    data["status"] = JobStatus(data["status"])
    return Job(**data)


def _run(row: sa.RowMapping) -> NodeRun:
    data = dict(row)
    data["status"] = NodeRunStatus(data["status"])
    return NodeRun(**data)


def job_scope(org_id: Any, shared_with: Any) -> sa.ColumnElement[bool]:
    """The jobs a list may show: the organization's, and with ``shared_with`` (a user id,
    or a bound parameter for one) also those shared with that user."""
    scope: sa.ColumnElement[bool] = jobs.c.org_id == org_id
    if shared_with is not None:
        scope = sa.or_(scope, jobs.c.id.in_(shared_job_ids(shared_with)))
    return scope


def job_conditions(org_id: int, flt: JobFilter) -> sa.ColumnElement[bool]:
    """The WHERE clause of a job list: the organization's jobs (and with
    ``flt.shared_with``, those shared with that user) that pass the filter."""
    conds = [job_scope(org_id, flt.shared_with)]
    if flt.statuses:
        conds.append(jobs.c.status.in_(list(flt.statuses)))
    if flt.name is not None:
        conds.append(jobs.c.name == flt.name)
    if flt.name_contains:
        conds.append(jobs.c.name.contains(flt.name_contains, autoescape=True))
    if flt.text:
        conds.append(
            sa.or_(
                jobs.c.name.contains(flt.text, autoescape=True),
                jobs.c.command.contains(flt.text, autoescape=True),
            )
        )
    if flt.owner_id is not None:
        conds.append(jobs.c.created_by == flt.owner_id)
    if flt.trigger_id is not None:
        conds.append(jobs.c.trigger_id == flt.trigger_id)
    if flt.node:
        sub = sa.select(node_runs.c.job_id).where(
            node_runs.c.org_id == org_id, node_runs.c.node_name == flt.node
        )
        conds.append(jobs.c.id.in_(sub))
    if flt.created_after:
        conds.append(jobs.c.created_at >= flt.created_after)
    if flt.created_before:
        conds.append(jobs.c.created_at < flt.created_before)
    if flt.updated_after:
        conds.append(jobs.c.updated_at >= flt.updated_after)
    if flt.updated_before:
        conds.append(jobs.c.updated_at < flt.updated_before)
    if flt.visible_ids is not None:
        conds.append(jobs.c.id.in_(list(flt.visible_ids)))
    return sa.and_(*conds)


def page_order(
    key: sa.ColumnElement[Any], ident: sa.ColumnElement[Any], descending: bool
) -> list[sa.UnaryExpression[Any]]:
    """A job list's stable order: the sort key, then the id."""
    # Explicit NULL placement where a key can be NULL: SQLite and PostgreSQL disagree by
    # default (unnamed jobs). Not on a NOT NULL key: there it would only keep PostgreSQL
    # from walking the (org_id, created_at, id) index backwards, and sort every job of
    # the organization for each page instead.
    if not getattr(key, "nullable", True):
        return [key.desc(), ident.desc()] if descending else [key.asc(), ident.asc()]
    if descending:
        return [key.desc().nulls_last(), ident.desc()]
    return [key.asc().nulls_first(), ident.asc()]


# One job row, returned as written (the columns are those of the values given).
_INSERT_JOB = jobs.insert().returning(*jobs.c)
# The hot reads of the report batcher, built once.
_JOB_BY_ID = jobs.select().where(jobs.c.id == sa.bindparam("job_id"))
_JOB_BY_ID_LOCKED = _JOB_BY_ID.with_for_update()
_RUN_STATES = (
    sa.select(
        node_runs.c.id,
        node_runs.c.node_name,
        node_runs.c.status,
        node_runs.c.attempt,
        node_runs.c.exit_code,
    )
    .where(node_runs.c.job_id == sa.bindparam("job_id"))
    .order_by(node_runs.c.node_name)
)
_RUN_CENSUS = (
    sa.select(node_runs.c.status, node_runs.c.attempt, sa.func.count())
    .where(node_runs.c.job_id == sa.bindparam("job_id"))
    .group_by(node_runs.c.status, node_runs.c.attempt)
)


class RunWrite(NamedTuple):
    """One node run's status change as ``move_runs`` writes it: to ``status`` from
    ``expected``, at ``now``; ``started``/``finished`` are set unless already set, and
    ``exit_code``/``reason`` unless None."""

    id: int
    expected: str
    status: str
    exit_code: int | None
    reason: str | None
    now: dt.datetime
    started: dt.datetime | None
    finished: dt.datetime | None


def _move_runs_sql(dialect: str) -> str:
    m = marks(dialect, 8)
    return (
        f"UPDATE node_runs SET status = {m[0]}, exit_code = coalesce({m[1]}, exit_code),"
        f" reason = coalesce({m[2]}, reason), updated_at = {m[3]},"
        f" started_at = coalesce(started_at, {m[4]}), finished_at = coalesce(finished_at, {m[5]})"
        f" WHERE id = {m[6]} AND status = {m[7]}"
    )


_MOVE_RUNS = {d: _move_runs_sql(d) for d in ("sqlite", "postgresql")}
# The columns a new node run is written with (``insert_runs_returning``).
NEW_RUN_COLUMNS = (
    "job_id",
    "org_id",
    "node_name",
    "status",
    "attempt",
    "reason",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
)
_RUN_TIMES = frozenset(("created_at", "updated_at", "started_at", "finished_at"))
_INSERT_RUNS = insert_sql("sqlite", "node_runs", NEW_RUN_COLUMNS)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """A time as the database gives it back: in UTC."""
    return None if value is None else value.astimezone(dt.UTC)


class JobsRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> Job:
        """Write a new job row and return it with its id."""
        return _job((await self.conn.execute(_INSERT_JOB, values)).mappings().one())

    async def insert_runs(self, job: Job, node_names: Sequence[str], now: dt.datetime) -> None:
        """Create one ``new`` node run per target node."""
        await self.insert_runs_many([(job, node_names)], now)

    async def insert_runs_many(
        self, placed: Sequence[tuple[Job, Sequence[str]]], now: dt.datetime
    ) -> None:
        """Create the ``new`` node runs of several jobs in one statement."""
        rows = [
            {
                "job_id": job.id,
                "org_id": job.org_id,
                "node_name": name,
                "status": NodeRunStatus.NEW.value,
                "attempt": job.attempt,
                "created_at": now,
                "updated_at": now,
            }
            for job, names in placed
            for name in names
        ]
        if rows:
            await self.conn.execute(node_runs.insert(), rows)

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> list[Job]:
        """Write several new job rows in one round trip; returns them in the given order."""
        return [_job(r) for r in await insert_returning(self.conn, jobs, rows)]

    async def insert_runs_returning(self, rows: Sequence[dict[str, Any]]) -> list[NodeRun]:
        """Write node runs as given (each row: the columns of ``NEW_RUN_COLUMNS``) and
        return them."""
        if self.dialect != "sqlite" or len(rows) <= SQLITE_FEW_ROWS:
            return [_run(r) for r in await insert_returning(self.conn, node_runs, rows)]
        # Many on SQLite: one executemany of the driver's SQL, under the write lock, so the
        # new rows are numbered on from the old maximum id, in order (the new maximum
        # checks it); the records are made from what was written, not read back.
        stamp = stamper(self.conn.dialect)
        params = [
            tuple(stamp(r[c]) if c in _RUN_TIMES else r[c] for c in NEW_RUN_COLUMNS) for r in rows
        ]
        ids = await numbered(
            self.conn, node_runs, len(rows), lambda: self.conn.exec_driver_sql(_INSERT_RUNS, params)
        )
        return [
            NodeRun(
                id=i,
                job_id=r["job_id"],
                org_id=r["org_id"],
                node_name=r["node_name"],
                status=NodeRunStatus(r["status"]),
                attempt=r["attempt"],
                exit_code=None,
                reason=r["reason"],
                truncated=False,
                created_at=r["created_at"].astimezone(dt.UTC),
                updated_at=r["updated_at"].astimezone(dt.UTC),
                started_at=_utc(r["started_at"]),
                finished_at=_utc(r["finished_at"]),
            )
            for i, r in zip(ids, rows, strict=True)
        ]

    async def get(self, org_id: int, job_id: int, *, for_update: bool = False) -> Job | None:
        """One job of an organization; ``for_update`` locks it on PostgreSQL."""
        q = jobs.select().where(jobs.c.org_id == org_id, jobs.c.id == job_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _job(row)

    async def get_any(self, job_id: int, *, for_update: bool = False) -> Job | None:
        """One job by id, whatever its organization (dispatcher use)."""
        q = _JOB_BY_ID_LOCKED if for_update and self.dialect == "postgresql" else _JOB_BY_ID
        row = (await self.conn.execute(q, {"job_id": job_id})).mappings().first()
        return None if row is None else _job(row)

    async def by_name(self, org_id: int, name: str) -> Job | None:
        """The newest job of that name in the organization."""
        q = (
            jobs.select()
            .where(jobs.c.org_id == org_id, jobs.c.name == name)
            .order_by(jobs.c.id.desc())
            .limit(1)
        )
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _job(row)

    async def page(
        self,
        org_id: int,
        flt: JobFilter,
        *,
        sort: str = "created_at",
        descending: bool = True,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[Job]:
        """A page of jobs, stable-ordered by the sort key then id."""
        where = job_conditions(org_id, flt)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(jobs).where(where))
        ).scalar_one()
        key = jobs.c[sort] if sort in SORTABLE else jobs.c.created_at
        order = page_order(key, jobs.c.id, descending)
        q = jobs.select().where(where).order_by(*order).offset(offset).limit(limit)
        items = [_job(r) for r in (await self.conn.execute(q)).mappings()]
        return Page(items=items, total=total)

    async def update(self, job_id: int, values: dict[str, Any]) -> Job:
        row = (
            (
                await self.conn.execute(
                    jobs.update().where(jobs.c.id == job_id).values(**values).returning(*jobs.c)
                )
            )
            .mappings()
            .one()
        )
        return _job(row)

    async def set_status(self, job_id: int, expected: JobStatus, values: dict[str, Any]) -> bool:
        """Move a job only if it is still in ``expected`` (compare-and-set)."""
        res = await self.conn.execute(
            jobs.update()
            .where(jobs.c.id == job_id, jobs.c.status == expected.value)
            .values(**values)
        )
        return bool(res.rowcount)

    async def delete(self, job_id: int) -> None:
        await self.conn.execute(node_runs.delete().where(node_runs.c.job_id == job_id))
        await self.conn.execute(jobs.delete().where(jobs.c.id == job_id))

    async def active(self, statuses: Sequence[JobStatus], limit: int = 1000) -> list[Job]:
        """Jobs in the given statuses, oldest first (dispatcher use)."""
        q = (
            jobs.select()
            .where(jobs.c.status.in_([s.value for s in statuses]))
            .order_by(jobs.c.id)
            .limit(limit)
        )
        return [_job(r) for r in (await self.conn.execute(q)).mappings()]

    async def due(self, now: dt.datetime, statuses: Sequence[JobStatus]) -> list[int]:
        """Ids of jobs in the given statuses whose deadline has passed."""
        q = sa.select(jobs.c.id).where(
            jobs.c.status.in_([s.value for s in statuses]),
            jobs.c.deadline.is_not(None),
            jobs.c.deadline <= now,
        )
        return list((await self.conn.execute(q)).scalars())

    # -- node runs
    async def runs(self, job_id: int) -> list[NodeRun]:
        """The node runs of one job, by node name."""
        q = node_runs.select().where(node_runs.c.job_id == job_id).order_by(node_runs.c.node_name)
        return [_run(r) for r in (await self.conn.execute(q)).mappings()]

    async def run_states(
        self, job_id: int
    ) -> list[tuple[int, str, NodeRunStatus, int, int | None]]:
        """What a round needs of each of a job's node runs, by node name: (id, node,
        status, attempt, exit code), without the rest of the row."""
        status = NodeRunStatus
        rows = await self.conn.execute(_RUN_STATES, {"job_id": job_id})
        return [(i, n, status(s), a, c) for i, n, s, a, c in rows]

    async def runs_of_jobs(self, job_ids: Sequence[int]) -> dict[int, list[NodeRun]]:
        """Node runs of several jobs at once, grouped by job id."""
        out: dict[int, list[NodeRun]] = {i: [] for i in job_ids}
        if not job_ids:
            return out
        q = (
            node_runs.select()
            .where(node_runs.c.job_id.in_(list(job_ids)))
            .order_by(node_runs.c.job_id, node_runs.c.node_name)
        )
        for r in (await self.conn.execute(q)).mappings():
            out[r["job_id"]].append(_run(r))
        return out

    async def run_census(self, job_id: int) -> dict[tuple[str, int], int]:
        """How many of a job's node runs are in each (status, attempt): a round kept in
        memory is checked against it (runs only move forward, so equal counts mean no run
        moved since)."""
        rows = await self.conn.execute(_RUN_CENSUS, {"job_id": job_id})
        return {(str(s), int(a)): int(n) for s, a, n in rows}

    async def run(self, job_id: int, node_name: str) -> NodeRun | None:
        q = node_runs.select().where(
            node_runs.c.job_id == job_id, node_runs.c.node_name == node_name
        )
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _run(row)

    async def move_runs(self, changes: Sequence[RunWrite]) -> bool:
        """Move node runs in one statement (an executemany of the driver's own SQL); each
        row is a compare-and-set on its status (service/transitions.apply decides the
        values). One row: whether it moved; many: True (the caller holds their job)."""
        if not changes:
            return False
        stamp = stamper(self.conn.dialect)
        params = [
            (
                c.status,
                c.exit_code,
                c.reason,
                stamp(c.now),
                stamp(c.started),
                stamp(c.finished),
                c.id,
                c.expected,
            )
            for c in changes
        ]
        sql = _MOVE_RUNS[self.dialect]
        if len(params) == 1:
            return bool((await self.conn.exec_driver_sql(sql, params[0])).rowcount)
        await self.conn.exec_driver_sql(sql, params)
        return True

    async def runs_of_node(
        self, org_id: int, node_name: str, statuses: Sequence[NodeRunStatus]
    ) -> list[NodeRun]:
        """Runs on a node in the given states (crash and reconnect handling)."""
        q = node_runs.select().where(
            node_runs.c.org_id == org_id,
            node_runs.c.node_name == node_name,
            node_runs.c.status.in_([s.value for s in statuses]),
        )
        return [_run(r) for r in (await self.conn.execute(q)).mappings()]
