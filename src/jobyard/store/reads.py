"""The hot reads of the jobs API, one statement each.

- ``job_with_runs``: a job and its node runs, one ``LEFT JOIN`` (``GET /api/v1/jobs/{id}``);
  the statement is built once, at import.
- ``page_with_runs``: a page of jobs with their node runs and the filtered total, one
  statement: the page in a CTE with the total as an uncorrelated scalar subquery (computed
  once, as the separate count was), joined to the runs.

Each returns plain records (``Job``, ``NodeRun``); a statement sees one snapshot by itself,
so callers run them outside a transaction (``Database.read(snapshot=False)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job, NodeRun, Page
from jobyard.store.jobs import SORTABLE, JobFilter, job_conditions, page_order
from jobyard.store.schema import jobs, node_runs

JOB_KEYS = tuple(c.name for c in jobs.c)
RUN_KEYS = tuple(c.name for c in node_runs.c)
_RUN_COLUMNS = [c.label(f"r__{c.name}") for c in node_runs.c]
_N = len(JOB_KEYS)

# A job of an organization with its node runs by node name (none: one row of NULL runs).
JOB_WITH_RUNS = (
    sa.select(*jobs.c, *_RUN_COLUMNS)
    .select_from(jobs.outerjoin(node_runs, node_runs.c.job_id == jobs.c.id))
    .where(jobs.c.org_id == sa.bindparam("org_id"), jobs.c.id == sa.bindparam("job_id"))
    .order_by(node_runs.c.node_name)
)


def _job(values: Sequence[Any]) -> Job:
    data = dict(zip(JOB_KEYS, values, strict=True))
    data["status"] = JobStatus(data["status"])
    return Job(**data)


def _run(values: Sequence[Any]) -> NodeRun:
    data = dict(zip(RUN_KEYS, values, strict=True))
    data["status"] = NodeRunStatus(data["status"])
    return NodeRun(**data)


def _runs_of(rows: Sequence[Sequence[Any]], at: int) -> list[NodeRun]:
    return [_run(r[at:]) for r in rows if r[at] is not None]


async def job_with_runs(
    conn: AsyncConnection, org_id: int, job_id: int
) -> tuple[Job, list[NodeRun]] | None:
    """A job of the organization and its node runs, or None."""
    rows = (await conn.execute(JOB_WITH_RUNS, {"org_id": org_id, "job_id": job_id})).all()
    if not rows:
        return None
    return _job(rows[0][:_N]), _runs_of(rows, _N)


async def page_with_runs(
    conn: AsyncConnection,
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
    where = job_conditions(org_id, flt)
    total = sa.select(sa.func.count()).select_from(jobs).where(where).scalar_subquery()
    key = jobs.c[sort] if sort in SORTABLE else jobs.c.created_at
    page = (
        sa.select(*jobs.c, total.label("r__total"))
        .where(where)
        .order_by(*page_order(key, jobs.c.id, descending))
        .offset(offset)
        .limit(limit)
        .cte("page")
    )
    q = (
        sa.select(*(page.c[k] for k in JOB_KEYS), page.c.r__total, *_RUN_COLUMNS)
        .select_from(page.outerjoin(node_runs, node_runs.c.job_id == page.c.id))
        .order_by(*page_order(page.c[key.name], page.c.id, descending), node_runs.c.node_name)
    )
    rows = (await conn.execute(q)).all()
    if not rows:  # past the last page: the total alone
        count = sa.select(sa.func.count()).select_from(jobs).where(where)
        return Page(items=[], total=(await conn.execute(count)).scalar_one())
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
