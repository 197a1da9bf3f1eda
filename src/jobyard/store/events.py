"""The append-only event log: every transition of a job, node run, node or cluster."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.records import Event, Page
from jobyard.store.driver import insert_sql, json_processor, stamper
from jobyard.store.rows import SQLITE_FEW_ROWS, numbered, records, values_insert
from jobyard.store.schema import events

_COLUMNS = (
    "org_id",
    "kind",
    "subject_id",
    "job_id",
    "node_name",
    "type",
    "from_status",
    "to_status",
    "actor",
    "reason",
    "data",
    "created_at",
)
_INSERT = {d: insert_sql(d, "events", _COLUMNS) for d in ("sqlite", "postgresql")}


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
        """Append several events in one statement, an executemany of the driver's own SQL
        (their ids are not returned)."""
        if not rows:
            return
        dialect = self.conn.dialect
        stamp, as_json = stamper(dialect), json_processor(dialect)
        params = [
            (
                r["org_id"],
                r["kind"],
                r["subject_id"],
                r["job_id"],
                r["node_name"],
                r["type"],
                r["from_status"],
                r["to_status"],
                r["actor"],
                r["reason"],
                None if r["data"] is None else as_json(r["data"]),
                stamp(r["created_at"]),
            )
            for r in rows
        ]
        await self.conn.exec_driver_sql(_INSERT[dialect.name], params)

    async def append_many_ids(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Append several events in one statement and return their ids, in order (only the
        ids: the caller has the rows)."""
        if not rows:
            return []
        if self.conn.dialect.name == "sqlite":
            return await self._append_many_sqlite(rows)
        result = await self.conn.execute(
            events.insert().returning(events.c.id, sort_by_parameter_order=True), list(rows)
        )
        return [int(i) for i in result.scalars()]

    async def append_many_returning(self, rows: Sequence[dict[str, Any]]) -> list[Event]:
        """Append several events in one round trip and return them with their ids."""
        ids = await self.append_many_ids(rows)
        return [Event(id=i, **row) for i, row in zip(ids, rows, strict=True)]

    async def _append_many_sqlite(self, rows: Sequence[dict[str, Any]]) -> list[int]:
        # SQLAlchemy cannot promise RETURNING order on SQLite, so with sort_by_parameter_order
        # it sends one INSERT per row. A few rows: one multi-row INSERT ... RETURNING id
        # (SQLite numbers the rows of one statement in the order of its VALUES; RETURNING
        # gives them in no set order, so they are sorted). Many (a 1,000-node round): one
        # executemany, whose statement is the same whatever the count (a multi-row INSERT
        # of 1,000 rows is a new statement to build for every count); writers hold the
        # write lock (BEGIN IMMEDIATE) and SQLite gives each new row max(id) + 1, so the new
        # rows are numbered from the old maximum on, in order; the new maximum checks it.
        if len(rows) <= SQLITE_FEW_ROWS:
            stmt, params = values_insert(events, rows, ("id",))
            return sorted(int(i) for i in (await self.conn.execute(stmt, params)).scalars())
        return list(await numbered(self.conn, events, len(rows), lambda: self.append_many(rows)))

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
