"""The record of which definitions files manage (``managed_definitions``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.store.definitions_schema import managed_definitions as md


@dataclass(frozen=True)
class Managed:
    kind: str
    key: str
    source: str
    applied_at: dt.datetime


class DefinitionsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def managed(self, org_id: int, kind: str | None = None) -> list[Managed]:
        """The organization's managed definitions (of one kind), by kind and key."""
        query = sa.select(md.c.kind, md.c.key, md.c.source, md.c.applied_at).where(
            md.c.org_id == org_id
        )
        if kind is not None:
            query = query.where(md.c.kind == kind)
        rows = (await self.conn.execute(query.order_by(md.c.kind, md.c.key))).all()
        return [Managed(str(k), str(key), str(s), at) for k, key, s, at in rows]

    async def replace(
        self, org_id: int, kind: str, keys: Sequence[str], source: str, now: dt.datetime
    ) -> None:
        """Make ``keys`` the managed definitions of ``kind``, all from ``source``."""
        await self.conn.execute(md.delete().where(md.c.org_id == org_id, md.c.kind == kind))
        if keys:
            await self.conn.execute(
                md.insert(),
                [
                    {"org_id": org_id, "kind": kind, "key": k, "source": source, "applied_at": now}
                    for k in dict.fromkeys(keys)
                ],
            )
