"""The node registry: agents connecting, heartbeating, going away; reads of nodes.

A node is online while its agent heartbeats. When heartbeats stop for TTL + grace it is
offline: its new/ready runs become unavailable and its running runs crashed. A changed
incarnation id means the agent restarted: runs of the old incarnation crashed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Forbidden, Invalid, NotFound
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.nodes import Availability
from jobyard.domain.records import Event, Node, Page, Principal
from jobyard.domain.targets import check_node_name
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.rounds import Report, apply_reports, command_for, commit_message, send
from jobyard.store import Tx
from jobyard.wire import agent as wire

LIVE_RUNS = (NodeRunStatus.NEW, NodeRunStatus.READY, NodeRunStatus.RUNNING)


@dataclass(frozen=True)
class Hello:
    node: str
    incarnation: str
    tags: list[str]
    cluster: str | None
    running: list[tuple[int, int]]  # (job, attempt) the agent holds: committed or running
    pending: list[tuple[int, int]]  # (job, attempt) whose result the agent will re-send
    busy: bool
    slots: int = 1  # runs the agent takes at once (its --slots)

    @classmethod
    def parse(cls, msg: wire.Hello) -> Hello:
        """The node's hello, its field types checked by the protocol, its values here."""
        check_node_name(msg.node)
        if not 1 <= len(msg.incarnation) <= 64:
            raise Invalid("hello needs an incarnation id (1-64 characters)", "incarnation")
        if not all(msg.tags):
            raise Invalid("tags must be non-empty strings", "tags")
        if msg.cluster == "":
            raise Invalid("cluster must be a non-empty string", "cluster")
        return cls(
            node=msg.node,
            incarnation=msg.incarnation,
            tags=sorted(set(msg.tags)),
            cluster=msg.cluster,
            running=[(r.job, r.attempt) for r in msg.running],
            pending=[(r.job, r.attempt) for r in msg.pending],
            busy=msg.busy,
            slots=msg.slots,
        )


async def _node_event(
    svc: Services,
    tx: Tx,
    node: Node,
    type: str,
    to_status: str | None,
    reason: str | None,
    from_status: str | None = None,
    data: dict[str, Any] | None = None,
) -> Event:
    return await record(
        svc,
        tx,
        org_id=node.org_id,
        kind="node",
        subject_id=node.id,
        node_name=node.name,
        type=type,
        from_status=from_status,
        to_status=to_status,
        actor=node.name,
        reason=reason,
        data=data,
        now=svc.clock.now(),
    )


async def availability_of(svc: Services, org_id: int, name: str) -> Availability:
    async with svc.db.read() as tx:
        node = await tx.nodes.get(org_id, name)
    return node.availability if node is not None else Availability.OFFLINE


async def server_identity(svc: Services) -> str:
    """The id agents key their journal by: this database's, made once and kept in it."""
    known = svc.runtime.server_identity
    if known is not None:
        return known
    async with svc.db.begin() as tx:
        found = await tx.nodes.server_identity(svc.clock.now())
    svc.runtime.server_identity = found
    return found


