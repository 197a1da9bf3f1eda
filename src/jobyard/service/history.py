"""Deleting finished job history in bulk (admins): jobs, their node runs, events and files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JOB_TERMINAL
from jobyard.domain.records import Principal
from jobyard.service.context import Services
from jobyard.store import Tx

BATCH = 500


async def delete_finished_jobs(
    svc: Services,
    who: Principal,
    *,
    older_than: dt.timedelta | None = None,
    statuses: Sequence[str] = (),
    task_id: int | None = None,
) -> int:
    """Delete finished jobs matching every filter given (finished more than ``older_than``
    ago, in one of ``statuses``, made from ``task_id``); returns how many went.

    Works in batches, one transaction each, so a large purge does not hold locks long.
    """
    require(who.role, Role.ADMIN, "deleting job history")
    done = {s.value for s in JOB_TERMINAL}
    wrong = [s for s in statuses if s not in done]
    if wrong:
        raise Invalid(
            f"status {wrong[0]!r} is not a finished status: use {', '.join(sorted(done))}",
            "status",
        )
    if older_than is not None and older_than < dt.timedelta(0):
        raise Invalid("older_than must not be negative", "older_than")
    before = svc.clock.now() - older_than if older_than is not None else None
    return await purge_finished(svc, who.org_id, before=before, statuses=statuses, task_id=task_id)


def remove_files_after_commit(svc: Services, tx: Tx, keys: list[str]) -> None:
    """Remove stored files once the rows naming them are gone for good (never before:
    a rollback would leave rows without their files)."""

    def remove() -> None:
        for key in keys:
            svc.files.delete(key)

    tx.after_commit(remove)


async def purge_finished(
    svc: Services,
    org_id: int,
    *,
    before: dt.datetime | None,
    statuses: Sequence[str] = (),
    task_id: int | None = None,
) -> int:
    """Delete the organization's finished jobs that match (no permission check: the
    callers are an admin's request and the retention loop)."""
    deleted = 0
    while True:
        async with svc.db.begin() as tx:
            ids = await tx.task_runs.finished_jobs(
                org_id, before=before, statuses=statuses, task_id=task_id, limit=BATCH
            )
            keys: list[str] = []
            for job_id in ids:
                keys += await tx.files.delete_of_job(job_id)
                await tx.events.delete_of_job(job_id)
                await tx.jobs.delete(job_id)
            remove_files_after_commit(svc, tx, keys)
        deleted += len(ids)
        if len(ids) < BATCH:
            return deleted
