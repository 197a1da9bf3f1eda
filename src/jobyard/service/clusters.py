"""Cluster use cases: create, list, get, update (scale), terminate, status history.

The lifecycle advances in ``advance_clusters`` (called by a dispatch loop) from what
the node registry says about each cluster's members.
"""

from __future__ import annotations

from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.clusters import (
    CLUSTER_TYPES,
    ClusterStatus,
    check_cluster_transition,
    check_desired,
    check_time_to_idle,
    next_cluster_status,
)
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.records import Cluster, Event, Page, Principal
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.jobs import release_waiting
from jobyard.store import Tx

CREATE_TIMEOUT = 600.0


async def move_cluster(
    svc: Services,
    tx: Tx,
    cluster: Cluster,
    target: ClusterStatus,
    *,
    actor: str | None,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
) -> Cluster:
    check_cluster_transition(ClusterStatus(cluster.status), target)
    now = svc.clock.now()
    changes: dict[str, Any] = {"status": target.value, "updated_at": now, **(values or {})}
    if target is ClusterStatus.AVAILABLE and cluster.available_since is None:
        changes["available_since"] = now
    if target is ClusterStatus.TERMINATED:
        changes["terminated_at"] = now
    updated = await tx.clusters.update(cluster.id, changes)
    await record(
        svc,
        tx,
        org_id=cluster.org_id,
        kind="cluster",
        subject_id=cluster.id,
        type="cluster.status",
        from_status=cluster.status,
        to_status=target.value,
        actor=actor,
        reason=reason,
        now=now,
    )
    return updated


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= 200:
        raise Invalid("a cluster name is 1 to 200 characters", "name")
    if any(ord(c) < 32 for c in name):
        raise Invalid("a cluster name has no control characters", "name")
    return name


async def create_cluster(
    svc: Services,
    who: Principal,
    name: str,
    nodes: int,
    *,
    description: str = "",
    type: str = "production",
    terminate_on_idle: bool = False,
    time_to_idle: int = 3600,
) -> Cluster:
    require(who.role, Role.USER, "creating a cluster")
    name = _check_name(name)
    desired = check_desired(nodes)
    if type not in CLUSTER_TYPES:
        raise Invalid(f"type is one of {', '.join(CLUSTER_TYPES)}", "type")
    check_time_to_idle(time_to_idle)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        existing = await tx.clusters.by_name(who.org_id, name)
        if existing is not None and existing.status != ClusterStatus.TERMINATED:
            raise Conflict(f"a cluster named {name!r} exists already")
        if existing is not None:
            # A terminated cluster's name may be reused: free it by renaming the old one.
            await tx.clusters.update(existing.id, {"name": f"{name}#{existing.id}"})
        cluster = await tx.clusters.insert(
            {
                "org_id": who.org_id,
                "name": name,
                "description": description,
                "status": ClusterStatus.PENDING.value,
                "desired_nodes": desired,
                "type": type,
                "terminate_on_idle": terminate_on_idle,
                "time_to_idle": time_to_idle,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await record(
            svc,
            tx,
            org_id=who.org_id,
            kind="cluster",
            subject_id=cluster.id,
            type="cluster.created",
            to_status=ClusterStatus.PENDING.value,
            actor=who.actor,
            data={"created_by": who.user_id},
            now=now,
        )
    svc.hub.publish("clusters", cluster.id)
    return cluster


async def _visible(tx: Tx, who: Principal, cluster_id: int) -> Cluster:
    cluster = await tx.clusters.get(who.org_id, cluster_id)
    if cluster is None:
        raise NotFound(f"no cluster {cluster_id}")
    return cluster


async def get_cluster(svc: Services, who: Principal, cluster_id: int) -> Cluster:
    require(who.role, Role.VIEWER, "reading a cluster")
    async with svc.db.read() as tx:
        return await _visible(tx, who, cluster_id)


async def list_clusters(
    svc: Services, who: Principal, statuses: list[str] | None = None
) -> list[Cluster]:
    require(who.role, Role.VIEWER, "listing clusters")
    for s in statuses or []:
        if s not in ClusterStatus.__members__.values():
            raise Invalid(f"unknown cluster status {s!r}", "status")
    async with svc.db.read() as tx:
        return await tx.clusters.all(who.org_id, statuses)


async def update_cluster(
    svc: Services, who: Principal, cluster_id: int, changes: dict[str, Any]
) -> Cluster:
    """Rename, describe, or scale a cluster (a new node count moves it to ``scaling``)."""
    require(who.role, Role.USER, "updating a cluster")
    allowed = {"name", "description", "nodes", "terminate_on_idle", "time_to_idle"}
    unknown = set(changes) - allowed
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))} of a cluster")
    async with svc.db.begin() as tx:
        cluster = await _visible(tx, who, cluster_id)
        status = ClusterStatus(cluster.status)
        if status in (
            ClusterStatus.PENDING_TERMINATE,
            ClusterStatus.TERMINATING,
            ClusterStatus.TERMINATED,
        ):
            raise Conflict(f"cluster {cluster.id} is {status}: it cannot change")
        values: dict[str, Any] = {}
        if "name" in changes:
            values["name"] = _check_name(changes["name"])
        if "description" in changes:
            values["description"] = str(changes["description"])
        if "terminate_on_idle" in changes:
            values["terminate_on_idle"] = bool(changes["terminate_on_idle"])
        if "time_to_idle" in changes:
            values["time_to_idle"] = check_time_to_idle(changes["time_to_idle"])
        scale = "nodes" in changes and check_desired(changes["nodes"]) != cluster.desired_nodes
        if "nodes" in changes:
            values["desired_nodes"] = check_desired(changes["nodes"])
        values["updated_at"] = svc.clock.now()
        cluster = await tx.clusters.update(cluster.id, values)
        if scale and status is ClusterStatus.AVAILABLE:
            cluster = await move_cluster(
                svc, tx, cluster, ClusterStatus.SCALING, actor=who.actor, reason="resized"
            )
    svc.hub.publish("clusters", cluster.id)
    return cluster