async def node_connected(svc: Services, who: Principal, hello: Hello, replica: str) -> Node:
    """Register an agent's connection; crash what a previous incarnation left running."""
    if who.role is not Role.AGENT:
        raise Forbidden("only an agent token may connect as a node")
    lost: list[Report] = []

    async def connect(tx: Tx) -> Node:
        lost.clear()  # run again after a deadlock: from the start
        now = svc.clock.now()
        before = await tx.nodes.get(who.org_id, hello.node)
        node = await tx.nodes.upsert(
            who.org_id,
            hello.node,
            {
                "tags": hello.tags,
                "cluster": hello.cluster,
                "online": True,
                "connected": True,  # available from now on: it has told what it holds
                "busy": hello.busy,
                "slots": hello.slots,
                "incarnation": hello.incarnation,
                "replica": replica,
                "last_heartbeat": now,
            },
            now,
        )
        restarted = before is not None and before.incarnation not in (None, hello.incarnation)
        if before is None or not before.online or restarted:
            await _node_event(
                svc,
                tx,
                node,
                "node.status",
                "online",
                "agent restarted" if restarted else "agent connected",
                from_status="offline" if before is None or not before.online else "online",
                data={
                    "incarnation": hello.incarnation,
                    "tags": hello.tags,
                    "cluster": hello.cluster,
                },
            )
        known = set(hello.running) | set(hello.pending)
        live = await tx.jobs.runs_of_node(who.org_id, hello.node, LIVE_RUNS)
        # What the agent holds that the server no longer wants (a stop, a run_timeout or a
        # failed quorum while it was away: that abort was lost): abort it now, or its
        # process keeps running and its slot stays taken.
        for job_id, attempt in sorted(set(hello.running) - {(r.job_id, r.attempt) for r in live}):
            abort = wire.Abort(job=job_id, attempt=attempt)
            send(svc, tx, who.org_id, hello.node, wire.encode(abort))
        for run in sorted(live, key=lambda r: r.job_id):  # commits owed go out in job order
            job = await tx.jobs.get_any(run.job_id)
            if job is None:
                continue
            ref = (run.job_id, run.attempt)
            if (
                restarted
                and run.status in (NodeRunStatus.READY, NodeRunStatus.RUNNING)
                and ref not in hello.pending
            ):
                lost.append(
                    Report(
                        "lost",
                        who.org_id,
                        hello.node,
                        run.job_id,
                        run.attempt,
                        reason="the agent restarted",
                    )
                )
            elif run.status is NodeRunStatus.RUNNING and ref not in known:
                lost.append(
                    Report(
                        "lost",
                        who.org_id,
                        hello.node,
                        run.job_id,
                        run.attempt,
                        reason="the agent no longer runs it",
                    )
                )
            else:
                _resend(svc, tx, who.org_id, hello.node, run.status, job)
        return node

    node = await svc.db.write(connect)
    if lost:
        await apply_reports(svc, lost)
    svc.hub.publish("clusters", None)
    return node


def _resend(svc: Services, tx: Tx, org_id: int, node: str, status: NodeRunStatus, job: Any) -> None:
    """Send again what a node should have received for a run (after a reconnect)."""
    if status is NodeRunStatus.NEW and job.status is JobStatus.VOTING:
        send(svc, tx, org_id, node, commit_message(svc, job, node))
    elif status is NodeRunStatus.READY and job.status is JobStatus.RUNNING:
        send(svc, tx, org_id, node, command_for(job, "run"))


async def resend_pending(svc: Services, org_id: int, node: str) -> None:
    """Re-derive from the database every command a node is owed (replica hand-over)."""
    async with svc.db.begin() as tx:
        for run in await tx.jobs.runs_of_node(org_id, node, LIVE_RUNS):
            job = await tx.jobs.get_any(run.job_id)
            if job is not None:
                _resend(svc, tx, org_id, node, run.status, job)


async def record_heartbeats(
    svc: Services,
    node_ids: Sequence[int],
    busy: dict[int, bool],
    quiet: Mapping[int, dt.datetime] | None = None,
) -> list[int]:
    """Write heartbeats in one transaction: ``node_ids`` were heard from now, ``busy``
    holds the busy flags that changed, ``quiet`` the last heartbeat of nodes gone quiet
    since (written as heard, so that their silence is counted from it).

    Returns the nodes that heartbeat although they were declared offline (silent past
    TTL + grace, e.g. a machine that stalled): their connection must be re-established,
    so that they come back online through a hello and their runs are reconciled.
    """
    quiet = quiet or {}
    if not node_ids and not busy and not quiet:
        return []
    by_time: dict[dt.datetime, list[int]] = {}
    for node, heard in quiet.items():
        by_time.setdefault(heard, []).append(node)
    async with svc.db.begin() as tx:
        if node_ids:
            await tx.nodes.heartbeat(list(node_ids), svc.clock.now())
        for heard, ids in by_time.items():
            await tx.nodes.heartbeat(ids, heard)
        # Two statements, not one per node: this runs every tick under the single writer.
        for flag in (True, False):
            changed = [n for n, b in busy.items() if b is flag]
            if changed:
                await tx.nodes.set_busy(changed, flag)
        return await tx.nodes.offline_among(sorted({*node_ids, *busy, *quiet}))


