"""Runs that wait: retries after their backoff, runs queued by a concurrency policy,
approvals and inputs past their hold timeout.

The observer here runs inside the transaction that finishes a job of a task: it clears the
job's hold and, when the job failed and the task's retry policy allows another attempt,
writes that attempt at once as an ``onhold`` job with a release time. Counting attempts
in rows, not in memory, is what makes retries survive a restart. The scheduler loop then
calls ``release_due`` and ``release_queued`` to start what may start.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

from jobyard.domain.jobs import JOB_TERMINAL, JobStatus
from jobyard.domain.outcomes import job_outcome
from jobyard.domain.policies import Admission, Concurrency
from jobyard.domain.records import Event, Job, NodeRun
from jobyard.domain.tasks import Hold, Task, TaskRun
from jobyard.domain.triggers import Trigger
from jobyard.service.context import Services
from jobyard.service.events import record_job_event
from jobyard.service.jobs import abort_job, add_job, release_job
from jobyard.service.launches import admission, busy_nodes, replace_runs, wake_scheduler
from jobyard.service.transitions import move_job
from jobyard.store import Tx

log = logging.getLogger("jobyard.tasks")

_TERMINAL = frozenset(s.value for s in JOB_TERMINAL)
# Columns a retry copies from the failed attempt: the same command on the same target.
_CLONED = (
    "name",
    "description",
    "command",
    "argv",
    "target",
    "quorum",
    "run_timeout",
    "env",
    "dir",
    "capture_output",
    "kind",
    "arguments",
    "task_id",
    "trigger_id",
)


@contextlib.asynccontextmanager
async def isolated(tx: Tx) -> AsyncIterator[None]:
    """A savepoint: a failure inside undoes only this part (and its after-commit calls)."""
    mark = len(tx._after_commit)
    try:
        async with tx.conn.begin_nested():
            yield
    except Exception:
        del tx._after_commit[mark:]
        raise


def ended_failed(job: Job, runs: list[NodeRun]) -> bool:
    """Whether a finished job counts as a failed attempt for its task's retry policy."""
    return job_outcome(job, runs).is_failure


async def on_job_finished(svc: Services, tx: Tx, event: Event) -> None:
    """A job of a task finished: free its hold, wake the queues, maybe schedule a retry."""
    if event.kind != "job" or event.type != "job.status" or event.to_status not in _TERMINAL:
        return
    run = await tx.task_runs.get(event.subject_id)
    if run is None:
        return
    if run.hold is not None:
        await tx.task_runs.set_hold(run.job_id, None)
    wake_scheduler(svc, tx)
    if event.to_status == JobStatus.ABORTED.value or run.task_id is None:
        return
    job = await tx.jobs.get_any(run.job_id)
    if job is None or job.kind != "script" or not ended_failed(job, await tx.jobs.runs(job.id)):
        return
    task = await tx.tasks.get(job.org_id, run.task_id)
    if task is None:
        return
    delay = task.spec.retry.delay_after(run.try_no)
    if delay is not None:
        await schedule_retry(svc, tx, job, run, task, delay)


async def schedule_retry(
    svc: Services, tx: Tx, job: Job, run: TaskRun, task: Task, delay: float
) -> Job:
    """Write the next attempt of a failed job: onhold until its backoff has passed."""
    now = svc.clock.now()
    attempt = run.try_no + 1
    values: dict[str, Any] = {c: getattr(job, c) for c in _CLONED}
    values["meta"] = {**job.meta, "try": attempt, "retry_of": job.id}
    why = f"attempt {attempt} of {task.spec.retry.attempts}, after {delay:g} s"
    retry = await add_job(
        svc,
        tx,
        values,
        org_id=job.org_id,
        created_by=job.created_by,
        actor="retry",
        then=JobStatus.ONHOLD,
        reason=why,
    )
    await tx.task_runs.insert(
        {
            "job_id": retry.id,
            "org_id": job.org_id,
            "task_id": run.task_id,
            "trigger_id": run.trigger_id,
            "stack_id": run.stack_id,
            "try_no": attempt,
            "first_job_id": run.first_job_id or job.id,
            "hold": Hold.RETRY.value,
            "release_at": now + dt.timedelta(seconds=delay),
            "requested_by": run.requested_by,
            "approvers": None,
            "created_at": now,
        }
    )
    await record_job_event(
        svc,
        tx,
        job,
        "job.retry_scheduled",
        actor="retry",
        reason=why,
        data={"next_job_id": retry.id, "attempt": attempt, "delay": delay},
        now=now,
    )
    return retry