async def terminate_cluster(svc: Services, who: Principal, cluster_id: int) -> Cluster:
    require(who.role, Role.USER, "terminating a cluster")
    async with svc.db.begin() as tx:
        cluster = await _visible(tx, who, cluster_id)
        status = ClusterStatus(cluster.status)
        if status in (
            ClusterStatus.PENDING_TERMINATE,
            ClusterStatus.TERMINATING,
            ClusterStatus.TERMINATED,
        ):
            raise Conflict(f"cluster {cluster.id} is {status} already")
        cluster = await move_cluster(
            svc,
            tx,
            cluster,
            ClusterStatus.PENDING_TERMINATE,
            actor=who.actor,
            reason=f"terminated by {who.actor}",
        )
    svc.hub.publish("clusters", cluster.id)
    return cluster


async def cluster_history(
    svc: Services,
    who: Principal,
    cluster_id: int,
    *,
    offset: int = 0,
    limit: int = 50,
    newest_first: bool = False,
) -> Page[Event]:
    require(who.role, Role.VIEWER, "reading a cluster's history")
    async with svc.db.read() as tx:
        await _visible(tx, who, cluster_id)
        return await tx.events.of_subject(
            "cluster",
            cluster_id,
            types=("cluster.created", "cluster.status"),
            offset=offset,
            limit=limit,
            newest_first=newest_first,
        )


async def advance_clusters(svc: Services) -> int:
    """Move every live cluster as far as its members' state allows; returns moves made."""
    moves = 0
    async with svc.db.read() as tx:
        if not await tx.clusters.all_live() and not await tx.jobs.active(
            [JobStatus.ONHOLD], limit=1
        ):
            return 0  # nothing to move: no write transaction, no writer lock taken
    async with svc.db.begin() as tx:
        if not await tx.leader("clusters"):
            return 0
        now = svc.clock.now()
        for cluster in await tx.clusters.all_live():
            members = await tx.nodes.all(cluster.org_id, cluster=cluster.name)
            online = sum(1 for n in members if n.online)
            current = cluster
            for _ in range(4):
                status = ClusterStatus(current.status)
                age = (now - current.created_at).total_seconds()
                nxt = next_cluster_status(
                    status, online, current.desired_nodes, age, CREATE_TIMEOUT
                )
                if nxt is None:
                    break
                reason = _reason(nxt, online, current.desired_nodes)
                current = await move_cluster(svc, tx, current, nxt, actor=None, reason=reason)
                moves += 1
        moves += await release_waiting(svc, tx)
    return moves


def _reason(status: ClusterStatus, online: int, desired: int) -> str:
    if status is ClusterStatus.ERROR:
        return f"{online} of {desired} nodes online"
    if status is ClusterStatus.AVAILABLE:
        return f"{online} of {desired} nodes online"
    return status.value.replace("_", " ")
