"""The hot reads of the jobs API, one statement each.

- ``job_with_runs``: a job (the first row) and its node runs (the rows after it), one
  ``UNION ALL`` (``GET /api/v1/jobs/{id}``); the statement is built once, at import.
- ``page_with_runs``: a page of jobs with their node runs and the filtered total, one
  statement: the page in a CTE with the total as an uncorrelated scalar subquery (computed
  once, as the separate count was), joined to the runs; built once per sort order for the
  unfiltered list (the dashboard's and the API's default), per call for a filtered one.

Each returns plain records (``Job``, ``NodeRun``); a statement sees one snapshot by itself,
so they run outside a transaction, on the ``Rows`` of ``Database.quick()`` (on SQLite a
read-only connection used on the event loop's own thread).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job, NodeRun, Page
from jobyard.store.counting import Counts
from jobyard.store.jobs import SORTABLE, JobFilter, job_conditions, job_scope, page_order
from jobyard.store.notify import HAS_SHARES
from jobyard.store.schema import jobs, node_runs

S = TypeVar("S", bound=sa.Executable)


class Rows(Protocol):
    """Where a quick read runs its statements (``Database.quick``)."""

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]: ...


class ConnRows:
    """``Rows`` on an open connection (a pooled one, or a transaction's).

    With ``driver`` (PostgreSQL outside a transaction: ``Database.quick``), the statements
    built once (``driver_ready``) go to asyncpg as their compiled SQL, each prepared once
    per connection by asyncpg, past SQLAlchemy's execution and its greenlet hand-off (a
    third of a ``GET`` of a job). Their values come back as SQLAlchemy would give them:
    JSON through the codec SQLAlchemy set on the connection, times aware in UTC."""

    def __init__(
        self, conn: AsyncConnection, *, driver: bool = False, counts: Counts | None = None
    ) -> None:
        self.conn = conn
        self.driver = driver
        self.counts = counts

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        compiled = _compiled(stmt, self.conn.dialect) if self.driver else None
        if compiled is None:
            return (await self.conn.execute(stmt, params or {})).all()
        sql, names, defaults = compiled
        given = params or {}
        values = [given[n] if n in given else defaults[n] for n in names]
        raw = (await self.conn.get_raw_connection()).driver_connection
        assert raw is not None
        rows = await raw.fetch(sql, *values)
        if self.counts is not None:
            self.counts.statements += 1
            self.counts.rows += 1
        return [tuple(r) for r in rows]


# Statements that ``ConnRows(driver=True)`` sends as compiled SQL, by id (each kept, so
# that its id is not reused), and what they compile to on the driver's dialect (on first
# use: a server on SQLite compiles nothing): the SQL, the parameters' names in order and
# their defaults; None when the statement cannot go that way (expanding parameters).
_READY: dict[int, sa.Executable] = {}
_COMPILED: dict[int, tuple[str, tuple[str, ...], dict[str, Any]] | None] = {}


def driver_ready(stmt: S) -> S:
    """Mark a statement built once (at import, or once per shape) for the driver path."""
    _READY[id(stmt)] = stmt
    return stmt


def _compiled(
    stmt: sa.Executable, dialect: sa.Dialect
) -> tuple[str, tuple[str, ...], dict[str, Any]] | None:
    key = id(stmt)
    if _READY.get(key) is not stmt:
        return None
    if key not in _COMPILED:
        compiled = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
        sql = str(compiled)
        ok = "POSTCOMPILE" not in sql and compiled.positiontup is not None
        _COMPILED[key] = (sql, tuple(compiled.positiontup), dict(compiled.params)) if ok else None
    return _COMPILED[key]


class InlineRows:
    """``Rows`` on a synchronous SQLite connection, run on the calling thread: a keyed read
    takes tens of microseconds, less than the hand-off to a driver thread it replaces."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[sa.Row[Any]]:
        return self.conn.execute(stmt, params or {}).all()


JOB_KEYS = tuple(c.name for c in jobs.c)
RUN_KEYS = tuple(c.name for c in node_runs.c)
_RUN_COLUMNS = [c.label(f"r__{c.name}") for c in node_runs.c]
_N = len(JOB_KEYS)


def _nulls(columns: Any, prefix: str = "") -> list[sa.Label[Any]]:
    return [sa.cast(sa.null(), c.type).label(f"{prefix}{c.name}") for c in columns]


# A job of an organization (the first row), then its node runs by node name, one statement:
# the job's row is not repeated beside each run (its JSON would be decoded once per run: a
# 1,000-node job's target, 1,000 times).
_JOB_PART = sa.select(sa.literal(0).label("part"), *jobs.c, *_nulls(node_runs.c, "r__")).where(
    jobs.c.org_id == sa.bindparam("org_id"), jobs.c.id == sa.bindparam("job_id")
)
# The runs by their job alone (an organization's condition here would let SQLite pick its
# index on org_id and walk every run of the organization): a job of another organization
# has no first row, and is not found.
_RUNS_PART = sa.select(sa.literal(1), *_nulls(jobs.c), *node_runs.c).where(
    node_runs.c.job_id == sa.bindparam("job_id")
)
_UNION = sa.union_all(_JOB_PART, _RUNS_PART).subquery("job_and_runs")
JOB_WITH_RUNS = driver_ready(sa.select(_UNION).order_by(_UNION.c.part, _UNION.c.r__node_name))


