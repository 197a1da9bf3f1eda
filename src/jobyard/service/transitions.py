"""The one place a job or node run changes state: checked against the domain tables,
written with compare-and-set, and recorded as an event in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobyard.domain.jobs import (
    JobStatus,
    NodeRunStatus,
    can_run_transition,
    check_job_transition,
)
from jobyard.domain.records import Job, NodeRun
from jobyard.service.context import Services
from jobyard.service.events import record, record_job_event
from jobyard.store import Tx

JOB_TIME_FIELDS = {
    JobStatus.NEW: "submitted_at",
    JobStatus.RUNNING: "started_at",
}


async def move_job(
    svc: Services,
    tx: Tx,
    job: Job,
    target: JobStatus,
    *,
    actor: str | None,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Job | None:
    """Move a job to ``target``; None if another writer moved it first."""
    check_job_transition(job.status, target)
    now = svc.clock.now()
    changes: dict[str, Any] = {"status": target.value, "updated_at": now, **(values or {})}
    if target in JOB_TIME_FIELDS:
        changes.setdefault(JOB_TIME_FIELDS[target], now)
    if target.terminal:
        changes.setdefault("finished_at", now)
        changes.setdefault("deadline", None)
    if not await tx.jobs.set_status(job.id, job.status, changes):
        return None
    await record_job_event(
        svc,
        tx,
        job,
        "job.status",
        actor=actor,
        from_status=job.status.value,
        to_status=target.value,
        reason=reason,
        data=data,
        now=now,
    )
    updated = await tx.jobs.get_any(job.id)
    return updated


async def move_run(
    svc: Services,
    tx: Tx,
    run: NodeRun,
    target: NodeRunStatus,
    *,
    actor: str | None,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Move a node run to ``target`` if the table allows it and nobody moved it first."""
    if not can_run_transition(run.status, target):
        return False
    now = now or svc.clock.now()
    changes: dict[str, Any] = {"status": target.value, "updated_at": now, **(values or {})}
    if target is NodeRunStatus.RUNNING:
        changes.setdefault("started_at", now)
    if target.terminal:
        changes.setdefault("finished_at", now)
        if reason is not None:
            changes.setdefault("reason", reason)
    if not await tx.jobs.set_run(run.id, run.status, changes):
        return False
    await record(
        svc,
        tx,
        org_id=run.org_id,
        kind="node_run",
        subject_id=run.id,
        job_id=run.job_id,
        node_name=run.node_name,
        type="node_run.status",
        from_status=run.status.value,
        to_status=target.value,
        actor=actor,
        reason=reason,
        data={"exit_code": changes["exit_code"]} if "exit_code" in changes else None,
        now=now,
    )
    return True
