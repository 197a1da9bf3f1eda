"""Schedules, stacks, triggers and the fired slots of triggers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.chains import Step
from jobyard.domain.policies import CatchUp, ConcurrencyPolicy
from jobyard.domain.records import Page
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.domain.targets import Target
from jobyard.domain.triggers import Fire, FireOutcome, SavedSchedule, Stack, Trigger
from jobyard.store.tasks_schema import schedules, stacks, trigger_fires, triggers


def schedule_values(schedule: Schedule) -> dict[str, Any]:
    return {
        "kind": schedule.kind.value,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "period": schedule.period,
        "start": schedule.start,
        "at": schedule.at,
    }


def _schedule(row: sa.RowMapping) -> SavedSchedule:
    spec = Schedule(
        kind=ScheduleKind(row["kind"]),
        cron=row["cron"],
        timezone=row["timezone"],
        period=row["period"],
        start=row["start"],
        at=row["at"],
    )
    return SavedSchedule(
        id=row["id"],
        org_id=row["org_id"],
        name=row["name"],
        schedule=spec,
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _stack(row: sa.RowMapping) -> Stack:
    data = dict(row)
    data["target"] = Target.from_json(data["target"])
    data["steps"] = tuple(Step.from_json(s) for s in data["steps"] or ())
    data["on_failure"] = Step.from_json(data["on_failure"]) if data["on_failure"] else None
    return Stack(**data)


def _trigger(row: sa.RowMapping) -> Trigger:
    data = dict(row)
    data["overlap"] = ConcurrencyPolicy.from_json(data["overlap"], "overlap")
    data["catch_up"] = CatchUp(data["catch_up"])
    return Trigger(**data)


def _fire(row: sa.RowMapping) -> Fire:
    data = dict(row)
    data["outcome"] = FireOutcome(data["outcome"])
    return Fire(**data)


async def _page(
    conn: AsyncConnection, table: sa.Table, org_id: int, offset: int, limit: int
) -> tuple[list[sa.RowMapping], int]:
    where = table.c.org_id == org_id
    total = (
        await conn.execute(sa.select(sa.func.count()).select_from(table).where(where))
    ).scalar_one()
    q = table.select().where(where).order_by(table.c.id).offset(offset).limit(limit)
    return list((await conn.execute(q)).mappings()), total


class SchedulesRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, values: dict[str, Any]) -> SavedSchedule:
        q = schedules.insert().values(**values).returning(*schedules.c)
        return _schedule((await self.conn.execute(q)).mappings().one())

    async def update(self, schedule_id: int, values: dict[str, Any]) -> SavedSchedule:
        q = (
            schedules.update()
            .where(schedules.c.id == schedule_id)
            .values(**values)
            .returning(*schedules.c)
        )
        return _schedule((await self.conn.execute(q)).mappings().one())

    async def get(self, org_id: int, schedule_id: int) -> SavedSchedule | None:
        q = schedules.select().where(schedules.c.org_id == org_id, schedules.c.id == schedule_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _schedule(row)

    async def by_name(self, org_id: int, name: str) -> SavedSchedule | None:
        q = schedules.select().where(schedules.c.org_id == org_id, schedules.c.name == name)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _schedule(row)

    async def many(self, ids: Sequence[int]) -> dict[int, SavedSchedule]:
        if not ids:
            return {}
        q = schedules.select().where(schedules.c.id.in_(list(set(ids))))
        return {r["id"]: _schedule(r) for r in (await self.conn.execute(q)).mappings()}

    async def page(self, org_id: int, offset: int, limit: int) -> Page[SavedSchedule]:
        rows, total = await _page(self.conn, schedules, org_id, offset, limit)
        return Page([_schedule(r) for r in rows], total)

    async def delete(self, schedule_id: int) -> None:
        await self.conn.execute(schedules.delete().where(schedules.c.id == schedule_id))

    async def users_of(self, schedule_id: int) -> list[int]:
        q = sa.select(triggers.c.id).where(triggers.c.schedule_id == schedule_id)
        return list((await self.conn.execute(q)).scalars())


class StacksRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(self, values: dict[str, Any]) -> Stack:
        q = stacks.insert().values(**values).returning(*stacks.c)
        return _stack((await self.conn.execute(q)).mappings().one())

    async def update(self, stack_id: int, values: dict[str, Any]) -> Stack:
        q = stacks.update().where(stacks.c.id == stack_id).values(**values).returning(*stacks.c)
        return _stack((await self.conn.execute(q)).mappings().one())

    async def get(self, org_id: int, stack_id: int) -> Stack | None:
        q = stacks.select().where(stacks.c.org_id == org_id, stacks.c.id == stack_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _stack(row)

    async def get_any(self, stack_id: int) -> Stack | None:
        """A stack by id whatever its organization (webhooks find their stack this way)."""
        q = stacks.select().where(stacks.c.id == stack_id)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _stack(row)

    async def by_name(self, org_id: int, name: str) -> Stack | None:
        q = stacks.select().where(stacks.c.org_id == org_id, stacks.c.name == name)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _stack(row)

    async def page(self, org_id: int, offset: int, limit: int) -> Page[Stack]:
        rows, total = await _page(self.conn, stacks, org_id, offset, limit)
        return Page([_stack(r) for r in rows], total)

    async def public_page(self, org_id: int, offset: int, limit: int) -> Page[Stack]:
        where = sa.and_(stacks.c.org_id == org_id, stacks.c.public.is_(True))
        total = (
            await self.conn.execute(sa.select(sa.func.count()).select_from(stacks).where(where))
        ).scalar_one()
        q = stacks.select().where(where).order_by(stacks.c.id).offset(offset).limit(limit)
        rows = (await self.conn.execute(q)).mappings().all()
        return Page([_stack(r) for r in rows], total)

    async def using_task(self, org_id: int, task_id: int) -> list[str]:
        """Names of the stacks whose chain runs this task."""
        q = sa.select(stacks.c.name, stacks.c.steps, stacks.c.on_failure).where(
            stacks.c.org_id == org_id, stacks.c.steps.is_not(None)
        )
        out = []
        for name, steps, failure in (await self.conn.execute(q)).all():
            ids = [s.get("task_id") for s in [*(steps or []), *([failure] if failure else [])]]
            if task_id in ids:
                out.append(name)
        return out

    async def delete(self, stack_id: int) -> None:
        await self.conn.execute(stacks.delete().where(stacks.c.id == stack_id))

    async def users_of(self, stack_id: int) -> list[int]:
        q = sa.select(triggers.c.id).where(triggers.c.stack_id == stack_id)
        return list((await self.conn.execute(q)).scalars())


class TriggersRepo:
    def __init__(self, conn: AsyncConnection, dialect: str) -> None:
        self.conn = conn
        self.dialect = dialect

    async def insert(self, values: dict[str, Any]) -> Trigger:
        q = triggers.insert().values(**values).returning(*triggers.c)
        return _trigger((await self.conn.execute(q)).mappings().one())

    async def update(self, trigger_id: int, values: dict[str, Any]) -> Trigger:
        q = (
            triggers.update()
            .where(triggers.c.id == trigger_id)
            .values(**values)
            .returning(*triggers.c)
        )
        return _trigger((await self.conn.execute(q)).mappings().one())

    async def get(
        self, org_id: int, trigger_id: int, *, for_update: bool = False
    ) -> Trigger | None:
        q = triggers.select().where(triggers.c.org_id == org_id, triggers.c.id == trigger_id)
        if for_update and self.dialect == "postgresql":
            q = q.with_for_update()
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _trigger(row)

    async def by_name(self, org_id: int, name: str) -> Trigger | None:
        q = triggers.select().where(triggers.c.org_id == org_id, triggers.c.name == name)
        row = (await self.conn.execute(q)).mappings().first()
        return None if row is None else _trigger(row)

    async def page(self, org_id: int, offset: int, limit: int) -> Page[Trigger]:
        rows, total = await _page(self.conn, triggers, org_id, offset, limit)
        return Page([_trigger(r) for r in rows], total)

    async def delete(self, trigger_id: int) -> None:
        await self.conn.execute(triggers.delete().where(triggers.c.id == trigger_id))

    async def due(self, now: dt.datetime, limit: int) -> list[Trigger]:
        """Enabled triggers whose next fire time has come, soonest first; on PostgreSQL each
        is locked, and rows another scheduler holds are skipped."""
        q = (
            triggers.select()
            .where(
                triggers.c.enabled.is_(True),
                triggers.c.next_fire_at.is_not(None),
                triggers.c.next_fire_at <= now,
            )
            .order_by(triggers.c.next_fire_at, triggers.c.id)
            .limit(limit)
        )
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True)
        return [_trigger(r) for r in (await self.conn.execute(q)).mappings()]

    async def next_due(self) -> dt.datetime | None:
        """The soonest fire time of any enabled trigger."""
        q = sa.select(sa.func.min(triggers.c.next_fire_at)).where(triggers.c.enabled.is_(True))
        value: dt.datetime | None = (await self.conn.execute(q)).scalar()
        return value

    async def advance_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Set next_fire_at and last_slot of several triggers in one statement."""
        if not rows:
            return
        stmt = (
            triggers.update()
            .where(triggers.c.id == sa.bindparam("b_id"))
            .values(
                next_fire_at=sa.bindparam("b_next"),
                last_slot=sa.bindparam("b_last"),
            )
        )
        await self.conn.execute(
            stmt,
            [
                {"b_id": r["id"], "b_next": r["next_fire_at"], "b_last": r["last_slot"]}
                for r in rows
            ],
        )

    # -- fired slots
    async def claim(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[int, dt.datetime], int]:
        """Insert fire rows; return {(trigger, slot): fire id} of those this call inserted.

        A slot some other transaction recorded already is left out: it is not ours to run.
        """
        if not rows:
            return {}
        ins: Any = (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(
            trigger_fires
        )
        q = ins.on_conflict_do_nothing(index_elements=["trigger_id", "slot_time"]).returning(
            trigger_fires.c.id, trigger_fires.c.trigger_id, trigger_fires.c.slot_time
        )
        # executemany: one cached statement, sent in batches of many VALUES by SQLAlchemy.
        result = await self.conn.execute(q, list(rows))
        return {(t, s): i for i, t, s in result.all()}

    async def set_fire_jobs(self, fired: Sequence[tuple[int, int, str | None]]) -> None:
        """Record the job of each fired slot, and a note (why it waits) or None:
        (fire id, job id, note)."""
        if not fired:
            return
        stmt = (
            trigger_fires.update()
            .where(trigger_fires.c.id == sa.bindparam("f_id"))
            .values(job_id=sa.bindparam("f_job"), reason=sa.bindparam("f_reason"))
        )
        await self.conn.execute(stmt, [{"f_id": f, "f_job": j, "f_reason": r} for f, j, r in fired])

    async def skip_fires(self, pairs: Sequence[tuple[int, str]]) -> None:
        """Mark fired slots as skipped, with why: (fire id, reason)."""
        if not pairs:
            return
        stmt = (
            trigger_fires.update()
            .where(trigger_fires.c.id == sa.bindparam("f_id"))
            .values(outcome=FireOutcome.SKIPPED.value, reason=sa.bindparam("f_reason"))
        )
        await self.conn.execute(stmt, [{"f_id": f, "f_reason": r} for f, r in pairs])

    async def fires(self, trigger_id: int, offset: int, limit: int) -> Page[Fire]:
        """A trigger's handled slots, newest first."""
        where = trigger_fires.c.trigger_id == trigger_id
        total = (
            await self.conn.execute(
                sa.select(sa.func.count()).select_from(trigger_fires).where(where)
            )
        ).scalar_one()
        q = (
            trigger_fires.select()
            .where(where)
            .order_by(trigger_fires.c.slot_time.desc(), trigger_fires.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return Page([_fire(r) for r in (await self.conn.execute(q)).mappings()], total)

    async def prune_fires(self, before: dt.datetime) -> int:
        res = await self.conn.execute(
            trigger_fires.delete().where(trigger_fires.c.slot_time < before)
        )
        return int(res.rowcount or 0)