class _Origins:
    """Tasks and triggers of held runs, loaded once per pass."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.tasks: dict[int, Task | None] = {}
        self.triggers: dict[int, Trigger | None] = {}

    async def of(self, run: TaskRun) -> tuple[Task | None, Trigger | None]:
        task = trigger = None
        if run.task_id is not None:
            if run.task_id not in self.tasks:
                self.tasks[run.task_id] = await self.tx.tasks.get(run.org_id, run.task_id)
            task = self.tasks[run.task_id]
        if run.trigger_id is not None:
            if run.trigger_id not in self.triggers:
                self.triggers[run.trigger_id] = await self.tx.triggers.get(
                    run.org_id, run.trigger_id
                )
            trigger = self.triggers[run.trigger_id]
        return task, trigger


async def _start_held(
    svc: Services, tx: Tx, job: Job, run: TaskRun, origins: _Origins, *, queued: bool
) -> bool:
    """Start a held run if its policies allow; a retry that may not start yet is queued."""
    task, trigger = await origins.of(run)
    if queued:
        policies = _policies(task, trigger)
        for policy, scope in policies:
            running = await tx.task_runs.running(run.org_id, **scope)
            if not policy.may_release(len(running)):
                return False
        strict = any(p.mode is not Concurrency.ALLOW for p, _ in policies)
        if trigger is not None and strict and await busy_nodes(tx, run.org_id, job.target):
            return False  # queued for its nodes: they still run another job
        decision, replace, why = Admission.START, list[int](), ""
    else:
        decision, replace, why = await admission(svc, tx, run.org_id, task, trigger, job.target)
    if decision is Admission.REFUSE:
        await abort_job(svc, tx, job, actor="retry", reason=f"not started: {why}")
        return False
    if decision is Admission.QUEUE:
        await tx.task_runs.set_hold(job.id, Hold.QUEUE)
        return False
    if decision is Admission.REPLACE:
        await replace_runs(svc, tx, replace, "retry")
    await tx.task_runs.set_hold(job.id, None)
    await release_job(svc, tx, job, "retry" if run.try_no > 1 and not queued else "queue")
    return True


def _policies(task: Task | None, trigger: Trigger | None) -> list[tuple[Any, dict[str, int]]]:
    out: list[tuple[Any, dict[str, int]]] = []
    if task is not None:
        out.append((task.spec.concurrency, {"task_id": task.id}))
    if trigger is not None:
        out.append((trigger.overlap, {"trigger_id": trigger.id}))
    return out


async def _fail_held(svc: Services, tx: Tx, job_id: int, exc: Exception) -> None:
    """A held run that cannot start (its target matches no node ...) is aborted, not retried
    forever."""
    job = await tx.jobs.get_any(job_id, for_update=True)
    if job is not None and job.status.active:
        await abort_job(svc, tx, job, actor="scheduler", reason=f"could not start: {exc}")


async def release_due(svc: Services, now: dt.datetime, limit: int = 200) -> int:
    """Start retries whose backoff has passed; time out approvals and inputs past their
    hold timeout. Returns how many runs it handled."""
    handled = 0
    async with svc.db.begin() as tx:
        origins = _Origins(tx)
        for run in await tx.task_runs.due(now, [Hold.RETRY, Hold.APPROVAL, Hold.INPUT], limit):
            job = await tx.jobs.get_any(run.job_id, for_update=True)
            if job is None or job.status is not JobStatus.ONHOLD:
                await tx.task_runs.set_hold(run.job_id, None)
                continue
            handled += 1
            if run.hold is Hold.RETRY:
                try:
                    async with isolated(tx):
                        await _start_held(svc, tx, job, run, origins, queued=False)
                except Exception as exc:
                    log.warning("retry job %s could not start: %s", job.id, exc)
                    await _fail_held(svc, tx, job.id, exc)
            else:
                what = "decision" if run.hold is Hold.APPROVAL else "input"
                await move_job(
                    svc,
                    tx,
                    job,
                    JobStatus.TIMED_OUT,
                    actor="scheduler",
                    reason=f"no {what} before the task's hold timeout",
                    values={"state": "expired"},
                )
    return handled


async def release_queued(svc: Services, limit: int = 500) -> int:
    """Start queued runs, oldest first, while their task's and trigger's policies allow."""
    started = 0
    async with svc.db.begin() as tx:
        origins = _Origins(tx)
        blocked: set[tuple[int | None, int | None]] = set()
        for run in await tx.task_runs.queued(limit):
            key = (run.task_id, run.trigger_id)
            if key in blocked:
                continue
            if run.task_id is not None:
                # Serialize with admissions of new runs of the task (PostgreSQL row lock).
                await tx.tasks.get(run.org_id, run.task_id, for_update=True)
            job = await tx.jobs.get_any(run.job_id, for_update=True)
            if job is None or job.status is not JobStatus.ONHOLD:
                await tx.task_runs.set_hold(run.job_id, None)
                continue
            try:
                async with isolated(tx):
                    if await _start_held(svc, tx, job, run, origins, queued=True):
                        started += 1
                    else:
                        blocked.add(key)
            except Exception as exc:
                log.warning("queued job %s could not start: %s", job.id, exc)
                await _fail_held(svc, tx, job.id, exc)
    return started
