"""Decisions and input from people: approving or rejecting an approval job, giving the
arguments an input job waits for, answering input a running command asked for.

Approval::

    onhold ──approve──▶ complete (state "success")
       └────reject───▶ complete (state "failure")

Only the task's approvers decide (403 otherwise); the requester only when the task allows
self-approval; a job no longer ``onhold`` answers 409; a job that is not an approval, 422.

Input, before the run (a job of an ``input`` task)::

    onhold ──input (checked against the task's arguments)──▶ new ──▶ (dispatched as usual)

Input during the run: the agent relays a command's request (``request_input``), which
records ``input.requested`` with the fields wanted and a deadline; a person answers through
the same ``POST /api/v1/jobs/{id}/input``; the answer is published on the hub topic
``input:{job_id}`` for the agent connection to hand to the command. A request not answered
by its deadline expires (``input.expired``), and that is published the same way.
"""

from __future__ import annotations

import datetime as dt
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.records import Job, Principal
from jobyard.domain.secrets import masked
from jobyard.domain.tasks import (
    Argument,
    Hold,
    InputRequest,
    InputStatus,
    argument_env,
    bind_arguments,
    check_schema,
    with_arguments,
)
from jobyard.service.context import Services
from jobyard.service.events import record, record_job_event
from jobyard.service.jobs import JobView, release_job
from jobyard.service.secrets import seal_arguments
from jobyard.service.transitions import move_job
from jobyard.store import Tx

MAX_INPUT_WAIT = 7 * 24 * 3600


def input_topic(job_id: int) -> str:
    return f"input:{job_id}"


def _publisher(svc: Services, job_id: int, message: dict[str, Any]) -> Callable[[], None]:
    return lambda: svc.hub.publish(input_topic(job_id), message)


async def _job(tx: Tx, who: Principal, job_id: int) -> Job:
    job = await tx.jobs.get(who.org_id, job_id, for_update=True)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def decide(
    svc: Services, who: Principal, job_id: int, approve: bool, comment: str | None = None
) -> JobView:
    """Approve (state ``success``) or reject (state ``failure``) an approval job."""
    require(who.role, Role.VIEWER, "deciding an approval")
    verb = "approve" if approve else "reject"

    async def decide_tx(tx: Tx) -> JobView:
        job = await _job(tx, who, job_id)
        if job.kind != "approval":
            raise Invalid(f"job {job.id} is a {job.kind} job, not an approval", "job")
        run = await tx.task_runs.get(job.id)
        approvers = (run.approvers if run is not None else None) or []
        if who.user_id not in approvers:
            raise Forbidden(f"you are not an approver of job {job.id}")
        if run is not None and run.requested_by == who.user_id:
            task = await tx.tasks.get(job.org_id, job.task_id) if job.task_id else None
            if task is None or not task.spec.allow_self_approval:
                raise Forbidden(f"you requested job {job.id}: another approver must {verb} it")
        if job.status is not JobStatus.ONHOLD:
            raise Conflict(f"job {job.id} is {job.status}, not onhold: it was decided already")
        decision = {
            "decision": "approved" if approve else "rejected",
            "by": who.user_id,
            "email": who.email,
            "comment": comment,
        }
        moved = await move_job(
            svc,
            tx,
            job,
            JobStatus.COMPLETE,
            actor=who.actor,
            reason=f"{decision['decision']} by {who.email}" + (f": {comment}" if comment else ""),
            values={"state": "success" if approve else "failure", "result": decision},
            data=decision,
        )
        if moved is None:
            raise Conflict(f"job {job.id} changed while it was being decided; try again")
        return JobView(moved, [])

    return await svc.db.write(decide_tx)


async def give_input(svc: Services, who: Principal, job_id: int, arguments: Any) -> JobView:
    """Give a waiting job its arguments: an input job starts; a running command that asked
    gets its answer."""
    require(who.role, Role.USER, "giving input to a job")

    async def give(tx: Tx) -> JobView:
        job = await _job(tx, who, job_id)
        run = await tx.task_runs.get(job.id)
        if job.status is JobStatus.ONHOLD and run is not None and run.hold is Hold.INPUT:
            moved = await _start_with_input(svc, tx, who, job, arguments)
            return JobView(moved, await tx.jobs.runs(job.id))
        if job.status is JobStatus.RUNNING:
            pending = await tx.task_runs.open_inputs(job.id)
            if pending:
                await _answer(svc, tx, who, job, pending[0], arguments)
                return JobView(job, await tx.jobs.runs(job.id))
        raise Conflict(f"job {job.id} is {job.status} and waits for no input")

    return await svc.db.write(give)


