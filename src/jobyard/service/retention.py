"""Retention policies (admins) and applying them (the retention loop).

Applying a policy deletes the organization's finished jobs older than it keeps jobs (with
their runs, events and files, as ``DELETE /api/v1/jobs/finished`` does) and drops the
output of finished jobs older than it keeps output (stdout, stderr and output files; the
job and its history stay). Each application that removed something is recorded as a
``retention.applied`` event of the organization, with what went.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobyard.domain.accounts import Role, require
from jobyard.domain.records import Principal
from jobyard.domain.retention import RetentionPolicy, check_days
from jobyard.service import events, history
from jobyard.service.context import Services
from jobyard.store import Tx
from jobyard.store.retention import RetentionRepo

BATCH = 500


@dataclass(frozen=True)
class Applied:
    org_id: int
    jobs_deleted: int
    outputs_cleared: int


async def get_policy(svc: Services, who: Principal) -> RetentionPolicy:
    require(who.role, Role.VIEWER, "reading the retention policy")
    async with svc.db.read() as tx:
        found = await RetentionRepo(tx.conn).get(who.org_id)
    return found or RetentionPolicy(who.org_id, None, None)


async def set_policy(
    svc: Services, who: Principal, keep_jobs_days: int | None, keep_output_days: int | None
) -> RetentionPolicy:
    require(who.role, Role.ADMIN, "changing the retention policy")
    policy = RetentionPolicy(
        who.org_id,
        check_days(keep_jobs_days, "keep_jobs_days"),
        check_days(keep_output_days, "keep_output_days"),
    )
    async with svc.db.begin() as tx:
        await RetentionRepo(tx.conn).put(policy, svc.clock.now())
        await _record(svc, tx, policy, "retention.changed", who.actor)
    return policy


async def _record(
    svc: Services, tx: Tx, policy: RetentionPolicy, type: str, actor: str, **counts: int
) -> None:
    """An event of the organization about its retention, with the policy in force."""
    await events.record(
        svc,
        tx,
        org_id=policy.org_id,
        kind="organization",
        subject_id=policy.org_id,
        type=type,
        now=svc.clock.now(),
        actor=actor,
        data={
            **counts,
            "keep_jobs_days": policy.keep_jobs_days,
            "keep_output_days": policy.keep_output_days,
        },
    )


async def apply_retention(svc: Services) -> list[Applied]:
    """Apply every organization's policy once; what each removed."""
    async with svc.db.read() as tx:
        policies = await RetentionRepo(tx.conn).all()
    done = []
    for policy in policies:
        applied = await _apply(svc, policy)
        if applied.jobs_deleted or applied.outputs_cleared:
            done.append(applied)
    return done


async def _apply(svc: Services, policy: RetentionPolicy) -> Applied:
    now = svc.clock.now()
    jobs_before = policy.jobs_before(now)
    deleted = 0
    if jobs_before is not None:
        deleted = await history.purge_finished(svc, policy.org_id, before=jobs_before)
    cleared = 0
    output_before = policy.output_before(now)
    while output_before is not None:
        async with svc.db.begin() as tx:
            repo = RetentionRepo(tx.conn)
            ids = await repo.jobs_with_output_before(policy.org_id, output_before, BATCH)
            keys: list[str] = []
            for job_id in ids:
                keys += await tx.files.delete_of_job(job_id)
            await repo.clear_output(ids)
            history.remove_files_after_commit(svc, tx, keys)
        cleared += len(ids)
        if len(ids) < BATCH:
            break
    if deleted or cleared:
        async with svc.db.begin() as tx:
            await _record(
                svc,
                tx,
                policy,
                "retention.applied",
                "retention",
                jobs_deleted=deleted,
                outputs_cleared=cleared,
            )
    return Applied(policy.org_id, deleted, cleared)
