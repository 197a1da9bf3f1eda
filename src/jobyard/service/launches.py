"""Launching runs of tasks and stacks: one job per run, inside the caller's transaction.

Every way of starting something reusable comes through ``launch``: running a task or a
stack by hand, a trigger's slot, an anonymous hook, a retry. It checks the arguments,
applies the concurrency policy of the task and the overlap policy of the trigger, writes
the job (``service.jobs.add_job``) and its task run (origin, attempt, hold), and records
what people must act on (``approval.requested``, ``input.requested``,
``notification.requested``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jobyard.domain.errors import Conflict, Invalid, JobyardError
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.policies import (
    Admission,
    Concurrency,
    ConcurrencyPolicy,
    busy_words,
    on_busy_nodes,
)
from jobyard.domain.records import Job
from jobyard.domain.secrets import masked
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Hold, Task, TaskType, bind_arguments, job_spec
from jobyard.domain.triggers import Stack, Trigger
from jobyard.service.context import Services
from jobyard.service.events import record_job_event
from jobyard.service.jobs import abort_job, add_job, placement
from jobyard.service.secrets import SecretBox, seal_arguments
from jobyard.service.transitions import admit, move_job
from jobyard.store import Tx

# Hub topic that wakes the scheduler loop (held runs to release, triggers changed).
SCHEDULER_TOPIC = "scheduler"


@dataclass(frozen=True)
class Launched:
    """The job a launch made, or why it made none (a trigger's slot that was skipped);
    ``queued`` says why a job made waits in its concurrency queue."""

    job: Job | None
    skipped: str | None = None
    queued: str | None = None


@dataclass(frozen=True)
class Origin:
    """Who or what starts the run."""

    actor: str
    created_by: int | None = None
    trigger: Trigger | None = None
    try_no: int = 1
    first_job_id: int | None = None


def wake_scheduler(svc: Services, tx: Tx) -> None:
    tx.after_commit(lambda: svc.hub.publish(SCHEDULER_TOPIC, None))


def _name(task: Task | None, stack: Stack | None, trigger: Trigger | None) -> str:
    if trigger is not None and trigger.name:
        return trigger.name
    if task is not None:
        return task.name
    assert stack is not None
    return stack.name


def _script_spec(
    task: Task | None,
    stack: Stack | None,
    values: dict[str, Any],
    target: Target | None,
    name: str,
) -> JobSpec:
    where = target or (stack.target if stack is not None else None)
    if task is not None:
        env = stack.env if stack is not None else None
        return job_spec(task.spec, values, target=where, env=env, name=name)
    assert stack is not None
    if not stack.command:
        raise Invalid(f"stack {stack.name!r} has neither a task nor a command to run", "stack")
    return JobSpec(target=stack.target, command=stack.command, env=dict(stack.env), name=name)


def _no_command_values(task: Task, name: str) -> dict[str, Any]:
    """Job columns of an approval or notification: nothing runs on nodes."""
    return {
        "name": name,
        "description": task.spec.description,
        "command": "",
        "argv": None,
        "target": {},
        "quorum": "0",
        "run_timeout": None,
        "env": {},
        "dir": None,
        "capture_output": False,
        "meta": {},
    }


async def admission(
    svc: Services,
    tx: Tx,
    org_id: int,
    task: Task | None,
    trigger: Trigger | None,
    target: dict[str, Any] | None = None,
) -> tuple[Admission, list[int], str]:
    """Apply the task's concurrency and the trigger's overlap policy to one new run; for a
    trigger's run on ``target``, also to the nodes it finds running other jobs.

    Returns the decision, the jobs to stop first (replace), and a reason when refused.
    """
    scopes: list[tuple[ConcurrencyPolicy, dict[str, int], str]] = []
    if task is not None and task.spec.concurrency.mode.value != "allow":
        # Serialize admissions of one task across transactions (PostgreSQL row lock).
        await tx.tasks.get(org_id, task.id, for_update=True)
        scopes.append((task.spec.concurrency, {"task_id": task.id}, f"task {task.name!r}"))
    if trigger is not None and trigger.overlap.mode.value != "allow":
        what = f"trigger {trigger.name or trigger.id}"
        scopes.append((trigger.overlap, {"trigger_id": trigger.id}, what))
    decision, replace, why = Admission.START, [], ""
    for policy, scope, what in scopes:
        running = await tx.task_runs.running(org_id, **scope)
        waiting = await tx.task_runs.waiting(Hold.QUEUE, **scope, limit=policy.queue + 1)
        verdict = policy.admit(len(running), len(waiting))
        if verdict is Admission.REFUSE:
            detail = (
                f"{what} allows {policy.limit} run(s) at a time and {len(running)} is running"
                if policy.mode.value == "forbid"
                else f"the queue of {what} is full ({policy.queue} waiting)"
            )
            return Admission.REFUSE, [], f"{detail} (running: {running[:5]})"
        if verdict is Admission.REPLACE:
            surplus = len(running) - policy.limit + 1
            replace += running[:surplus]
            decision = Admission.REPLACE if decision is Admission.START else decision
        elif verdict is Admission.QUEUE:
            decision, why = Admission.QUEUE, f"waiting for a free slot of {what}"
    if trigger is not None and target is not None and scopes and decision is not Admission.QUEUE:
        return await _node_admission(
            tx, org_id, target, [p for p, _, _ in scopes], decision, replace
        )
    return decision, replace, why


async def _node_admission(
    tx: Tx,
    org_id: int,
    target: dict[str, Any],
    policies: list[ConcurrencyPolicy],
    decision: Admission,
    replace: list[int],
) -> tuple[Admission, list[int], str]:
    """A trigger's run whose nodes are running other jobs follows its policies: skipped
    (forbid) or queued until the nodes are free (queue, replace)."""
    busy = await busy_nodes(tx, org_id, target, replace)
    if not busy:
        return decision, replace, ""
    verdict = on_busy_nodes(policies)
    if verdict is Admission.REFUSE:
        return (
            Admission.REFUSE,
            [],
            f"skipped: nodes busy: {busy_words(busy)}; the concurrency policy forbid "
            "runs nothing beside another job",
        )
    if verdict is Admission.QUEUE:
        return Admission.QUEUE, replace, f"waiting for busy nodes: {busy_words(busy)}"
    return decision, replace, ""


async def busy_nodes(
    tx: Tx, org_id: int, target: dict[str, Any], exclude: list[int] | None = None
) -> dict[str, int]:
    """The nodes a run on ``target`` would use that are running another job (name -> job)."""
    names, _ = await placement(tx, org_id, Target.from_json(target))
    return await tx.nodes.occupied(org_id, names, exclude)


async def replace_runs(svc: Services, tx: Tx, job_ids: list[int], actor: str) -> None:
    for job_id in job_ids:
        job = await tx.jobs.get_any(job_id, for_update=True)
        if job is not None and job.status.active:
            await abort_job(svc, tx, job, actor=actor, reason="replaced by a newer run")


def job_row(
    task: Task | None,
    stack: Stack | None,
    arguments: Any,
    origin: Origin,
    box: SecretBox,
    target: Target | None = None,
) -> tuple[TaskType, dict[str, Any], dict[str, Any]]:
    """The kind of run, its checked argument values (secret ones sealed), and the job
    columns it makes."""
    if task is None and stack is None:
        raise Invalid("nothing to run: give a task or a stack", "task")
    kind = task.type if task is not None else TaskType.SCRIPT
    schema = task.spec.arguments if task is not None else ()
    if kind is TaskType.INPUT:
        if arguments:
            raise Invalid(
                "an input task takes its arguments once its job waits for them: "
                "POST /api/v1/jobs/{id}/input",
                "arguments",
            )
        values: dict[str, Any] = {}
    else:
        values = seal_arguments(box, schema, bind_arguments(schema, arguments))
    name = _name(task, stack, origin.trigger)
    if kind.runs_command:
        spec = _script_spec(task, stack, {} if kind is TaskType.INPUT else values, target, name)
        row = spec.row()
    else:
        assert task is not None
        row = _no_command_values(task, name)
    row.update(
        kind="script" if kind.runs_command else kind.value,
        arguments=values if kind is not TaskType.INPUT else None,
        task_id=task.id if task is not None else None,
        trigger_id=origin.trigger.id if origin.trigger is not None else None,
    )
    meta = dict(row.get("meta") or {})
    if task is not None:
        meta["task"] = task.name
    if stack is not None:
        meta["stack"] = stack.name
    if origin.trigger is not None:
        meta["trigger"] = origin.trigger.name or origin.trigger.id
    if origin.try_no > 1:
        meta["try"] = origin.try_no
    row["meta"] = meta
    return kind, values, row


def task_run_row(
    job: Job,
    task: Task | None,
    stack: Stack | None,
    origin: Origin,
    hold: Hold | None,
    release_at: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "org_id": job.org_id,
        "task_id": task.id if task is not None else None,
        "trigger_id": origin.trigger.id if origin.trigger is not None else None,
        "stack_id": stack.id if stack is not None else None,
        "try_no": origin.try_no,
        "first_job_id": origin.first_job_id or job.id,
        "hold": hold.value if hold else None,
        "release_at": release_at,
        "requested_by": origin.created_by,
        "approvers": (
            list(task.spec.approvers)
            if task is not None and task.type is TaskType.APPROVAL
            else None
        ),
        "created_at": now,
    }


async def launch(
    svc: Services,
    tx: Tx,
    *,
    org_id: int,
    task: Task | None,
    stack: Stack | None,
    arguments: Any,
    origin: Origin,
    target: Target | None = None,
    refuse: str = "raise",
) -> Launched:
    """Start one run of a task (optionally on a stack) or of a stack's own command.

    ``refuse="skip"`` turns a refusal by a concurrency policy into a skipped launch (what a
    trigger wants) instead of a Conflict (what a person starting a run wants).
    """
    kind, values, row = job_row(task, stack, arguments, origin, svc.secrets, target)

    hold: Hold | None = None
    then: JobStatus = JobStatus.NEW
    reason: str | None = None
    if kind is TaskType.APPROVAL:
        hold, then, reason = Hold.APPROVAL, JobStatus.ONHOLD, "waiting for approval"
    elif kind is TaskType.INPUT:
        hold, then, reason = Hold.INPUT, JobStatus.ONHOLD, "waiting for input"
    elif kind is TaskType.NOTIFICATION:
        then, reason = JobStatus.ONHOLD, "recording a notification"
    elif kind is TaskType.SCRIPT:
        decision, replace, why = await admission(
            svc, tx, org_id, task, origin.trigger, row["target"]
        )
        if decision is Admission.REFUSE:
            if refuse == "skip":
                return Launched(None, skipped=why)
            raise Conflict(why)
        if decision is Admission.REPLACE:
            await replace_runs(svc, tx, replace, origin.actor)
        elif decision is Admission.QUEUE:
            hold, then, reason = Hold.QUEUE, JobStatus.ONHOLD, why
    job = await add_job(
        svc,
        tx,
        row,
        org_id=org_id,
        created_by=origin.created_by,
        actor=origin.actor,
        then=then,
        reason=reason,
    )
    now = svc.clock.now()
    release_at = None
    if task is not None and hold in (Hold.APPROVAL, Hold.INPUT) and task.spec.hold_timeout:
        release_at = now + dt.timedelta(seconds=task.spec.hold_timeout)
    await tx.task_runs.insert(task_run_row(job, task, stack, origin, hold, release_at, now))
    if task is not None:
        job = await _announce(svc, tx, job, task, kind, origin, values)
    return Launched(job, queued=reason if hold is Hold.QUEUE else None)


async def _announce(
    svc: Services,
    tx: Tx,
    job: Job,
    task: Task,
    kind: TaskType,
    origin: Origin,
    values: dict[str, Any],
) -> Job:
    """Record what people must act on; finish a notification at once."""
    base = {"task_id": task.id, "task": task.name, "url": svc.url(f"/api/v1/jobs/{job.id}")}
    if kind is TaskType.APPROVAL:
        await record_job_event(
            svc,
            tx,
            job,
            "approval.requested",
            actor=origin.actor,
            data={
                **base,
                "approvers": list(task.spec.approvers),
                "requested_by": origin.created_by,
                "approve_label": task.spec.approve_label,
                "reject_label": task.spec.reject_label,
                "arguments": masked(values),
                "approve_url": svc.url(f"/api/v1/jobs/{job.id}/approve"),
                "reject_url": svc.url(f"/api/v1/jobs/{job.id}/reject"),
            },
        )
    elif kind is TaskType.INPUT:
        await record_job_event(
            svc,
            tx,
            job,
            "input.requested",
            actor=origin.actor,
            data={
                **base,
                "fields": [a.as_json() for a in task.spec.arguments],
                "requested_by": origin.created_by,
                "input_url": svc.url(f"/api/v1/jobs/{job.id}/input"),
            },
        )
    elif kind is TaskType.NOTIFICATION:
        await record_job_event(
            svc,
            tx,
            job,
            "notification.requested",
            actor=origin.actor,
            data={
                **base,
                "message": task.spec.message or f"Task {task.name} ran",
                "recipients": list(task.spec.recipients),
                "arguments": masked(values),
            },
        )
        done = await move_job(
            svc,
            tx,
            job,
            JobStatus.COMPLETE,
            actor=origin.actor,
            reason="notification recorded",
            values={"state": "success"},
        )
        assert done is not None
        return done
    return job


# -- many runs at once (the scheduler's common case)


@dataclass(frozen=True)
class Planned:
    """A script run whose arguments are checked and whose target is resolved, ready to be
    written together with others."""

    org_id: int
    task: Task | None
    stack: Stack | None
    origin: Origin
    row: dict[str, Any]
    nodes: list[str]
    place: dict[str, Any]


def batchable(task: Task | None, trigger: Trigger | None) -> bool:
    """Whether a run needs no admission decision and no hold: a script under ``allow``."""
    if task is not None and (
        task.type is not TaskType.SCRIPT or task.spec.concurrency.mode is not Concurrency.ALLOW
    ):
        return False
    return trigger is None or trigger.overlap.mode is Concurrency.ALLOW


class Placements:
    """Targets resolved once per batch (the nodes do not change inside one transaction)."""

    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self._found: dict[tuple[int, str], tuple[list[str], dict[str, Any]] | Exception] = {}

    async def of(self, org_id: int, target: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        key = (org_id, json.dumps(target, sort_keys=True))
        if key not in self._found:
            try:
                self._found[key] = await placement(self.tx, org_id, Target.from_json(target))
            except JobyardError as exc:
                self._found[key] = exc
        found = self._found[key]
        if isinstance(found, Exception):
            raise found
        return found


async def plan_launch(
    places: Placements,
    *,
    org_id: int,
    task: Task | None,
    stack: Stack | None,
    arguments: Any,
    origin: Origin,
    box: SecretBox,
) -> Planned:
    """Check and place one run of a batch; raises what ``launch`` would."""
    _, _, row = job_row(task, stack, arguments, origin, box)
    nodes, place = await places.of(org_id, row["target"])
    return Planned(org_id, task, stack, origin, row, nodes, place)


async def launch_planned(svc: Services, tx: Tx, planned: Sequence[Planned]) -> list[Job]:
    """Write planned runs in a few statements: the same rows and events (``job.created`` as
    a draft, then ``job.status`` draft → new, by ``transitions.admit``) as ``launch`` writes
    one run at a time."""
    if not planned:
        return []
    now = svc.clock.now()
    jobs = await admit(
        svc,
        tx,
        [
            (
                {**p.row, **p.place, "org_id": p.org_id, "created_by": p.origin.created_by},
                p.origin.actor,
            )
            for p in planned
        ],
        reason="submitted",
    )
    await tx.jobs.insert_runs_many([(j, p.nodes) for j, p in zip(jobs, planned, strict=True)], now)
    await tx.task_runs.insert_many(
        [
            task_run_row(j, p.task, p.stack, p.origin, None, None, now)
            for j, p in zip(jobs, planned, strict=True)
        ]
    )
    ids = [j.id for j in jobs]

    def dispatch() -> None:
        for job_id in ids:
            svc.hub.publish("dispatch", job_id)

    tx.after_commit(dispatch)
    return jobs
