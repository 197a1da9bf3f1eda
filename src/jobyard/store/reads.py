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

import contextlib
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
from jobyard.store.schema import jobs, node_runs, org_job_counts

S = TypeVar("S", bound=sa.Executable)


class Rows(Protocol):
    """Where a quick read runs its statements (``Database.quick``)."""

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]: ...


class ConnRows:
    """``Rows`` on an open connection (a transaction's), through SQLAlchemy."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        return (await self.conn.execute(stmt, params or {})).all()


class QuickPool(Protocol):
    """What ``PoolRows`` needs of the database: its own driver pool, and SQLAlchemy's way
    for a statement that cannot go to the driver."""

    @property
    def sql_dialect(self) -> sa.Dialect: ...

    async def driver_pool(self) -> Any: ...

    def sqlalchemy_rows(self) -> contextlib.AbstractAsyncContextManager[Rows]: ...


class PoolRows:
    """``Rows`` on PostgreSQL outside a transaction (``Database.quick``): the statements
    built once (``driver_ready``) go to asyncpg as their compiled SQL, each on a
    connection of the quick reads' own asyncpg pool (prepared once per connection), past
    SQLAlchemy's pool checkout, execution and greenlet hand-offs (two thirds of a ``GET``
    of a job). Their values come back as SQLAlchemy would give them: JSON decoded as
    SQLAlchemy does it, times aware in UTC. Any other statement goes through SQLAlchemy."""

    def __init__(self, source: QuickPool, counts: Counts | None = None) -> None:
        self.source = source
        self.counts = counts

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        compiled = _compiled(stmt, self.source.sql_dialect)
        if compiled is None:
            async with self.source.sqlalchemy_rows() as rows:
                return await rows.all(stmt, params)
        pool = await self.source.driver_pool()
        async with pool.acquire() as conn:
            rows = await conn.fetch(compiled.sql, *compiled.values(params))
        _count(self.counts)
        return [tuple(r) for r in rows]


class InlineRows:
    """``Rows`` on a synchronous SQLite connection, run on the calling thread: a keyed read
    takes tens of microseconds, less than the hand-off to a driver thread it replaces.

    The statements built once (``driver_ready``) go to ``sqlite3`` as their compiled SQL,
    past SQLAlchemy's execution (two thirds of such a read's time), their values turned
    by the same result processors SQLAlchemy would apply (times, JSON)."""

    def __init__(self, conn: sa.Connection, counts: Counts | None = None) -> None:
        self.conn = conn
        self.counts = counts

    async def all(
        self, stmt: sa.Executable, params: Mapping[str, Any] | None = None
    ) -> Sequence[Sequence[Any]]:
        compiled = _compiled(stmt, self.conn.dialect)
        if compiled is None:
            return self.conn.execute(stmt, params or {}).all()
        raw = self.conn.connection.driver_connection
        assert raw is not None
        rows: list[Sequence[Any]] = raw.execute(compiled.sql, compiled.values(params)).fetchall()
        _count(self.counts)
        processors = compiled.processors
        if not processors:
            return rows
        out: list[Sequence[Any]] = []
        for row in rows:
            values = list(row)
            for at, process in processors:
                value = values[at]
                if value is not None:  # what every processor gives for None
                    values[at] = process(value)
            out.append(values)
        return out


def _count(counts: Counts | None) -> None:
    if counts is not None:
        counts.statements += 1
        counts.rows += 1


@dataclasses.dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as its driver takes it: the SQL, the parameters' names in order with
    their defaults, and (where the driver gives raw values, SQLite) the result processors
    SQLAlchemy would apply, by column position."""

    sql: str
    names: tuple[str, ...]
    defaults: dict[str, Any]
    processors: tuple[tuple[int, Any], ...]

    def values(self, params: Mapping[str, Any] | None) -> list[Any]:
        given = params or {}
        return [given[n] if n in given else self.defaults[n] for n in self.names]


# Statements that go to the driver as compiled SQL, by id (each kept, so that its id is not
# reused), and what they compile to on each dialect (on first use: a server on SQLite
# compiles nothing for PostgreSQL); None when the statement cannot go that way (expanding
# parameters).
_READY: dict[int, sa.Executable] = {}
_COMPILED: dict[tuple[int, str], Compiled | None] = {}


def driver_ready(stmt: S) -> S:
    """Mark a statement built once (at import, or once per shape) for the driver path."""
    _READY[id(stmt)] = stmt
    return stmt