async def node_gone(
    svc: Services,
    org_id: int,
    name: str,
    reason: str,
    *,
    silent_before: dt.datetime | None = None,
) -> None:
    """An agent said goodbye or went silent: offline now, its runs unavailable or crashed.

    With ``silent_before``, only if the node is still silent since then: it may have
    reconnected between the check that found it silent and this transaction.
    """
    reports: list[Report] = []

    async def gone(tx: Tx) -> bool:
        reports.clear()  # run again after a deadlock: from the start
        node = await tx.nodes.get(org_id, name, for_update=True)
        if node is None or not node.online:
            return False
        heard = node.last_heartbeat
        if silent_before is not None and heard is not None and heard >= silent_before:
            return False
        now = svc.clock.now()
        await tx.nodes.update(
            node.id, {"online": False, "connected": False, "busy": False, "updated_at": now}
        )
        await _node_event(svc, tx, node, "node.status", "offline", reason, from_status="online")
        for run in await tx.jobs.runs_of_node(org_id, name, LIVE_RUNS):
            reports.append(Report("lost", org_id, name, run.job_id, run.attempt, reason=reason))
        return True

    if not await svc.db.write(gone):
        return
    if reports:
        await apply_reports(svc, reports)
    svc.hub.publish("clusters", None)


async def grant_reconnect_grace(svc: Services) -> None:
    """On server start, give every online node a fresh TTL + grace to reconnect.

    Without it, a server that was down longer than TTL + grace would declare every
    node offline (and crash their runs) before the agents had a chance to reconnect.
    The nodes whose connection died with the server (on PostgreSQL: held by no live
    replica) are ``reconnecting`` until their agent's hello: not available, and the
    votes asked of them wait for that hello rather than go to a socket nobody holds.
    """
    async with svc.db.begin() as tx:
        await tx.nodes.refresh_online(svc.clock.now())
        await tx.nodes.mark_reconnecting(await tx.nodes.live_replicas())


async def expire_silent_nodes(svc: Services) -> int:
    """Mark offline every node silent for longer than TTL + grace."""
    cutoff = svc.clock.now() - dt.timedelta(seconds=svc.settings.node_ttl + svc.settings.node_grace)
    async with svc.db.read() as tx:
        silent = await tx.nodes.silent_since(cutoff)
    for node in silent:
        await node_gone(
            svc, node.org_id, node.name, "no heartbeat within TTL + grace", silent_before=cutoff
        )
    return len(silent)


# -- reads


async def list_nodes(svc: Services, who: Principal, cluster: str | None = None) -> list[Node]:
    require(who.role, Role.VIEWER, "listing nodes")
    async with svc.db.read() as tx:
        return await tx.nodes.all(who.org_id, cluster=cluster)


async def get_node(svc: Services, who: Principal, name: str) -> Node:
    require(who.role, Role.VIEWER, "reading a node")
    async with svc.db.read() as tx:
        node = await tx.nodes.get(who.org_id, name)
    if node is None:
        raise NotFound(f"no node named {name!r}")
    return node


async def find_node(svc: Services, who: Principal, name: str) -> Node | None:
    """A node by name, or None (Chef answers unknown nodes as offline, not 404)."""
    require(who.role, Role.VIEWER, "reading a node")
    async with svc.db.read() as tx:
        return await tx.nodes.get(who.org_id, name)


async def node_history(
    svc: Services,
    who: Principal,
    name: str,
    *,
    offset: int = 0,
    limit: int = 50,
    newest_first: bool = False,
) -> Page[Event]:
    node = await get_node(svc, who, name)
    async with svc.db.read() as tx:
        return await tx.events.of_subject(
            "node", node.id, offset=offset, limit=limit, newest_first=newest_first
        )
