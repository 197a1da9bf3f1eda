"""Clusters: named pools of nodes with a lifecycle."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.records import Cluster
from jobyard.store.rows import record, records
from jobyard.store.schema import clusters


class ClustersRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, values: dict[str, Any]) -> Cluster:
        row = (
            (await self.conn.execute(clusters.insert().values(**values).returning(*clusters.c)))
            .mappings()
            .one()
        )
        return Cluster(**row)

    async def get(self, org_id: int, cluster_id: int) -> Cluster | None:
        q = clusters.select().where(clusters.c.org_id == org_id, clusters.c.id == cluster_id)
        return record(Cluster, (await self.conn.execute(q)).mappings().first())

    async def by_name(self, org_id: int, name: str) -> Cluster | None:
        q = clusters.select().where(clusters.c.org_id == org_id, clusters.c.name == name)
        return record(Cluster, (await self.conn.execute(q)).mappings().first())

    async def all(self, org_id: int, statuses: list[str] | None = None) -> list[Cluster]:
        q = clusters.select().where(clusters.c.org_id == org_id)
        if statuses:
            q = q.where(clusters.c.status.in_(statuses))
        return records(Cluster, (await self.conn.execute(q.order_by(clusters.c.id))).mappings())

    async def all_live(self) -> list[Cluster]:
        """Clusters not yet terminated, of every organization (lifecycle loop)."""
        q = clusters.select().where(clusters.c.status != "terminated").order_by(clusters.c.id)
        return records(Cluster, (await self.conn.execute(q)).mappings())

    async def update(self, cluster_id: int, values: dict[str, Any]) -> Cluster:
        row = (
            (
                await self.conn.execute(
                    clusters.update()
                    .where(clusters.c.id == cluster_id)
                    .values(**values)
                    .returning(*clusters.c)
                )
            )
            .mappings()
            .one()
        )
        return Cluster(**row)