# The records' fields are the tables' columns in the same order (test_reads checks it):
# a row becomes a record positionally, three times quicker than through a dict.
_JOB_STATUS = JOB_KEYS.index("status")
_RUN_STATUS = RUN_KEYS.index("status")


def _job(values: Sequence[Any]) -> Job:
    data = list(values)
    data[_JOB_STATUS] = JobStatus(data[_JOB_STATUS])
    return Job(*data)


def _run(values: Sequence[Any]) -> NodeRun:
    data = list(values)
    data[_RUN_STATUS] = NodeRunStatus(data[_RUN_STATUS])
    return NodeRun(*data)


def _runs_of(rows: Sequence[Sequence[Any]], at: int) -> list[NodeRun]:
    return [_run(r[at:]) for r in rows if r[at] is not None]


async def job_with_runs(
    rows_of: Rows, org_id: int, job_id: int
) -> tuple[Job, list[NodeRun]] | None:
    """A job of the organization and its node runs, or None."""
    rows = await rows_of.all(JOB_WITH_RUNS, {"org_id": org_id, "job_id": job_id})
    if not rows or rows[0][0] != 0:
        return None
    return _job(rows[0][1 : 1 + _N]), [_run(r[1 + _N :]) for r in rows[1:]]


driver_ready(HAS_SHARES)


async def has_shares(rows_of: Rows, user_id: int) -> bool:
    """Whether any job is shared with the user (job lists widen only then)."""
    return bool(await rows_of.all(HAS_SHARES, {"user_id": user_id}))


async def page_with_runs(
    rows_of: Rows,
    org_id: int,
    flt: JobFilter,
    *,
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 20,
) -> Page[tuple[Job, list[NodeRun]]]:
    """A page of jobs with their node runs, stable-ordered by the sort key then id (as
    ``JobsRepo.page``), and the number of jobs that pass the filter."""
    sort = sort if sort in SORTABLE else "created_at"
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if _unfiltered(flt):  # the plain list: a statement built once per order
        shared = flt.shared_with is not None
        q = _PLAIN.get((sort, descending, shared))
        if q is None:
            scope = job_scope(_ORG, _USER if shared else None)
            q = _PLAIN[(sort, descending, shared)] = driver_ready(
                _page_statement(scope, sort, descending)
            )
        params.update(org_id=org_id, user_id=flt.shared_with)
    else:
        q = _page_statement(job_conditions(org_id, flt), sort, descending)
    rows = await rows_of.all(q, params)
    if not rows:  # past the last page: the total alone
        where = job_conditions(org_id, flt)
        count = sa.select(sa.func.count()).select_from(jobs).where(where)
        return Page(items=[], total=int((await rows_of.all(count))[0][0]))
    items: list[tuple[Job, list[NodeRun]]] = []
    at = _N + 1
    current: list[Sequence[Any]] = []
    for row in rows:
        if current and row[0] != current[0][0]:
            items.append((_job(current[0][:_N]), _runs_of(current, at)))
            current = []
        current.append(row)
    items.append((_job(current[0][:_N]), _runs_of(current, at)))
    return Page(items=items, total=int(rows[0][_N]))


_ORG = sa.bindparam("org_id", type_=sa.BigInteger())
_USER = sa.bindparam("user_id", type_=sa.BigInteger())
_PLAIN: dict[tuple[str, bool, bool], sa.Select[Any]] = {}


def _unfiltered(flt: JobFilter) -> bool:
    plain = dataclasses.replace(flt, statuses=tuple(flt.statuses), shared_with=None)
    return plain == _NO_FILTER


_NO_FILTER = JobFilter()


def _page_statement(where: sa.ColumnElement[bool], sort: str, descending: bool) -> sa.Select[Any]:
    """The page (offset and limit bound at execution) with the filtered total, an
    uncorrelated scalar subquery computed once, joined to the node runs of its jobs."""
    total = sa.select(sa.func.count()).select_from(jobs).where(where).scalar_subquery()
    page = (
        sa.select(jobs, total.label("r__total"))
        .where(where)
        .order_by(*page_order(jobs.c[sort], jobs.c.id, descending))
        .offset(sa.bindparam("offset", type_=sa.Integer()))
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .cte("page")
    )
    return (
        sa.select(page, *_RUN_COLUMNS)
        .select_from(page.outerjoin(node_runs, node_runs.c.job_id == page.c.id))
        .order_by(*page_order(page.c[sort], page.c.id, descending), node_runs.c.node_name)
    )
