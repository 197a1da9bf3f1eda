"""Agents that poll instead of holding a WebSocket (TheEye's agents): their next job, and
their result.

A polling agent asks "what is my next job?" every few seconds. Each poll is the node's
heartbeat (a node whose polls stop for TTL + grace goes offline, as a silent WebSocket
agent does) and, when a job waits for the node, its vote and its run start at once: the
node run goes ``new → ready`` (an ack) and, once the job is running, ``ready → running``
(a run ack), through the same round rules as every other agent report. A job still
voting on other nodes is not handed out yet; a later poll takes it once it runs.

The result the agent sends later finishes the node run like a WebSocket agent's result;
its open-ended state word and its data are kept on the job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Node, NodeRun, Principal
from jobyard.domain.targets import check_node_name
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.jobs import JobView
from jobyard.service.outputs import append_output
from jobyard.service.rounds import load_round, persist_round
from jobyard.service.secrets import mask_output, opened
from jobyard.store import Tx

# The incarnation a node registered by polling carries: polls have no process identity.
POLLING = "polling"
MAX_STATE = 64


@dataclass(frozen=True)
class PolledResult:
    """What a polling agent reports when its command ended."""

    succeeded: bool
    exit_code: int | None = None
    state: str | None = None
    data: dict[str, Any] | None = None
    stdout: str = ""
    stderr: str = ""
    reason: str | None = None


def _agent(who: Principal) -> None:
    if who.role is not Role.AGENT:
        raise Forbidden("only an agent credential polls for jobs")


async def _seen(svc: Services, tx: Tx, who: Principal, name: str, now: dt.datetime) -> Node:
    """The node is alive: registered, online and heartbeating."""
    before = await tx.nodes.get(who.org_id, name, for_update=True)
    if before is not None and before.online and before.incarnation not in (None, POLLING):
        # Two agents under one name would both run its jobs.
        raise Conflict(
            f"node {name!r} is connected as a jobyard agent: poll under another hostname"
        )
    values: dict[str, Any] = {
        "online": True,
        "connected": True,
        "last_heartbeat": now,
        "incarnation": POLLING,
    }
    if before is None:
        values.update(tags=[], cluster=None, busy=False)
    node = await tx.nodes.upsert(who.org_id, name, values, now)
    if before is None or not before.online:
        await record(
            svc,
            tx,
            org_id=node.org_id,
            kind="node",
            subject_id=node.id,
            node_name=node.name,
            type="node.status",
            from_status="offline",
            to_status="online",
            actor=node.name,
            reason="agent polled",
            data={"incarnation": node.incarnation, "polling": True},
            now=now,
        )
        tx.after_commit(lambda: svc.hub.publish("clusters", None))
    return node


async def agent_alive(svc: Services, who: Principal, node: str) -> None:
    """A polling agent's keep-alive: the node's heartbeat, nothing more."""
    _agent(who)
    check_node_name(node)

    async def alive(tx: Tx) -> None:
        await _seen(svc, tx, who, node, svc.clock.now())

    await svc.db.write(alive)


async def register_agent(svc: Services, who: Principal, node: str) -> Node:
    """A polling agent registers its host (TheEye's ``POST /{customer}/host/{hostname}``):
    the node, online from now on."""
    _agent(who)
    check_node_name(node)

    async def register(tx: Tx) -> Node:
        return await _seen(svc, tx, who, node, svc.clock.now())

    return await svc.db.write(register)


async def registered_node(svc: Services, who: Principal, node: str) -> Node:
    """A node this agent credential's organization has (its configuration is asked for)."""
    _agent(who)
    async with svc.db.read() as tx:
        found = await tx.nodes.get(who.org_id, node)
    if found is None:
        raise NotFound(f"no host {node!r}: register it first (POST /{{customer}}/host/{node})")
    return found


async def handed_job(svc: Services, who: Principal, job_id: int) -> JobView:
    """A job handed out to a node of this agent credential's organization (its script)."""
    _agent(who)
    async with svc.db.read() as tx:
        job = await tx.jobs.get(who.org_id, job_id)
        runs = await tx.jobs.runs(job_id) if job is not None else []
        if job is None or all(r.status is NodeRunStatus.NEW for r in runs):
            raise NotFound(f"no job {job_id} handed to an agent")
        return JobView(opened(svc.secrets, job), runs)


async def poll_next_job(svc: Services, who: Principal, node: str) -> JobView | None:
    """Record the node's poll; hand it the oldest job it may start now, if any."""
    _agent(who)
    check_node_name(node)

    async def poll(tx: Tx) -> JobView | None:
        now = svc.clock.now()
        await _seen(svc, tx, who, node, now)
        waiting = await tx.jobs.runs_of_node(
            who.org_id, node, (NodeRunStatus.NEW, NodeRunStatus.READY)
        )
        for candidate in sorted(waiting, key=lambda r: r.job_id):
            job = await tx.jobs.get_any(candidate.job_id, for_update=True)
            if job is None or job.status not in (JobStatus.VOTING, JobStatus.RUNNING):
                continue  # not dispatched yet (new), or over
            rnd = await load_round(tx, job, now)
            run = rnd.runs.get(node)
            if run is None:
                continue
            if run.status is NodeRunStatus.NEW:
                rnd.vote(node, run.attempt, True)
                rnd.settle()
            rnd.run_started(node, run.attempt)
            rnd.settle()
            started = any(
                c.node == node and c.to_status is NodeRunStatus.RUNNING for c in rnd.run_changes
            )
            if rnd.run_changes or rnd.job_changes:
                job = await persist_round(svc, tx, job, rnd, actor=node)
            if started:
                return JobView(opened(svc.secrets, job), await tx.jobs.runs(job.id))
        return None

    return await svc.db.write(poll)


def _reporting_run(runs: list[NodeRun], node: str | None, job_id: int) -> NodeRun:
    """The run a result is for: the named node's, else the one run handed out."""
    if node is not None:
        for run in runs:
            if run.node_name == node:
                return run
        raise NotFound(f"job {job_id} does not run on node {node!r}")
    handed = [r for r in runs if r.status in (NodeRunStatus.READY, NodeRunStatus.RUNNING)]
    if len(handed) == 1:
        return handed[0]
    if not handed and len(runs) == 1:
        return runs[0]
    raise Invalid(
        f"job {job_id} runs on several nodes: name yours with the hostname parameter",
        "hostname",
    )


async def finish_polled_job(
    svc: Services, who: Principal, node: str | None, job_id: int, result: PolledResult
) -> JobView:
    """Apply a polling agent's result to its node run (``node``, or the job's one run
    handed out); keep the state word and data.

    A result sent again (its first answer lost) changes nothing and answers the job.
    """
    _agent(who)
    if node is not None:
        check_node_name(node)

    async def finish(tx: Tx) -> JobView:
        now = svc.clock.now()
        if await tx.jobs.get(who.org_id, job_id) is None:
            raise NotFound(f"no job {job_id}")
        name = _reporting_run(await tx.jobs.runs(job_id), node, job_id).node_name
        # Locks in the order a poll takes them (node, then job): no deadlock between them.
        await _seen(svc, tx, who, name, now)
        job = await tx.jobs.get(who.org_id, job_id, for_update=True)
        run = await tx.jobs.run(job_id, name)
        if job is None or run is None:
            raise NotFound(f"no job {job_id}")
        if run.status.terminal:
            return JobView(job, await tx.jobs.runs(job.id))
        if run.status is NodeRunStatus.NEW:
            raise Conflict(f"job {job_id} was not handed to node {name!r}: poll for it first")
        if job.capture_output:
            for stream, given in (("stdout", result.stdout), ("stderr", result.stderr)):
                text = mask_output(svc.secrets, job, given)
                if text:
                    await append_output(svc, tx, run, stream, text)
        rnd = await load_round(tx, job, now)
        rnd.finished(
            name, run.attempt, "succeeded" if result.succeeded else "failed", result.exit_code
        )
        rnd.settle()
        if rnd.run_changes or rnd.job_changes or rnd.commands:
            job = await persist_round(svc, tx, job, rnd, actor=name)
        values: dict[str, Any] = {"updated_at": now}
        if result.state is not None:
            values["state"] = result.state[:MAX_STATE]
        if result.data is not None:
            values["result"] = result.data
        job = await tx.jobs.update(job.id, values)
        return JobView(job, await tx.jobs.runs(job.id))

    return await svc.db.write(finish)
