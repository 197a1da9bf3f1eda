"""Reading jobs cheaply: one job with its node runs, a page of jobs with theirs.

Each use case is one short read on a pooled connection, outside a transaction: reading a
job is one statement (the job joined to its runs; a job only shared with the caller takes
the longer way through ``sharing.readable_job``), a page is one statement after the check
whether anything is shared with the caller at all (store/reads.py).
"""

from __future__ import annotations

import dataclasses

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.records import Page, Principal
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.service.sharing import readable_job
from jobyard.store import reads
from jobyard.store.jobs import JobFilter


async def get_job(svc: Services, who: Principal, job_id: int) -> JobView:
    """A job of the caller's organization, or one shared with the caller; else NotFound."""
    require(who.role, Role.VIEWER, "reading a job")
    async with svc.db.read(snapshot=False) as tx:
        found = await reads.job_with_runs(tx.conn, who.org_id, job_id)
    if found is not None:
        return JobView(*found)
    async with svc.db.read() as tx:
        job = await readable_job(tx, who, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return JobView(job, await tx.jobs.runs(job.id))


async def list_jobs(
    svc: Services,
    who: Principal,
    flt: JobFilter,
    *,
    sort: str = "created_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 20,
) -> Page[JobView]:
    """A page of the jobs the caller may see (its organization's, and those shared with it)."""
    require(who.role, Role.VIEWER, "listing jobs")
    if limit > svc.settings.max_page_size or limit < 1:
        raise Invalid(f"page size must be 1 to {svc.settings.max_page_size}", "page_size")
    async with svc.db.read(snapshot=False) as tx:
        if flt.shared_with is None and await tx.notify.has_shares(who.user_id):
            flt = dataclasses.replace(flt, shared_with=who.user_id)
        page = await reads.page_with_runs(
            tx.conn, who.org_id, flt, sort=sort, descending=descending, offset=offset, limit=limit
        )
    return Page([JobView(job, runs) for job, runs in page.items], page.total)
