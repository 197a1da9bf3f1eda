"""The node registry."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.nodes import Availability, availability
from jobyard.domain.records import Node
from jobyard.store.rows import record, records
from jobyard.store.schema import jobs, node_runs, nodes, server_identity

# Ids per IN (...) list: bound parameters are limited (asyncpg 32,767; SQLite 32,766).
_IN_CHUNK = 10_000


# Nodes of an organization by name; the second with a shared row lock (PostgreSQL).
_BY_NAMES = nodes.select().where(
    nodes.c.org_id == sa.bindparam("org_id"),
    nodes.c.name.in_(sa.bindparam("names", expanding=True)),
)
# Locked in id order, as every writer of many nodes goes: fewer deadlocks.
_BY_NAMES_SHARED = _BY_NAMES.order_by(nodes.c.id).with_for_update(read=True)
# What a job's voting needs of its nodes; the second, share-locked in id order.
_AVAILABILITY = sa.select(nodes.c.name, nodes.c.online, nodes.c.connected, nodes.c.busy).where(
    nodes.c.org_id == sa.bindparam("org_id"),
    nodes.c.name.in_(sa.bindparam("names", expanding=True)),
)
_AVAILABILITY_SHARED = _AVAILABILITY.order_by(nodes.c.id).with_for_update(read=True)


class NodesRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def get(self, org_id: int, name: str, *, for_update: bool = False) -> Node | None:
        q = nodes.select().where(nodes.c.org_id == org_id, nodes.c.name == name)
        if for_update and self.conn.dialect.name == "postgresql":
            q = q.with_for_update()
        return record(Node, (await self.conn.execute(q)).mappings().first())

    async def all(self, org_id: int, cluster: str | None = None) -> list[Node]:
        """Nodes of an organization (optionally of one cluster), by name."""
        q = nodes.select().where(nodes.c.org_id == org_id)
        if cluster is not None:
            q = q.where(nodes.c.cluster == cluster)
        return records(Node, (await self.conn.execute(q.order_by(nodes.c.name))).mappings())

    async def by_names(
        self, org_id: int, names: list[str], *, for_share: bool = False
    ) -> list[Node]:
        q = _BY_NAMES_SHARED if for_share and self.conn.dialect.name == "postgresql" else _BY_NAMES
        found = await self.conn.execute(q, {"org_id": org_id, "names": list(names)})
        return records(Node, found.mappings())

    async def availability_of(
        self, org_id: int, names: list[str], *, for_share: bool = False
    ) -> dict[str, Availability]:
        """Each named node's availability (``by_names`` reading only what it needs: a
        1,000-node job's start reads 1,000 nodes)."""
        shared = for_share and self.conn.dialect.name == "postgresql"
        q = _AVAILABILITY_SHARED if shared else _AVAILABILITY
        found = await self.conn.execute(q, {"org_id": org_id, "names": list(names)})
        return {
            name: availability(bool(online), bool(connected), bool(busy))
            for name, online, connected, busy in found
        }

    async def occupied(
        self, org_id: int, names: list[str], exclude: list[int] | None = None
    ) -> dict[str, int]:
        """Which of these nodes have a part of a dispatched job not yet ended (new, ready,
        running), other than the jobs in ``exclude``: node name -> the oldest such job."""
        if not names:
            return {}
        q = (
            sa.select(node_runs.c.node_name, sa.func.min(node_runs.c.job_id))
            .join(jobs, jobs.c.id == node_runs.c.job_id)
            .where(
                node_runs.c.org_id == org_id,
                node_runs.c.node_name.in_(names[:_IN_CHUNK]),
                node_runs.c.status.in_(
                    [
                        NodeRunStatus.NEW.value,
                        NodeRunStatus.READY.value,
                        NodeRunStatus.RUNNING.value,
                    ]
                ),
                jobs.c.status.in_(
                    [JobStatus.NEW.value, JobStatus.VOTING.value, JobStatus.RUNNING.value]
                ),
            )
            .group_by(node_runs.c.node_name)
        )
        if exclude:
            q = q.where(node_runs.c.job_id.not_in(exclude))
        return {name: job_id for name, job_id in (await self.conn.execute(q)).all()}

    async def upsert(
        self, org_id: int, name: str, values: dict[str, Any], now: dt.datetime
    ) -> Node:
        """Register a node or refresh its registration."""
        existing = await self.get(org_id, name)
        if existing is None:
            row = (
                (
                    await self.conn.execute(
                        nodes.insert()
                        .values(org_id=org_id, name=name, created_at=now, updated_at=now, **values)
                        .returning(*nodes.c)
                    )
                )
                .mappings()
                .one()
            )
        else:
            row = (
                (
                    await self.conn.execute(
                        nodes.update()
                        .where(nodes.c.id == existing.id)
                        .values(updated_at=now, **values)
                        .returning(*nodes.c)
                    )
                )
                .mappings()
                .one()
            )
        return Node(**row)

    async def update(self, node_id: int, values: dict[str, Any]) -> None:
        await self.conn.execute(nodes.update().where(nodes.c.id == node_id).values(**values))

    async def heartbeat(self, node_ids: list[int], now: dt.datetime) -> None:
        """Record a heartbeat for many nodes, one statement per ``_IN_CHUNK`` nodes."""
        for i in range(0, len(node_ids), _IN_CHUNK):
            chunk = node_ids[i : i + _IN_CHUNK]
            await self.conn.execute(
                nodes.update().where(nodes.c.id.in_(chunk)).values(last_heartbeat=now)
            )

    async def set_busy(self, node_ids: list[int], busy: bool) -> None:
        """Set many nodes' busy flag, writing only the rows whose flag changes."""
        for i in range(0, len(node_ids), _IN_CHUNK):
            chunk = node_ids[i : i + _IN_CHUNK]
            await self.conn.execute(
                nodes.update()
                .where(nodes.c.id.in_(chunk), nodes.c.busy.is_not(busy))
                .values(busy=busy)
            )

    async def offline_among(self, node_ids: list[int]) -> list[int]:
        """Which of these nodes are marked offline."""
        out: list[int] = []
        for i in range(0, len(node_ids), _IN_CHUNK):
            chunk = node_ids[i : i + _IN_CHUNK]
            q = sa.select(nodes.c.id).where(nodes.c.id.in_(chunk), nodes.c.online.is_(False))
            out += [int(row[0]) for row in await self.conn.execute(q)]
        return out

    async def refresh_online(self, now: dt.datetime) -> None:
        """Treat every online node as just heard from (server start)."""
        await self.conn.execute(
            nodes.update().where(nodes.c.online.is_(True)).values(last_heartbeat=now)
        )

    async def live_replicas(self) -> list[str]:
        """Replicas whose bridge holds a database connection (PostgreSQL; none on SQLite,
        where the one server process is the one starting)."""
        if self.conn.dialect.name != "postgresql":
            return []
        q = sa.text(
            "SELECT DISTINCT substr(application_name, 9) FROM pg_stat_activity"
            " WHERE application_name LIKE 'jobyard:%'"
        )
        return [str(row[0]) for row in await self.conn.execute(q)]

    async def mark_reconnecting(self, live_replicas: list[str]) -> None:
        """Online nodes not connected to a live replica: reconnecting until their hello."""
        q = nodes.update().where(nodes.c.online.is_(True), nodes.c.connected.is_(True))
        if live_replicas:
            q = q.where(sa.or_(nodes.c.replica.is_(None), nodes.c.replica.not_in(live_replicas)))
        await self.conn.execute(q.values(connected=False))

    async def silent_since(self, cutoff: dt.datetime) -> list[Node]:
        """Online nodes whose last heartbeat is older than ``cutoff``."""
        q = nodes.select().where(
            nodes.c.online.is_(True),
            sa.or_(nodes.c.last_heartbeat.is_(None), nodes.c.last_heartbeat < cutoff),
        )
        return records(Node, (await self.conn.execute(q)).mappings())

    async def online_of_replica(self, replica: str) -> list[Node]:
        q = nodes.select().where(nodes.c.online.is_(True), nodes.c.replica == replica)
        return records(Node, (await self.conn.execute(q)).mappings())

    async def server_identity(self, now: dt.datetime) -> str:
        """This database's identity (made on first use; concurrent first uses agree)."""
        q = sa.select(server_identity.c.server_id).where(server_identity.c.slot == 1)
        found = (await self.conn.execute(q)).scalar()
        if found is None:
            insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
            await self.conn.execute(
                insert(server_identity)
                .values(slot=1, server_id=uuid.uuid4().hex, created_at=now)
                .on_conflict_do_nothing()
            )
            found = (await self.conn.execute(q)).scalar_one()
        return str(found)
