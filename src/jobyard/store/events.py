"""The append-only event log: every transition of a job, node run, node or cluster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.records import Event, Page
from jobyard.store.rows import insert_returning, records
from jobyard.store.schema import events


class EventsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def append(self, values: dict[str, Any]) -> Event:
        """Append one event and return it with its id."""
        row = (
            (await self.conn.execute(events.insert().values(**values).returning(*events.c)))
            .mappings()
            .one()
        )
        return Event(**row)

    async def append_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append several events in one statement (their ids are not returned)."""
        if rows:
            await self.conn.execute(events.insert(), list(rows))

    async def append_many_returning(self, rows: Sequence[dict[str, Any]]) -> list[Event]:
        """Append several events in one round trip and return them with their ids."""
        return records(Event, await insert_returning(self.conn, events, rows))

    async def of_subject(
        self,
        kind: str,
        subject_id: int,
        *,
        types: Sequence[str] = (),
        offset: int = 0,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page[Event]:
        """A page of one subject's events in log order (or newest first)."""
        conds = [events.c.kind == kind, events.c.subject_id == subject_id]
        if types:
            conds.append(events.c.type.in_(list(types)))
        where = sa.and_(*conds)
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(events).where(where))
        ).scalar_one()
        order = events.c.id.desc() if newest_first else events.c.id.asc()
        q = events.select().where(where).order_by(order).offset(offset).limit(limit)
        return Page(items=records(Event, (await self.conn.execute(q)).mappings()), total=total)

    async def by_ids(self, ids: Sequence[int]) -> list[Event]:
        q = events.select().where(events.c.id.in_(list(ids))).order_by(events.c.id)
        return records(Event, (await self.conn.execute(q)).mappings())

    async def of_job(self, job_id: int, after_id: int = 0, limit: int = 500) -> list[Event]:
        """A job's events and its node runs' events after an id (stream replay)."""
        q = (
            events.select()
            .where(events.c.job_id == job_id, events.c.id > after_id)
            .order_by(events.c.id)
            .limit(limit)
        )
        return records(Event, (await self.conn.execute(q)).mappings())

    async def of_org(self, org_id: int, after_id: int = 0, limit: int = 500) -> list[Event]:
        """An organization's events after an id (stream replay)."""
        q = (
            events.select()
            .where(events.c.org_id == org_id, events.c.id > after_id)
            .order_by(events.c.id)
            .limit(limit)
        )
        return records(Event, (await self.conn.execute(q)).mappings())

    async def last_id(self) -> int:
        return int((await self.conn.execute(sa.select(sa.func.max(events.c.id)))).scalar() or 0)

    async def delete_of_job(self, job_id: int) -> None:
        await self.conn.execute(events.delete().where(events.c.job_id == job_id))

    async def older_than(self, when: dt.datetime) -> int:
        res = await self.conn.execute(events.delete().where(events.c.created_at < when))
        return int(res.rowcount or 0)