async def _start_with_input(svc: Services, tx: Tx, who: Principal, job: Job, arguments: Any) -> Job:
    task = await tx.tasks.get(job.org_id, job.task_id) if job.task_id else None
    schema = task.spec.arguments if task is not None else ()
    values = seal_arguments(svc.secrets, schema, bind_arguments(schema, arguments))
    command, argv = with_arguments(
        "" if job.argv is not None else job.command, job.argv, values, schema
    )
    await tx.jobs.update(
        job.id,
        {
            "command": shlex.join(argv) if argv is not None else command,
            "argv": list(argv) if argv is not None else None,
            "env": {**job.env, **argument_env(schema, values)},
            "arguments": values,
        },
    )
    await tx.task_runs.set_hold(job.id, None)
    await record_job_event(
        svc, tx, job, "input.given", actor=who.actor, data={"arguments": masked(values)}
    )
    refreshed = await tx.jobs.get_any(job.id)
    assert refreshed is not None
    return await release_job(svc, tx, refreshed, who.actor)


async def _answer(
    svc: Services, tx: Tx, who: Principal, job: Job, request: InputRequest, arguments: Any
) -> None:
    fields = tuple(Argument.from_json(f) for f in request.fields)
    values = seal_arguments(svc.secrets, fields, bind_arguments(fields, arguments))
    now = svc.clock.now()
    closed = await tx.task_runs.close_input(
        request.id,
        {
            "status": InputStatus.ANSWERED.value,
            "answer": values,
            "answered_by": who.actor,
            "answered_at": now,
        },
    )
    if not closed:
        raise Conflict(f"input request {request.id} was answered or expired already")
    await record_job_event(
        svc,
        tx,
        job,
        "input.given",
        actor=who.actor,
        node_name=request.node_name,
        data={"request_id": request.id, "arguments": masked(values)},
        now=now,
    )
    message = {
        "request_id": request.id,
        "job_id": job.id,
        "node": request.node_name,
        "attempt": request.attempt,
        "status": InputStatus.ANSWERED.value,
        "values": svc.secrets.plain_env(values),  # for the command that asked
    }
    tx.after_commit(_publisher(svc, job.id, message))


@dataclass(frozen=True)
class InputAsk:
    """What a running command asks for, as its agent relays it."""

    job_id: int
    node: str
    attempt: int
    fields: list[dict[str, Any]]
    prompt: str = ""
    timeout: float = 3600.0


async def request_input(svc: Services, org_id: int, ask: InputAsk) -> InputRequest:
    """Record a running command's request for input (called for the agent that runs it)."""
    if not 1 <= ask.timeout <= MAX_INPUT_WAIT:
        raise Invalid(f"an input timeout is 1 to {MAX_INPUT_WAIT} seconds", "timeout")
    fields = check_schema([Argument.from_json(f) for f in ask.fields])
    now = svc.clock.now()

    async def record_ask(tx: Tx) -> InputRequest:
        job = await tx.jobs.get(org_id, ask.job_id)
        if job is None:
            raise NotFound(f"no job {ask.job_id}")
        if job.status is not JobStatus.RUNNING or job.attempt != ask.attempt:
            raise Conflict(f"job {job.id} is not running attempt {ask.attempt}")
        request = await tx.task_runs.insert_input(
            {
                "org_id": org_id,
                "job_id": job.id,
                "node_name": ask.node,
                "attempt": ask.attempt,
                "prompt": ask.prompt,
                "fields": [f.as_json() for f in fields],
                "status": InputStatus.OPEN.value,
                "deadline": now + dt.timedelta(seconds=ask.timeout),
                "created_at": now,
            }
        )
        await record(
            svc,
            tx,
            org_id=org_id,
            kind="job",
            subject_id=job.id,
            job_id=job.id,
            node_name=ask.node,
            type="input.requested",
            actor=ask.node,
            data={
                "request_id": request.id,
                "prompt": ask.prompt,
                "fields": request.fields,
                "deadline": request.deadline.isoformat() if request.deadline else None,
                "input_url": svc.url(f"/api/v1/jobs/{job.id}/input"),
            },
            now=now,
        )
        return request

    return await svc.db.write(record_ask)


async def pending_input(svc: Services, who: Principal, job_id: int) -> list[InputRequest]:
    """Open input requests of a running job."""
    require(who.role, Role.VIEWER, "reading a job")
    async with svc.db.read() as tx:
        if await tx.jobs.get(who.org_id, job_id) is None:
            raise NotFound(f"no job {job_id}")
        return await tx.task_runs.open_inputs(job_id)


async def expire_inputs(svc: Services, now: dt.datetime, limit: int = 200) -> int:
    """Close input requests whose deadline passed, and tell their commands."""
    async with svc.db.begin() as tx:
        expired = await tx.task_runs.expired_inputs(now, limit)
        for request in expired:
            if not await tx.task_runs.close_input(
                request.id, {"status": InputStatus.EXPIRED.value, "answered_at": now}
            ):
                continue
            await record(
                svc,
                tx,
                org_id=request.org_id,
                kind="job",
                subject_id=request.job_id,
                job_id=request.job_id,
                node_name=request.node_name,
                type="input.expired",
                actor="scheduler",
                data={"request_id": request.id},
                now=now,
            )
            message = {
                "request_id": request.id,
                "job_id": request.job_id,
                "node": request.node_name,
                "attempt": request.attempt,
                "status": InputStatus.EXPIRED.value,
                "values": None,
            }
            tx.after_commit(_publisher(svc, request.job_id, message))
        return len(expired)
