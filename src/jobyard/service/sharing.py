"""Sharing a job (Rescale): read access to one job for one user, by email, with a message.

The recipient may belong to another organization: a share is the one way an object
crosses organizations, and it grants reading only (the job, its runs, history and
output, watching it); changing, stopping or deleting stays with the job's organization.
The shared job appears in the recipient's job list and in the job's ``sharedWith``.
"""

from __future__ import annotations

from collections.abc import Sequence

from jobyard.domain.accounts import Role, check_email, require
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.notifications import Share
from jobyard.domain.records import Job, Principal
from jobyard.service.context import Services
from jobyard.service.events import record_job_event
from jobyard.store import Tx

MAX_MESSAGE = 10_000


async def readable_job(tx: Tx, who: Principal, job_id: int) -> Job | None:
    """A job of the caller's organization, or one shared with the caller; else None."""
    job = await tx.jobs.get(who.org_id, job_id)
    if job is not None:
        return job
    job = await tx.jobs.get_any(job_id)
    if job is not None and await tx.notify.shares.is_shared(job_id, who.user_id):
        return job
    return None


async def _own_job(tx: Tx, who: Principal, job_id: int, action: str) -> Job:
    require(who.role, Role.USER, action)
    job = await tx.jobs.get(who.org_id, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.created_by != who.user_id and who.role is not Role.ADMIN:
        raise NotFound(f"no job {job.id} of yours; only its creator or an admin may do that")
    return job


async def share_job(
    svc: Services, who: Principal, job_id: int, email: str, message: str = ""
) -> Share:
    """Share a job with the user of that email and tell them; sharing again renews the message."""
    email = check_email(email)
    if len(message) > MAX_MESSAGE:
        raise Invalid(f"a share message has at most {MAX_MESSAGE} characters", "message")
    async with svc.db.begin() as tx:
        job = await _own_job(tx, who, job_id, "sharing a job")
        user = await tx.accounts.user_by_email(email)
        if user is None:
            raise NotFound(
                f"no user with email {email!r}: a job is shared with an existing user; "
                "ask an admin to add them first"
            )
        if user.id == job.created_by:
            raise Invalid(f"{email} created job {job.id}: they can read it already", "email")
        now = svc.clock.now()
        await tx.notify.shares.put(job.org_id, job.id, user.id, who.user_id, message, now)
        await record_job_event(
            svc,
            tx,
            job,
            "job.shared",
            actor=who.actor,
            data={"user_id": user.id, "email": user.email, "message": message},
            now=now,
        )
        shares = await tx.notify.shares.of_job(job.id)
    return next(s for s in shares if s.user_id == user.id)


async def unshare_job(svc: Services, who: Principal, job_id: int, email: str) -> None:
    """Take a share back (the job's creator or an admin; or the recipient, giving it up)."""
    email = check_email(email)
    async with svc.db.begin() as tx:
        user = await tx.accounts.user_by_email(email)
        if user is not None and user.id == who.user_id:
            job = await readable_job(tx, who, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
        else:
            job = await _own_job(tx, who, job_id, "unsharing a job")
        if user is None or not await tx.notify.shares.remove(job.id, user.id):
            raise NotFound(f"job {job_id} is not shared with {email}")
        # Outside the job's organization the share was the only way in: stop telling them.
        if await tx.accounts.role_of(job.org_id, user.id) is None:
            await tx.notify.watchers.remove("job", job.id, user.id)
        await record_job_event(
            svc,
            tx,
            job,
            "job.unshared",
            actor=who.actor,
            data={"user_id": user.id, "email": user.email},
        )


async def list_shares(svc: Services, who: Principal, job_id: int) -> list[Share]:
    """Who a job is shared with, in the order it was shared."""
    require(who.role, Role.VIEWER, "reading a job's shares")
    async with svc.db.read() as tx:
        job = await readable_job(tx, who, job_id)
        if job is None:
            raise NotFound(f"no job {job_id}")
        return await tx.notify.shares.of_job(job.id)


async def shared_with(
    svc: Services, who: Principal, job_ids: Sequence[int]
) -> dict[int, list[str]]:
    """For each job id the caller can read, the emails it is shared with (``sharedWith``)."""
    require(who.role, Role.VIEWER, "reading jobs' shares")
    async with svc.db.read() as tx:
        return await tx.notify.shares.emails_of_jobs(job_ids, who.org_id, who.user_id)
