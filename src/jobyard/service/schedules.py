"""Schedule use cases: reusable timing, and its next fire times.

Viewers read; users create; the creator or an admin changes or deletes. A schedule that a
trigger uses cannot be deleted (409); changing a schedule moves the next fire time of its
enabled triggers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.records import Page, Principal
from jobyard.domain.schedules import Schedule
from jobyard.domain.triggers import SavedSchedule
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.launches import wake_scheduler
from jobyard.store import Tx
from jobyard.store.triggers import schedule_values

MAX_NEXT = 100


def may_change(who: Principal, created_by: int | None, what: str, action: str) -> None:
    require(who.role, Role.USER, action)
    if created_by != who.user_id and who.role is not Role.ADMIN:
        raise NotFound(f"no {what} of yours; only its creator or an admin may do that")


async def event(
    svc: Services, tx: Tx, who: Principal, kind: str, subject: int, type: str, **data: Any
) -> None:
    await record(
        svc,
        tx,
        org_id=who.org_id,
        kind=kind,
        subject_id=subject,
        type=type,
        actor=who.actor,
        data=data or None,
        now=svc.clock.now(),
    )


# -- schedules


async def _schedule(tx: Tx, who: Principal, schedule_id: int) -> SavedSchedule:
    found = await tx.schedules.get(who.org_id, schedule_id)
    if found is None:
        raise NotFound(f"no schedule {schedule_id}")
    return found


def _check_name(name: str | None) -> None:
    if name is not None and not 1 <= len(name) <= 200:
        raise Invalid("a name is 1 to 200 characters", "name")


async def create_schedule(
    svc: Services, who: Principal, schedule: Schedule, name: str | None = None
) -> SavedSchedule:
    require(who.role, Role.USER, "creating a schedule")
    _check_name(name)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        if name is not None and await tx.schedules.by_name(who.org_id, name):
            raise Conflict(f"a schedule named {name!r} exists already")
        saved = await tx.schedules.insert(
            {
                **schedule_values(schedule),
                "name": name,
                "org_id": who.org_id,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await event(svc, tx, who, "schedule", saved.id, "schedule.created")
        return saved


async def get_schedule(svc: Services, who: Principal, schedule_id: int) -> SavedSchedule:
    require(who.role, Role.VIEWER, "reading a schedule")
    async with svc.db.read() as tx:
        return await _schedule(tx, who, schedule_id)


async def list_schedules(
    svc: Services, who: Principal, offset: int = 0, limit: int = 20
) -> Page[SavedSchedule]:
    require(who.role, Role.VIEWER, "listing schedules")
    async with svc.db.read() as tx:
        return await tx.schedules.page(who.org_id, offset, limit)


def next_times(schedule: Schedule, n: int, after: dt.datetime) -> list[dt.datetime]:
    if not 1 <= n <= MAX_NEXT:
        raise Invalid(f"ask for 1 to {MAX_NEXT} next times", "n")
    return schedule.next_times(n, after)


async def update_schedule(
    svc: Services,
    who: Principal,
    schedule_id: int,
    changes: dict[str, Any],
    name: str | None = None,
) -> SavedSchedule:
    """Change a schedule (fields given replace the old ones; a new ``kind`` starts from
    scratch); its enabled triggers get their next fire time from the new timing."""
    _check_name(name)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        saved = await _schedule(tx, who, schedule_id)
        may_change(who, saved.created_by, f"schedule {schedule_id}", "changing a schedule")
        if "kind" in changes and changes["kind"] != saved.schedule.kind:
            schedule = Schedule(**changes)
        else:
            try:
                schedule = dataclasses.replace(saved.schedule, **changes)
            except TypeError as exc:
                raise Invalid(f"unknown field in the change: {exc}") from None
        if name is not None and name != saved.name and await tx.schedules.by_name(who.org_id, name):
            raise Conflict(f"a schedule named {name!r} exists already")
        values = {**schedule_values(schedule), "updated_at": now}
        if name is not None:
            values["name"] = name
        updated = await tx.schedules.update(saved.id, values)
        for trigger_id in await tx.schedules.users_of(saved.id):
            trigger = await tx.triggers.get(who.org_id, trigger_id, for_update=True)
            if trigger is not None and trigger.enabled:
                await tx.triggers.update(
                    trigger.id, {"next_fire_at": schedule.next_after(now), "updated_at": now}
                )
        await event(svc, tx, who, "schedule", saved.id, "schedule.updated")
        wake_scheduler(svc, tx)
        return updated


async def delete_schedule(svc: Services, who: Principal, schedule_id: int) -> None:
    async with svc.db.begin() as tx:
        saved = await _schedule(tx, who, schedule_id)
        may_change(who, saved.created_by, f"schedule {schedule_id}", "deleting a schedule")
        users = await tx.schedules.users_of(saved.id)
        if users:
            raise Conflict(
                f"schedule {schedule_id} is used by trigger(s) {users[:5]}: delete them first"
            )
        await event(svc, tx, who, "schedule", saved.id, "schedule.deleted")
        await tx.schedules.delete(saved.id)
