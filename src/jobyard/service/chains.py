"""Running chained stacks: a stack run starts its first step's job; each step's job, when it
ends, starts the next one (or the ``on_failure`` step, or ends the run).

The chain advances in the transaction that ends a step's job (an event observer), so a
step's end and the next step's start commit together or not at all: a server killed
between them loses nothing and repeats nothing. ``stack_run_steps`` has a primary key
(run, step), so a step is started once however many writers try (the observer, the sweep
that finishes chains a path without observers left behind, another replica). Every change
of a run's status is recorded as an event (kind ``stack_run``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.chains import (
    OnFailure,
    StackRun,
    StackRunStatus,
    StackRunStep,
    Step,
    StepState,
    resolve,
    step_succeeded,
)
from jobyard.domain.errors import Conflict, Invalid, JobyardError, NotFound
from jobyard.domain.jobs import JOB_TERMINAL, JobStatus
from jobyard.domain.records import Event, Job, NodeRun, Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Task
from jobyard.domain.triggers import Stack
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.holds import isolated
from jobyard.service.jobs import abort_job
from jobyard.service.launches import Launched, Origin, launch
from jobyard.service.outputs import stream_text
from jobyard.store import Tx

log = logging.getLogger("jobyard.chains")

_TERMINAL = frozenset(s.value for s in JOB_TERMINAL)


class _AlreadyStarted(Exception):
    """Another writer started this step first: undo the job this attempt made."""


async def run_event(
    svc: Services,
    tx: Tx,
    run: StackRun,
    type: str,
    *,
    actor: str | None,
    from_status: str | None = None,
    to_status: str | None = None,
    reason: str | None = None,
    job_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    return await record(
        svc,
        tx,
        org_id=run.org_id,
        kind="stack_run",
        subject_id=run.id,
        job_id=job_id,
        type=type,
        actor=actor,
        from_status=from_status,
        to_status=to_status,
        reason=reason,
        data=data,
        now=svc.clock.now(),
    )


def _where(run: StackRun, target: dict[str, Any], env: dict[str, str]) -> Stack:
    """The stack as it was when the run started (what a step's job runs on, and with)."""
    return Stack(
        id=run.stack_id or 0,
        org_id=run.org_id,
        name=run.stack_name,
        description="",
        target=Target.from_json(target),
        env=env,
        task_id=None,
        command=None,
        created_by=run.created_by,
        created_at=run.created_at,
        updated_at=run.updated_at,
    )


async def _launch_step(
    svc: Services,
    tx: Tx,
    run: StackRun,
    idx: int,
    step: Step,
    previous: str | None,
    origin: Origin,
) -> Job:
    """Start step ``idx`` (``len(run.steps)``: the on_failure step) once."""
    task = await tx.tasks.get(run.org_id, step.task_id)
    if task is None:
        raise NotFound(f"step {idx + 1}: task {step.task_id} no longer exists")
    target, env = await tx.stack_runs.where(run.id)
    stack = _where(run, target, env)
    arguments = resolve(step.arguments, previous)
    async with isolated(tx):
        launched: Launched = await launch(
            svc,
            tx,
            org_id=run.org_id,
            task=task,
            stack=stack,
            arguments=arguments,
            origin=origin,
            target=step.target,
        )
        assert launched.job is not None
        job = launched.job
        if not await tx.stack_runs.claim_step(run.id, idx, job.id, svc.clock.now()):
            raise _AlreadyStarted
    job = await tx.jobs.update(job.id, {"meta": {**job.meta, "stack_run": run.id, "step": idx + 1}})
    await run_event(
        svc,
        tx,
        run,
        "stack_run.step_started",
        actor=origin.actor,
        job_id=job.id,
        reason=f"step {idx + 1} ({task.name})"
        if idx < len(run.steps)
        else f"on_failure step ({task.name})",
        data={"step": idx, "job_id": job.id, "task": task.name},
    )
    return job


async def start_chain(
    svc: Services, tx: Tx, stack: Stack, arguments: Any, origin: Origin
) -> tuple[StackRun, Job]:
    """Write a run of a chained stack and start its first step (in the caller's transaction)."""
    if arguments:
        raise Invalid(
            f"stack {stack.name!r} is a chain: its steps carry their own arguments", "arguments"
        )
    now = svc.clock.now()
    run = await tx.stack_runs.insert(
        {
            "org_id": stack.org_id,
            "stack_id": stack.id,
            "stack_name": stack.name,
            "status": StackRunStatus.RUNNING.value,
            "steps": [s.as_json() for s in stack.steps],
            "on_failure": stack.on_failure.as_json() if stack.on_failure else None,
            "env": dict(stack.env),
            "target": stack.target.as_json(),
            "trigger_id": origin.trigger.id if origin.trigger is not None else None,
            "created_by": origin.created_by,
            "actor": origin.actor,
            "created_at": now,
            "updated_at": now,
        }
    )
    await run_event(
        svc,
        tx,
        run,
        "stack_run.created",
        actor=origin.actor,
        to_status=StackRunStatus.RUNNING.value,
        data={"stack_id": stack.id, "stack": stack.name, "steps": len(stack.steps)},
    )
    job = await _launch_step(svc, tx, run, 0, stack.steps[0], None, origin)
    return run, job


async def start(
    svc: Services,
    tx: Tx,
    *,
    org_id: int,
    task: Task | None,
    stack: Stack | None,
    arguments: Any,
    origin: Origin,
    refuse: str = "raise",
) -> Launched:
    """Run a task, a stack's one task or command, or a chained stack's first step."""
    if stack is not None and stack.chained and task is None:
        _, job = await start_chain(svc, tx, stack, arguments, origin)
        return Launched(job)
    return await launch(
        svc,
        tx,
        org_id=org_id,
        task=task,
        stack=stack,
        arguments=arguments,
        origin=origin,
        refuse=refuse,
    )


# -- advancing


async def stdout_of(tx: Tx, runs: list[NodeRun]) -> str:
    """A step's output: its node's stdout (with several nodes, the first that succeeded,
    by name)."""
    ordered = sorted(runs, key=lambda r: r.node_name)
    chosen = next((r for r in ordered if r.status.value == "succeeded"), None)
    if chosen is None and ordered:
        chosen = ordered[0]
    return await stream_text(tx, chosen.id, "stdout") if chosen else ""


async def _finish(
    svc: Services, tx: Tx, run: StackRun, status: StackRunStatus, reason: str, actor: str | None
) -> None:
    if not await tx.stack_runs.finish(run.id, status, reason, svc.clock.now()):
        return
    await run_event(
        svc,
        tx,
        run,
        "stack_run.status",
        actor=actor,
        from_status=StackRunStatus.RUNNING.value,
        to_status=status.value,
        reason=reason,
        data={"stack": run.stack_name, "watchers": [run.created_by] if run.created_by else []},
    )


async def _failed(
    svc: Services, tx: Tx, run: StackRun, why: str, previous: str | None, origin: Origin
) -> None:
    """The chain stops on a failure: run the on_failure step if there is one, else end."""
    if run.on_failure is not None:
        try:
            await _launch_step(svc, tx, run, len(run.steps), run.on_failure, previous, origin)
        except _AlreadyStarted:
            return
        except JobyardError as exc:
            await _finish(
                svc, tx, run, StackRunStatus.FAILED, f"{why}; on_failure step: {exc.detail}", None
            )
            return
        await tx.stack_runs.set_reason(run.id, why)
        return
    await _finish(svc, tx, run, StackRunStatus.FAILED, why, None)


async def advance(svc: Services, tx: Tx, row: StackRunStep, job: Job) -> None:
    """Step ``row`` ended with ``job``: start what comes next, or end the run."""
    run = await tx.stack_runs.get(None, row.stack_run_id, for_update=True)
    if run is None or run.status is not StackRunStatus.RUNNING:
        return
    runs = await tx.jobs.runs(job.id)
    ok = step_succeeded(job.status.value, job.state, [r.status.value for r in runs])
    output = await stdout_of(tx, runs)
    origin = Origin(actor=f"stack:{run.stack_name}", created_by=run.created_by)
    if row.idx >= len(run.steps):
        outcome = "succeeded" if ok else "failed"
        reason = f"{run.reason or 'a step failed'}; the on_failure step {outcome}"
        await _finish(svc, tx, run, StackRunStatus.FAILED, reason, None)
        return
    step = run.steps[row.idx]
    if not ok and job.status is not JobStatus.ABORTED:
        retry = await _retry_of(tx, job)
        if retry is not None and await tx.stack_runs.move_step(run.id, row.idx, job.id, retry):
            # The task's retry policy tries again: the step waits for that attempt.
            await run_event(
                svc,
                tx,
                run,
                "stack_run.step_retried",
                actor=origin.actor,
                job_id=retry,
                reason=f"step {row.idx + 1}: job {job.id} failed, the task tries again",
                data={"step": row.idx, "job_id": retry, "failed_job_id": job.id},
            )
            return
    if not ok and (step.on_failure is OnFailure.STOP or job.status is JobStatus.ABORTED):
        why = f"step {row.idx + 1} failed (job {job.id}: {job.status.value})"
        await _failed(svc, tx, run, why, output, origin)
        return
    nxt = row.idx + 1
    if nxt >= len(run.steps):
        await _finish(svc, tx, run, StackRunStatus.SUCCEEDED, "every step ran", None)
        return
    try:
        await _launch_step(svc, tx, run, nxt, run.steps[nxt], output, origin)
    except _AlreadyStarted:
        return
    except JobyardError as exc:
        await _failed(svc, tx, run, f"step {nxt + 1} could not start: {exc.detail}", output, origin)


async def _retry_of(tx: Tx, job: Job) -> int | None:
    """The next attempt the task's retry policy made of a failed job (in this transaction,
    before this observer: ``holds`` observes first), if any."""
    for event in await tx.events.of_job(job.id):
        if event.type == "job.retry_scheduled" and event.data:
            found = event.data.get("next_job_id")
            if isinstance(found, int):
                return found
    return None


async def on_step_finished(svc: Services, tx: Tx, event: Event) -> None:
    """A job ended: if it was a step of a running chain, advance the chain."""
    if event.kind != "job" or event.type != "job.status" or event.to_status not in _TERMINAL:
        return
    row = await tx.stack_runs.step_of_job(event.subject_id)
    if row is None:
        return
    job = await tx.jobs.get_any(row.job_id)
    if job is None:
        return
    try:
        # A fault here must not undo the job's end: the sweep advances the chain later.
        async with isolated(tx):
            await advance(svc, tx, row, job)
    except Exception:
        log.exception("advancing stack run %s after job %s failed", row.stack_run_id, job.id)


async def sweep(svc: Services, limit: int = 100) -> int:
    """Advance running chains whose last step ended without the observer advancing them
    (returns how many). Safe to run anywhere, any time: starting a step is idempotent."""
    async with svc.db.read() as tx:
        stalled = await tx.stack_runs.stalled(limit)
    for run_id, job_id in stalled:
        try:
            async with svc.db.begin() as tx:
                row = await tx.stack_runs.step_of_job(job_id)
                job = await tx.jobs.get_any(job_id)
                if row is None:
                    continue
                if job is None:
                    found = await tx.stack_runs.get(None, run_id)
                    if found is not None:
                        await _finish(
                            svc, tx, found, StackRunStatus.FAILED, f"job {job_id} is gone", None
                        )
                    continue
                await advance(svc, tx, row, job)
        except Exception:
            log.exception("advancing stack run %s failed", run_id)
    return len(stalled)


# -- use cases


@dataclass(frozen=True)
class StepView:
    idx: int
    step: Step
    task: str | None
    state: StepState
    job: Job | None
    on_failure_step: bool = False


@dataclass(frozen=True)
class StackRunView:
    run: StackRun
    steps: list[StepView]


async def _view(tx: Tx, run: StackRun) -> StackRunView:
    started = {s.idx: s.job_id for s in await tx.stack_runs.steps(run.id)}
    chain = [*run.steps, *([run.on_failure] if run.on_failure else [])]
    out: list[StepView] = []
    for idx, step in enumerate(chain):
        task = await tx.tasks.get(run.org_id, step.task_id)
        job = await tx.jobs.get_any(started[idx]) if idx in started else None
        if job is None:
            state = StepState.SKIPPED if run.status.terminal else StepState.PENDING
        elif not job.status.terminal:
            state = StepState.RUNNING
        else:
            runs = await tx.jobs.runs(job.id)
            ok = step_succeeded(job.status.value, job.state, [r.status.value for r in runs])
            state = StepState.SUCCEEDED if ok else StepState.FAILED
        out.append(
            StepView(idx, step, task.name if task else None, state, job, idx >= len(run.steps))
        )
    return StackRunView(run, out)


async def _visible(tx: Tx, who: Principal, run_id: int, *, lock: bool = False) -> StackRun:
    found = await tx.stack_runs.get(who.org_id, run_id, for_update=lock)
    if found is None:
        raise NotFound(f"no stack run {run_id}")
    return found


async def get_stack_run(svc: Services, who: Principal, run_id: int) -> StackRunView:
    require(who.role, Role.VIEWER, "reading a stack run")
    async with svc.db.read() as tx:
        return await _view(tx, await _visible(tx, who, run_id))


async def list_stack_runs(
    svc: Services, who: Principal, offset: int, limit: int, stack_id: int | None = None
) -> Page[StackRun]:
    require(who.role, Role.VIEWER, "listing stack runs")
    async with svc.db.read() as tx:
        return await tx.stack_runs.page(who.org_id, offset, limit, stack_id)


async def stack_run_history(svc: Services, who: Principal, run_id: int) -> list[Event]:
    require(who.role, Role.VIEWER, "reading a stack run")
    async with svc.db.read() as tx:
        await _visible(tx, who, run_id)
        return (await tx.events.of_subject("stack_run", run_id, limit=500)).items


async def stop_stack_run(
    svc: Services, who: Principal, run_id: int, reason: str | None = None
) -> StackRunView:
    """Stop a run: it ends ``stopped``, its running step is aborted, the rest are skipped."""
    require(who.role, Role.USER, "stopping a stack run")
    async with svc.db.begin() as tx:
        run = await _visible(tx, who, run_id, lock=True)
        if run.status.terminal:
            raise Conflict(f"stack run {run_id} has ended already (status {run.status})")
        why = reason or f"stopped by {who.actor}"
        await _finish(svc, tx, run, StackRunStatus.STOPPED, why, who.actor)
        for s in await tx.stack_runs.steps(run.id):
            job = await tx.jobs.get_any(s.job_id, for_update=True)
            if job is not None and job.status.active:
                await abort_job(svc, tx, job, actor=who.actor, reason=f"stack run stopped: {why}")
        found = await tx.stack_runs.get(who.org_id, run_id)
        assert found is not None
        return await _view(tx, found)
