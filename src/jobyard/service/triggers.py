"""Triggers: a task or a stack on a schedule (Kragle's "jobs"), and firing their slots.

A trigger keeps ``next_fire_at``, the next slot of its schedule. ``fire_due`` takes the
triggers whose slot has come (on PostgreSQL, locked with SKIP LOCKED so that two servers
split the work instead of sharing it), plans each trigger's due slots (late slots fire,
slots missed during downtime follow the catch-up policy and are recorded as
``trigger.missed``), and claims the slots it fires by inserting ``(trigger, slot)`` rows
under a UNIQUE constraint in the same transaction as their jobs. A slot claimed once is
never claimed again: not after a restart, not by another server.

Deleting an enabled trigger that has a next slot is queued (Kragle's ``do_del``): at that
slot it is deleted instead of run. Otherwise it is deleted at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from jobyard.domain.accounts import Role, require
from jobyard.domain.errors import Conflict, Invalid, JobyardError, NotFound
from jobyard.domain.policies import CatchUp, ConcurrencyPolicy, plan_slots
from jobyard.domain.records import Page, Principal
from jobyard.domain.tasks import Task, TaskType, bind_arguments
from jobyard.domain.triggers import (
    DEFAULT_CATCH_UP_WINDOW,
    MAX_CATCH_UP_WINDOW,
    Fire,
    FireOutcome,
    Stack,
    Trigger,
)
from jobyard.service.chains import start
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.service.holds import isolated
from jobyard.service.jobs import JobView
from jobyard.service.launches import (
    Origin,
    Placements,
    Planned,
    batchable,
    launch_planned,
    plan_launch,
    wake_scheduler,
)
from jobyard.service.schedules import may_change
from jobyard.service.secrets import seal_arguments
from jobyard.store import Tx

log = logging.getLogger("jobyard.scheduler")

# A slot at most this many seconds old is late, not missed: it fires whatever the policy.
GRACE = 10.0
# At most this many slots of one trigger are looked at per pass (every-second schedules
# after a long downtime); the rest count as missed.
SLOT_CAP = 1000
MISSED_LISTED = 20


class Deletion(StrEnum):
    DELETED = "deleted"
    QUEUED = "queued_for_deletion"


@dataclass
class FireReport:
    """What one pass did; ``fired`` holds (trigger id, slot, job id)."""

    triggers: int = 0
    fired: list[tuple[int, dt.datetime, int]] = field(default_factory=list)
    skipped: int = 0
    missed: int = 0
    deleted: int = 0
    lost: int = 0  # slots another server claimed first

    def add(self, other: FireReport) -> None:
        self.triggers += other.triggers
        self.fired += other.fired
        self.skipped += other.skipped
        self.missed += other.missed
        self.deleted += other.deleted
        self.lost += other.lost


# -- use cases


async def _trigger(tx: Tx, who: Principal, trigger_id: int, *, lock: bool = False) -> Trigger:
    found = await tx.triggers.get(who.org_id, trigger_id, for_update=lock)
    if found is None:
        raise NotFound(f"no trigger {trigger_id}")
    return found


async def _what(
    tx: Tx, org_id: int, task_id: int | None, stack_id: int | None, arguments: Any
) -> tuple[Task | None, Stack | None]:
    """Check what a trigger runs: a task, a stack, or a task on a stack."""
    if task_id is None and stack_id is None:
        raise Invalid("a trigger runs a task or a stack: give task_id or stack_id", "task_id")
    task = stack = None
    if stack_id is not None:
        stack = await tx.stacks.get(org_id, stack_id)
        if stack is None:
            raise NotFound(f"no stack {stack_id}")
    if task_id is not None:
        task = await tx.tasks.get(org_id, task_id)
        if task is None:
            raise NotFound(f"no task {task_id}")
    elif stack is not None and stack.task_id is not None:
        task = await tx.tasks.get(org_id, stack.task_id)
    if task is None and stack is not None and stack.chained:
        if arguments:
            raise Invalid(
                f"stack {stack.name!r} is a chain: its steps carry their own arguments",
                "arguments",
            )
        return None, stack
    if task is None and stack is not None and not stack.command:
        raise Invalid(f"stack {stack.name!r} has neither a task nor a command to run", "stack_id")
    if task is not None and task.type is TaskType.INPUT:
        if arguments:
            raise Invalid("an input task takes its arguments later, not from a trigger")
    elif task is not None:
        bind_arguments(task.spec.arguments, arguments)
    elif arguments:
        raise Invalid("a stack's own command takes no arguments", "arguments")
    if task is not None and task.spec.target is None and stack is None:
        raise Invalid(
            f"task {task.name!r} has no target: give the trigger a stack to run it on",
            "stack_id",
        )
    return task, stack


def _check(name: str | None, catch_up_window: int) -> None:
    if name is not None and not 1 <= len(name) <= 200:
        raise Invalid("a trigger name is 1 to 200 characters", "name")
    if not 0 <= catch_up_window <= MAX_CATCH_UP_WINDOW:
        raise Invalid(
            f"catch_up_window is in seconds, from 0 to {MAX_CATCH_UP_WINDOW}", "catch_up_window"
        )


async def _event(
    svc: Services, tx: Tx, trigger: Trigger, type: str, actor: str | None, **data: Any
) -> None:
    await record(
        svc,
        tx,
        org_id=trigger.org_id,
        kind="trigger",
        subject_id=trigger.id,
        type=type,
        actor=actor,
        data=data or None,
        now=svc.clock.now(),
    )


async def create_trigger(
    svc: Services,
    who: Principal,
    *,
    schedule_id: int,
    task_id: int | None = None,
    stack_id: int | None = None,
    name: str | None = None,
    enabled: bool = True,
    overlap: ConcurrencyPolicy | None = None,
    catch_up: CatchUp = CatchUp.ONCE,
    catch_up_window: int = DEFAULT_CATCH_UP_WINDOW,
    arguments: Any = None,
) -> Trigger:
    require(who.role, Role.USER, "creating a trigger")
    _check(name, catch_up_window)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        schedule = await tx.schedules.get(who.org_id, schedule_id)
        if schedule is None:
            raise NotFound(f"no schedule {schedule_id}")
        task, _ = await _what(tx, who.org_id, task_id, stack_id, arguments)
        if task is not None:
            arguments = seal_arguments(svc.secrets, task.spec.arguments, arguments)
        if name is not None and await tx.triggers.by_name(who.org_id, name):
            raise Conflict(f"a trigger named {name!r} exists already")
        trigger = await tx.triggers.insert(
            {
                "org_id": who.org_id,
                "name": name,
                "task_id": task_id,
                "stack_id": stack_id,
                "schedule_id": schedule_id,
                "enabled": enabled,
                "overlap": (overlap or ConcurrencyPolicy()).as_json(),
                "catch_up": catch_up.value,
                "catch_up_window": catch_up_window,
                "arguments": arguments if arguments is not None else {},
                "do_del": False,
                "next_fire_at": schedule.schedule.next_after(now) if enabled else None,
                "last_slot": None,
                "created_by": who.user_id,
                "created_at": now,
                "updated_at": now,
            }
        )
        await _event(svc, tx, trigger, "trigger.created", who.actor)
        wake_scheduler(svc, tx)
        return trigger


async def get_trigger(svc: Services, who: Principal, trigger_id: int) -> Trigger:
    require(who.role, Role.VIEWER, "reading a trigger")
    async with svc.db.read() as tx:
        return await _trigger(tx, who, trigger_id)


async def get_trigger_by_name(svc: Services, who: Principal, name: str) -> Trigger:
    require(who.role, Role.VIEWER, "reading a trigger")
    async with svc.db.read() as tx:
        found = await tx.triggers.by_name(who.org_id, name)
        if found is None:
            raise NotFound(f"no trigger named {name!r}")
        return found


async def list_triggers(
    svc: Services, who: Principal, offset: int = 0, limit: int = 20
) -> Page[Trigger]:
    require(who.role, Role.VIEWER, "listing triggers")
    async with svc.db.read() as tx:
        return await tx.triggers.page(who.org_id, offset, limit)


async def trigger_fires(
    svc: Services, who: Principal, trigger_id: int, offset: int = 0, limit: int = 20
) -> Page[Fire]:
    """The slots a trigger handled (fired or skipped), newest first."""
    require(who.role, Role.VIEWER, "reading a trigger")
    async with svc.db.read() as tx:
        await _trigger(tx, who, trigger_id)
        return await tx.triggers.fires(trigger_id, offset, limit)


_FIELDS = {
    "name",
    "schedule_id",
    "task_id",
    "stack_id",
    "enabled",
    "overlap",
    "catch_up",
    "catch_up_window",
    "arguments",
}


async def update_trigger(
    svc: Services, who: Principal, trigger_id: int, changes: dict[str, Any]
) -> Trigger:
    """Change some fields (the others stay, as Kragle's PUT). Enabling, or a new schedule,
    sets the next fire time from now; disabling clears it."""
    unknown = set(changes) - _FIELDS
    if unknown:
        raise Invalid(f"unknown field {sorted(unknown)[0]!r} in the change")
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        trigger = await _trigger(tx, who, trigger_id, lock=True)
        may_change(who, trigger.created_by, f"trigger {trigger_id}", "changing a trigger")
        if trigger.do_del:
            raise Conflict(f"trigger {trigger_id} is queued for deletion")
        merged = dataclasses.replace(trigger, **changes)
        _check(merged.name, merged.catch_up_window)
        if (
            merged.name != trigger.name
            and merged.name is not None
            and await tx.triggers.by_name(who.org_id, merged.name)
        ):
            raise Conflict(f"a trigger named {merged.name!r} exists already")
        schedule = await tx.schedules.get(who.org_id, merged.schedule_id)
        if schedule is None:
            raise NotFound(f"no schedule {merged.schedule_id}")
        task, _ = await _what(tx, who.org_id, merged.task_id, merged.stack_id, merged.arguments)
        if task is not None:
            sealed = seal_arguments(
                svc.secrets, task.spec.arguments, merged.arguments, trigger.arguments
            )
            merged = dataclasses.replace(merged, arguments=sealed)
        next_fire = trigger.next_fire_at
        if not merged.enabled:
            next_fire = None
        elif not trigger.enabled or merged.schedule_id != trigger.schedule_id:
            next_fire = schedule.schedule.next_after(now)
        updated = await tx.triggers.update(
            trigger.id,
            {
                "name": merged.name,
                "schedule_id": merged.schedule_id,
                "task_id": merged.task_id,
                "stack_id": merged.stack_id,
                "enabled": merged.enabled,
                "overlap": merged.overlap.as_json(),
                "catch_up": CatchUp(merged.catch_up).value,
                "catch_up_window": merged.catch_up_window,
                "arguments": merged.arguments if merged.arguments is not None else {},
                "next_fire_at": next_fire,
                "updated_at": now,
            },
        )
        await _event(svc, tx, updated, "trigger.updated", who.actor, fields=sorted(changes))
        wake_scheduler(svc, tx)
        return updated


async def delete_trigger(
    svc: Services, who: Principal, trigger_id: int, *, now: bool = False
) -> Deletion:
    """Delete a trigger, or queue its deletion when it is enabled and has a next run
    (``now=True`` deletes at once whatever its state)."""
    async with svc.db.begin() as tx:
        trigger = await _trigger(tx, who, trigger_id, lock=True)
        may_change(who, trigger.created_by, f"trigger {trigger_id}", "deleting a trigger")
        if not now and trigger.enabled and trigger.next_fire_at is not None:
            if not trigger.do_del:
                await tx.triggers.update(
                    trigger.id, {"do_del": True, "updated_at": svc.clock.now()}
                )
                await _event(
                    svc,
                    tx,
                    trigger,
                    "trigger.queued_for_deletion",
                    who.actor,
                    at=trigger.next_fire_at.isoformat(),
                )
            return Deletion.QUEUED
        await _event(svc, tx, trigger, "trigger.deleted", who.actor, name=trigger.name)
        await tx.triggers.delete(trigger.id)
        return Deletion.DELETED


async def run_trigger(svc: Services, who: Principal, trigger_id: int) -> JobView:
    """Run a trigger's task or stack now, outside its schedule (its overlap policy applies)."""
    require(who.role, Role.USER, "running a trigger")

    async def fire(tx: Tx) -> JobView:
        trigger = await _trigger(tx, who, trigger_id, lock=True)
        task, stack = await _what(
            tx, who.org_id, trigger.task_id, trigger.stack_id, trigger.arguments
        )
        launched = await start(
            svc,
            tx,
            org_id=who.org_id,
            task=task,
            stack=stack,
            arguments=trigger.arguments,
            origin=Origin(actor=who.actor, created_by=who.user_id, trigger=trigger),
        )
        assert launched.job is not None
        return JobView(launched.job, await tx.jobs.runs(launched.job.id))

    return await svc.db.write(fire)


# -- firing


@dataclass
class _Plan:
    trigger: Trigger
    fire: list[dt.datetime]


class _Cache:
    def __init__(self, tx: Tx) -> None:
        self.tx = tx
        self.tasks: dict[int, Task | None] = {}
        self.stacks: dict[int, Stack | None] = {}

    async def what(self, trigger: Trigger) -> tuple[Task | None, Stack | None]:
        stack = None
        if trigger.stack_id is not None:
            if trigger.stack_id not in self.stacks:
                self.stacks[trigger.stack_id] = await self.tx.stacks.get(
                    trigger.org_id, trigger.stack_id
                )
            stack = self.stacks[trigger.stack_id]
        task_id = (
            trigger.task_id
            if trigger.task_id is not None
            else (stack.task_id if stack is not None else None)
        )
        task = None
        if task_id is not None:
            if task_id not in self.tasks:
                self.tasks[task_id] = await self.tx.tasks.get(trigger.org_id, task_id)
            task = self.tasks[task_id]
        return task, stack


async def fire_due(
    svc: Services, now: dt.datetime | None = None, *, limit: int = 500, grace: float = GRACE
) -> FireReport:
    """Fire the slots that have come, for up to ``limit`` triggers, in one transaction."""
    report = FireReport()
    async with svc.db.begin() as tx:
        now = now or svc.clock.now()
        due = await tx.triggers.due(now, limit)
        report.triggers = len(due)
        if not due:
            return report
        schedules = await tx.schedules.many([t.schedule_id for t in due])
        plans: list[_Plan] = []
        advance: list[dict[str, Any]] = []
        claims: list[dict[str, Any]] = []
        for trigger in due:
            assert trigger.next_fire_at is not None
            if trigger.do_del:
                await _event(
                    svc,
                    tx,
                    trigger,
                    "trigger.deleted",
                    "scheduler",
                    name=trigger.name,
                    reason="queued for deletion",
                )
                await tx.triggers.delete(trigger.id)
                report.deleted += 1
                continue
            schedule = schedules[trigger.schedule_id].schedule
            slots, after, more = schedule.slots_between(trigger.next_fire_at, now, SLOT_CAP)
            plan = plan_slots(
                slots, now, grace=grace, catch_up=trigger.catch_up, window=trigger.catch_up_window
            )
            advance.append(
                {
                    "id": trigger.id,
                    "next_fire_at": after,
                    "last_slot": slots[-1],
                }
            )
            if plan.missed or more:
                report.missed += len(plan.missed)
                await _event(
                    svc,
                    tx,
                    trigger,
                    "trigger.missed",
                    "scheduler",
                    count=len(plan.missed),
                    more=more,
                    policy=trigger.catch_up.value,
                    slots=[s.isoformat() for s in plan.missed[-MISSED_LISTED:]],
                )
            plans.append(_Plan(trigger, plan.fire))
            claims += [
                {
                    "trigger_id": trigger.id,
                    "org_id": trigger.org_id,
                    "slot_time": slot,
                    "outcome": FireOutcome.FIRED.value,
                    "created_at": now,
                }
                for slot in plan.fire
            ]
        claimed = await tx.triggers.claim(claims)
        report.lost = len(claims) - len(claimed)
        cache = _Cache(tx)
        places = Placements(tx)
        jobs: list[tuple[int, int, str | None]] = []
        skipped: list[tuple[int, str]] = []
        batch: list[tuple[int, Trigger, dt.datetime, Planned]] = []

        async def done(
            fire_id: int, trigger: Trigger, slot: dt.datetime, job_id: int | None, why: str | None
        ) -> None:
            if job_id is not None:  # ``why``: it waits in a queue
                jobs.append((fire_id, job_id, why))
                report.fired.append((trigger.id, slot, job_id))
                return
            skipped.append((fire_id, why or "skipped"))
            await _event(
                svc, tx, trigger, "trigger.skipped", "scheduler", slot=slot.isoformat(), reason=why
            )

        for plan_ in plans:
            trigger = plan_.trigger
            for slot in plan_.fire:
                fire_id = claimed.get((trigger.id, slot))
                if fire_id is None:
                    continue  # another server fired this slot
                task, stack = await cache.what(trigger)
                chain = stack is not None and stack.chained
                if (
                    (task is not None or stack is not None)
                    and not chain
                    and batchable(task, trigger)
                ):
                    try:
                        planned = await plan_launch(
                            places,
                            org_id=trigger.org_id,
                            task=task,
                            stack=stack,
                            arguments=trigger.arguments,
                            origin=_origin(trigger),
                            box=svc.secrets,
                        )
                    except JobyardError as exc:
                        await done(fire_id, trigger, slot, None, exc.detail)
                        continue
                    batch.append((fire_id, trigger, slot, planned))
                    continue
                job_id, why = await _fire(svc, tx, cache, trigger, slot)
                await done(fire_id, trigger, slot, job_id, why)
        if batch:
            try:
                async with isolated(tx):
                    made = await launch_planned(svc, tx, [b[3] for b in batch])
            except Exception:
                log.exception("writing %d fired slots at once failed; one by one", len(batch))
                for fire_id, trigger, slot, _ in batch:
                    job_id, why = await _fire(svc, tx, cache, trigger, slot)
                    await done(fire_id, trigger, slot, job_id, why)
            else:
                for (fire_id, trigger, slot, _), job in zip(batch, made, strict=True):
                    await done(fire_id, trigger, slot, job.id, None)
        report.skipped = len(skipped)
        await tx.triggers.advance_many(advance)
        await tx.triggers.set_fire_jobs(jobs)
        await tx.triggers.skip_fires(skipped)
    return report


def _origin(trigger: Trigger) -> Origin:
    return Origin(actor=f"trigger:{trigger.name or trigger.id}", trigger=trigger)


async def _fire(
    svc: Services, tx: Tx, cache: _Cache, trigger: Trigger, slot: dt.datetime
) -> tuple[int | None, str | None]:
    """Launch one slot: its job and, when the job waits in a queue, why; or no job and
    why not (a failure skips this slot only)."""
    task, stack = await cache.what(trigger)
    if task is None and stack is None:
        return None, "its task and stack no longer exist"
    try:
        async with isolated(tx):
            launched = await start(
                svc,
                tx,
                org_id=trigger.org_id,
                task=task,
                stack=stack,
                arguments=trigger.arguments,
                origin=_origin(trigger),
                refuse="skip",
            )
    except JobyardError as exc:
        return None, exc.detail
    except Exception as exc:
        # A bug must not stop every other trigger: this slot is skipped, and logged.
        log.exception("trigger %s failed to fire its slot %s", trigger.id, slot)
        return None, f"internal error: {type(exc).__name__}"
    if launched.job is None:
        return None, launched.skipped
    return launched.job.id, f"queued: {launched.queued}" if launched.queued else None


async def prune_fires(svc: Services, before: dt.datetime) -> int:
    """Forget fired slots older than ``before`` (their jobs and events stay)."""
    async with svc.db.begin() as tx:
        return await tx.triggers.prune_fires(before)


@dataclass(frozen=True)
class Agenda:
    """When the scheduler next has work: triggers to fire, holds to release (retries,
    timeouts, input deadlines), and whether runs wait in a concurrency queue."""

    triggers: dt.datetime | None
    releases: dt.datetime | None
    queued: bool

    def due(self, now: dt.datetime) -> tuple[bool, bool]:
        return (
            self.triggers is not None and self.triggers <= now,
            self.releases is not None and self.releases <= now,
        )

    @property
    def next(self) -> dt.datetime | None:
        found = [t for t in (self.triggers, self.releases) if t is not None]
        return min(found) if found else None


async def agenda(svc: Services) -> Agenda:
    """Read (without locking anything) what the scheduler has to do and when."""
    async with svc.db.read() as tx:
        return Agenda(
            triggers=await tx.triggers.next_due(),
            releases=await tx.task_runs.next_release_any(),
            queued=bool(await tx.task_runs.queued(1)),
        )