def _compiled(stmt: sa.Executable, dialect: sa.Dialect) -> Compiled | None:
    key = (id(stmt), dialect.name)
    if key in _COMPILED:
        return _COMPILED[key]
    if _READY.get(key[0]) is not stmt:
        return None
    compiled: Any = stmt.compile(dialect=dialect)  # type: ignore[attr-defined]
    sql = str(compiled)
    found = None
    plain = not compiled._bind_processors  # the parameters go to the driver as they are
    if plain and "POSTCOMPILE" not in sql and compiled.positiontup is not None:
        processors: tuple[tuple[int, Any], ...] = ()
        if dialect.name == "sqlite":
            kinds = [c[3] for c in compiled._result_columns]
            made = [kind._cached_result_processor(dialect, None) for kind in kinds]
            processors = tuple((at, p) for at, p in enumerate(made) if p is not None)
        found = Compiled(sql, tuple(compiled.positiontup), dict(compiled.params), processors)
    _COMPILED[key] = found
    return found


JOB_KEYS = tuple(c.name for c in jobs.c)
RUN_KEYS = tuple(c.name for c in node_runs.c)
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
    if _unfiltered(flt):  # the plain list: its statements built once per order
        shared = flt.shared_with is not None
        plain = _PLAIN.get((sort, descending, shared))
        if plain is None:
            scope = job_scope(_ORG, _USER if shared else None)
            total = _count_of(scope) if shared else _ORG_TOTAL
            page = driver_ready(_page_statement(scope, sort, descending, total))
            plain = _PLAIN[(sort, descending, shared)] = (page, total)
        q, total = plain
        params.update(org_id=org_id, user_id=flt.shared_with)
    else:
        where = job_conditions(org_id, flt)
        total = _count_of(where)
        q = _page_statement(where, sort, descending, total)
    rows = await rows_of.all(q, params)
    if not rows:  # past the last page: the total alone
        return Page(items=[], total=int((await rows_of.all(sa.select(total), params))[0][0]))
    items: list[tuple[Job, list[NodeRun]]] = []
    runs: list[NodeRun] = []
    for row in rows:
        if row[0] == 0:
            runs = []
            items.append((_job(row[_AT_JOB:_AT_TOTAL]), runs))
        else:
            runs.append(_run(row[_AT_RUN:]))
    return Page(items=items, total=int(rows[0][_AT_TOTAL]))


_ORG = sa.bindparam("org_id", type_=sa.BigInteger())
_USER = sa.bindparam("user_id", type_=sa.BigInteger())
# The plain list's page statement and its total, by (sort, descending, shared).
_PLAIN: dict[tuple[str, bool, bool], tuple[sa.Select[Any], sa.ColumnElement[Any]]] = {}


def _unfiltered(flt: JobFilter) -> bool:
    plain = dataclasses.replace(flt, statuses=tuple(flt.statuses), shared_with=None)
    return plain == _NO_FILTER


_NO_FILTER = JobFilter()


# The columns of a page's rows: part (0 a job, 1 one of its runs), the job's sort key and
# id (the order), the job's columns, the total, the run's columns.
_AT_JOB = 3
_AT_TOTAL = _AT_JOB + _N
_AT_RUN = _AT_TOTAL + 1


# The organization's number of jobs (the database keeps it: schema.org_job_counts).
_ORG_TOTAL = sa.func.coalesce(
    sa.select(org_job_counts.c.jobs).where(org_job_counts.c.org_id == _ORG).scalar_subquery(),
    0,
)


def _count_of(where: sa.ColumnElement[bool]) -> sa.ColumnElement[Any]:
    """The number of jobs that pass ``where``: an uncorrelated scalar subquery."""
    return sa.select(sa.func.count()).select_from(jobs).where(where).scalar_subquery()


def _page_statement(
    where: sa.ColumnElement[bool],
    sort: str,
    descending: bool,
    total: sa.ColumnElement[Any] | None = None,
) -> sa.Select[Any]:
    """The page (offset and limit bound at execution) with its total (computed once; by
    default the number of jobs that pass ``where``), then the node runs of its jobs: a
    job's row followed by its runs' rows, as ``JOB_WITH_RUNS`` (a job's columns, its JSON
    and its times, are not repeated on each of its runs' rows)."""
    if total is None:
        total = _count_of(where)
    page = (
        sa.select(jobs, total.label("total"))
        .where(where)
        .order_by(*page_order(jobs.c[sort], jobs.c.id, descending))
        .offset(sa.bindparam("offset", type_=sa.Integer()))
        .limit(sa.bindparam("limit", type_=sa.Integer()))
        .cte("page")
    )
    key = page.c[sort]
    job_part = sa.select(
        sa.literal_column("0").label("part"),
        key.label("k"),
        page.c.id.label("kid"),
        *(page.c[name] for name in JOB_KEYS),
        page.c.total,
        *_nulls(node_runs.c, "r__"),
    )
    run_part = sa.select(
        sa.literal_column("1"), key, page.c.id, *_nulls(jobs.c), sa.null(), *node_runs.c
    ).select_from(page.join(node_runs, node_runs.c.job_id == page.c.id))
    both = sa.union_all(job_part, run_part).subquery("page_and_runs")
    return sa.select(both).order_by(
        *page_order(both.c.k, both.c.kid, descending), both.c.part, both.c.r__node_name
    )
