"""Schedules, stacks and triggers on SQLite and PostgreSQL, the scheduler driven by a fake
clock: firing, overlap, catch-up, queued deletion, and slots that never fire twice."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from jobyard.dispatch.scheduler import Scheduler
from jobyard.domain.clock import FakeClock
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.policies import CatchUp, Concurrency, ConcurrencyPolicy
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Argument, TaskSpec
from jobyard.service import schedules, stacks, tasks, triggers
from jobyard.service.context import Services
from jobyard.store import Database
from tests.tasks.conftest import START, People, finish, jobs_of

EVERY_MINUTE = Schedule(ScheduleKind.CRON, cron="* * * * *")


async def _task(svc: Services, people: People, **kw: object) -> int:
    spec = TaskSpec(
        name=str(kw.pop("name", "tick")),
        command="echo tick",
        target=kw.pop("target", Target(nodes=("n1",))),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return (await tasks.create_task(svc, people.alice, spec)).id


async def test_schedule_next_times_and_changes(any_svc: Services, people: People) -> None:
    saved = await schedules.create_schedule(
        any_svc,
        people.alice,
        Schedule(ScheduleKind.CRON, cron="0 9 * * 1-5", timezone="Europe/Paris"),
        "weekdays",
    )
    nxt = schedules.next_times(saved.schedule, 3, START)
    assert [t.isoformat() for t in nxt] == [
        "2026-01-02T08:00:00+00:00",
        "2026-01-05T08:00:00+00:00",
        "2026-01-06T08:00:00+00:00",
    ]
    with pytest.raises(Invalid):
        schedules.next_times(saved.schedule, 0, START)
    changed = await schedules.update_schedule(
        any_svc, people.alice, saved.id, {"cron": "0 10 * * *"}
    )
    assert changed.schedule.cron == "0 10 * * *" and changed.name == "weekdays"
    periodic = await schedules.update_schedule(
        any_svc, people.alice, saved.id, {"kind": ScheduleKind.PERIOD, "period": 30}
    )
    assert periodic.schedule.period == 30 and periodic.schedule.cron is None
    with pytest.raises(Conflict):
        await schedules.create_schedule(any_svc, people.bob, EVERY_MINUTE, "weekdays")
    await schedules.delete_schedule(any_svc, people.alice, saved.id)


async def test_trigger_fires_each_slot_once(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    trigger = await triggers.create_trigger(
        any_svc, people.alice, schedule_id=sched.id, task_id=task_id, name="minutely"
    )
    assert trigger.next_fire_at == START + dt.timedelta(minutes=1)
    scheduler = Scheduler(any_svc)
    assert (await scheduler.tick()).fired == []
    clock.advance(60)
    report = await scheduler.tick()
    assert [(t, s) for t, s, _ in report.fired] == [(trigger.id, START + dt.timedelta(minutes=1))]
    assert (await scheduler.tick()).fired == []  # same moment again: nothing new
    clock.advance(60.5)
    assert len((await scheduler.tick()).fired) == 1
    made = await jobs_of(any_svc, people.alice.org_id)
    assert [(j.trigger_id, j.task_id, j.name) for j in made] == [
        (trigger.id, task_id, "minutely")
    ] * 2
    fires = await triggers.trigger_fires(any_svc, people.viewer, trigger.id)
    assert [f.job_id for f in fires.items] == [made[1].id, made[0].id]
    assert (await triggers.get_trigger_by_name(any_svc, people.viewer, "minutely")).id == trigger.id
    with pytest.raises(Conflict):
        await triggers.create_trigger(
            any_svc, people.alice, schedule_id=sched.id, task_id=task_id, name="minutely"
        )


async def test_disabled_triggers_do_not_fire(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    trigger = await triggers.create_trigger(
        any_svc, people.alice, schedule_id=sched.id, task_id=task_id, enabled=False
    )
    scheduler = Scheduler(any_svc)
    clock.advance(300)
    assert (await scheduler.tick()).fired == []
    enabled = await triggers.update_trigger(any_svc, people.alice, trigger.id, {"enabled": True})
    assert enabled.next_fire_at == START + dt.timedelta(minutes=6)  # from now, nothing missed
    clock.advance(60)
    assert len((await scheduler.tick()).fired) == 1


@pytest.mark.parametrize(
    ("policy", "expected_fired"),
    [(CatchUp.SKIP, 0), (CatchUp.ONCE, 1), (CatchUp.ALL, 3)],
)
async def test_catch_up_after_downtime(
    any_svc: Services, people: People, clock: FakeClock, policy: CatchUp, expected_fired: int
) -> None:
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    trigger = await triggers.create_trigger(
        any_svc,
        people.alice,
        schedule_id=sched.id,
        task_id=task_id,
        catch_up=policy,
        catch_up_window=200,
    )
    # Down from 12:00 to 12:05:30: slots 12:01..12:05 passed; the window keeps 12:03..12:05.
    clock.advance(330)
    report = await Scheduler(any_svc).tick()
    assert len(report.fired) == expected_fired
    assert report.missed == 5 - expected_fired
    async with any_svc.db.read() as tx:
        missed = await tx.events.of_subject("trigger", trigger.id, types=["trigger.missed"])
    assert missed.total == 1 and missed.items[0].data is not None
    assert missed.items[0].data["count"] == 5 - expected_fired
    refreshed = await triggers.get_trigger(any_svc, people.alice, trigger.id)
    assert refreshed.next_fire_at == START + dt.timedelta(minutes=6)


async def test_late_slots_within_grace_fire(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(
        any_svc, people.alice, Schedule(ScheduleKind.PERIOD, period=1)
    )
    await triggers.create_trigger(any_svc, people.alice, schedule_id=sched.id, task_id=task_id)
    clock.advance(5.5)
    report = await Scheduler(any_svc, grace=10).tick()
    assert len(report.fired) == 5 and report.missed == 0


async def test_overlap_forbid_skips_and_queue_waits(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    task_id = await _task(any_svc, people)
    # On another node: what waits here is the trigger's overlap, not a busy node.
    other_id = await _task(any_svc, people, name="tock", target=Target(nodes=("n2",)))
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    forbid = await triggers.create_trigger(
        any_svc,
        people.alice,
        schedule_id=sched.id,
        task_id=task_id,
        name="forbid",
        overlap=ConcurrencyPolicy(mode=Concurrency.FORBID),
    )
    queue = await triggers.create_trigger(
        any_svc,
        people.alice,
        schedule_id=sched.id,
        task_id=other_id,
        name="queue",
        overlap=ConcurrencyPolicy(mode=Concurrency.QUEUE, queue=5),
    )
    scheduler = Scheduler(any_svc)
    clock.advance(60)
    assert len((await scheduler.tick()).fired) == 2
    clock.advance(60)
    second = await scheduler.tick()
    assert second.skipped == 1 and len(second.fired) == 1
    fires = await triggers.trigger_fires(any_svc, people.alice, forbid.id)
    assert fires.items[0].outcome.value == "skipped" and "allows 1 run" in (
        fires.items[0].reason or ""
    )
    made = [j for j in await jobs_of(any_svc, people.alice.org_id) if j.trigger_id == queue.id]
    assert [j.status for j in made] == [JobStatus.NEW, JobStatus.ONHOLD]
    await finish(any_svc, made[0].id)
    await scheduler.tick()
    made = [j for j in await jobs_of(any_svc, people.alice.org_id) if j.trigger_id == queue.id]
    assert [j.status for j in made] == [JobStatus.COMPLETE, JobStatus.NEW]


@pytest.mark.parametrize("mode", [Concurrency.QUEUE, Concurrency.FORBID, Concurrency.ALLOW])
async def test_two_triggers_onto_one_busy_node_follow_the_task_policy(
    any_svc: Services, people: People, clock: FakeClock, mode: Concurrency
) -> None:
    """Two tasks' triggers due at the same moment on the same node: under queue the second
    job waits for the node, under forbid its slot is skipped; the fire history says why."""
    policy = ConcurrencyPolicy(mode=mode)
    first_task = await _task(any_svc, people, name="backup", concurrency=policy)
    second_task = await _task(any_svc, people, name="report", concurrency=policy)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    made_triggers = [
        await triggers.create_trigger(
            any_svc, people.alice, schedule_id=sched.id, task_id=t, name=f"t{t}"
        )
        for t in (first_task, second_task)
    ]
    scheduler = Scheduler(any_svc)
    clock.advance(60)
    report = await scheduler.tick()
    made = await jobs_of(any_svc, people.alice.org_id)
    fires = [
        (await triggers.trigger_fires(any_svc, people.viewer, t.id)).items[0] for t in made_triggers
    ]
    assert made[0].status is JobStatus.NEW and fires[0].reason is None
    if mode is Concurrency.FORBID:
        assert len(made) == 1 and report.skipped == 1
        assert fires[1].outcome.value == "skipped" and fires[1].job_id is None
        assert f"nodes busy: n1 (job {made[0].id})" in (fires[1].reason or "")
        return
    assert len(made) == 2 and report.skipped == 0 and fires[1].job_id == made[1].id
    if mode is Concurrency.ALLOW:  # both start; the node answers busy to one of them
        assert made[1].status is JobStatus.NEW and fires[1].reason is None
        return
    assert made[1].status is JobStatus.ONHOLD
    assert fires[1].reason == f"queued: waiting for busy nodes: n1 (job {made[0].id})"
    await scheduler.tick()  # the node is still busy: it keeps waiting
    assert (await jobs_of(any_svc, people.alice.org_id))[1].status is JobStatus.ONHOLD
    await finish(any_svc, made[0].id)
    await scheduler.tick()
    after = await jobs_of(any_svc, people.alice.org_id)
    assert [j.status for j in after] == [JobStatus.COMPLETE, JobStatus.NEW]


async def test_delete_is_queued_while_a_run_is_due(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    enabled = await triggers.create_trigger(
        any_svc, people.alice, schedule_id=sched.id, task_id=task_id, name="a"
    )
    disabled = await triggers.create_trigger(
        any_svc, people.alice, schedule_id=sched.id, task_id=task_id, name="b", enabled=False
    )
    assert (
        await triggers.delete_trigger(any_svc, people.alice, disabled.id)
        is triggers.Deletion.DELETED
    )
    assert (
        await triggers.delete_trigger(any_svc, people.alice, enabled.id) is triggers.Deletion.QUEUED
    )
    queued = await triggers.get_trigger(any_svc, people.alice, enabled.id)
    assert queued.do_del
    with pytest.raises(Conflict, match="queued for deletion"):
        await triggers.update_trigger(any_svc, people.alice, enabled.id, {"name": "c"})
    with pytest.raises(Conflict, match="used by"):
        await tasks.delete_task(any_svc, people.alice, task_id)
    clock.advance(60)
    report = await Scheduler(any_svc).tick()
    assert report.deleted == 1 and report.fired == []
    with pytest.raises(NotFound):
        await triggers.get_trigger(any_svc, people.alice, enabled.id)
    assert await jobs_of(any_svc, people.alice.org_id) == []
    await tasks.delete_task(any_svc, people.alice, task_id)


async def test_stack_trigger_and_arguments(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    spec = TaskSpec(name="greet", command="echo", arguments=(Argument("who"),))
    task = await tasks.create_task(any_svc, people.alice, spec)
    stack = await stacks.create_stack(
        any_svc, people.alice, "prod", Target(tags=("web",)), env={"STAGE": "prod"}, task_id=task.id
    )
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    with pytest.raises(Invalid, match="'who' is required"):
        await triggers.create_trigger(
            any_svc, people.alice, schedule_id=sched.id, stack_id=stack.id
        )
    with pytest.raises(Invalid, match="no target"):
        await triggers.create_trigger(
            any_svc, people.alice, schedule_id=sched.id, task_id=task.id, arguments={"who": "x"}
        )
    trigger = await triggers.create_trigger(
        any_svc, people.alice, schedule_id=sched.id, stack_id=stack.id, arguments={"who": "world"}
    )
    clock.advance(60)
    report = await Scheduler(any_svc).tick()
    # No node has the tag "web": the slot is skipped with the reason, the next one may run.
    assert report.fired == [] and report.skipped == 1
    fires = await triggers.trigger_fires(any_svc, people.alice, trigger.id)
    assert "no node matches" in (fires.items[0].reason or "")
    await stacks.update_stack(any_svc, people.alice, stack.id, {"target": Target(nodes=("n1",))})
    clock.advance(60)
    report = await Scheduler(any_svc).tick()
    made = await jobs_of(any_svc, people.alice.org_id)
    assert len(report.fired) == 1 and made[0].command == "echo world"
    assert made[0].env["STAGE"] == "prod"
    direct = await stacks.run_stack(any_svc, people.alice, stack.id, {"who": "now"})
    assert direct.job.command == "echo now"
    ran = await triggers.run_trigger(any_svc, people.alice, trigger.id)
    assert ran.job.trigger_id == trigger.id
    with pytest.raises(Conflict, match="used by"):
        await stacks.delete_stack(any_svc, people.alice, stack.id)


async def test_two_schedulers_on_one_database_fire_each_slot_once(
    pg_url: str, settings: object
) -> None:
    """Two servers' schedulers race over the same PostgreSQL: every slot fires exactly once."""
    from jobyard.domain.accounts import Role
    from jobyard.service import accounts
    from tests.tasks.conftest import person

    clock = FakeClock(START)
    dbs = [Database(pg_url), Database(pg_url)]
    await dbs[0].migrate()
    svcs = [Services(db=db, settings=settings, clock=clock) for db in dbs]  # type: ignore[arg-type]
    try:
        await accounts.create_org(svcs[0], "race")
        alice = await person(svcs[0], "race", Role.USER)
        people = People("race", alice, alice, alice, alice)
        task_id = await _task(svcs[0], people)
        sched = await schedules.create_schedule(
            svcs[0], alice, Schedule(ScheduleKind.PERIOD, period=1)
        )
        for i in range(40):
            await triggers.create_trigger(
                svcs[0], alice, schedule_id=sched.id, task_id=task_id, name=f"t{i}"
            )
        schedulers = [Scheduler(s, batch=7) for s in svcs]
        fired: list[tuple[int, dt.datetime, int]] = []
        by_server = [0, 0]
        for _ in range(5):
            clock.advance(1)
            reports = await asyncio.gather(*(s.tick() for s in schedulers))
            for i, r in enumerate(reports):
                fired += r.fired
                by_server[i] += len(r.fired)
        slots = [(t, s) for t, s, _ in fired]
        assert len(slots) == 40 * 5 == len(set(slots))
        made = await jobs_of(svcs[0], alice.org_id)
        assert len(made) == 200
        # Both did part of the work (SKIP LOCKED splits it instead of blocking).
        assert all(by_server), by_server
    finally:
        for db in dbs:
            await db.close()


async def test_restart_does_not_refire(any_svc: Services, people: People, clock: FakeClock) -> None:
    """A new scheduler (a restarted server) at the same moment finds nothing to fire again."""
    task_id = await _task(any_svc, people)
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    await triggers.create_trigger(any_svc, people.alice, schedule_id=sched.id, task_id=task_id)
    clock.advance(60)
    assert len((await Scheduler(any_svc).tick()).fired) == 1
    assert (await Scheduler(any_svc).tick()).fired == []
    # Even a trigger row rolled back to the old slot cannot fire it twice: the fire row stays.
    async with any_svc.db.begin() as tx:
        from jobyard.store.tasks_schema import triggers as table

        await tx.conn.execute(table.update().values(next_fire_at=START + dt.timedelta(minutes=1)))
    report = await Scheduler(any_svc).tick()
    assert report.fired == [] and report.lost == 1
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 1


async def test_batch_launch_writes_what_single_launches_write(
    any_svc: Services, people: People
) -> None:
    """The scheduler writes many runs at once; the rows and events must be the same as
    one launch at a time (so nothing downstream can tell them apart)."""
    import jobyard.service.outbox  # noqa: F401  (its observer makes the creator a watcher)
    from jobyard.service.launches import Origin, Placements, launch, launch_planned, plan_launch

    spec = TaskSpec(name="greet", command="echo", arguments=(Argument("who"),))
    task = await tasks.create_task(any_svc, people.alice, spec)
    stack = await stacks.create_stack(
        any_svc, people.alice, "here", Target(nodes=("n1", "n2")), env={"E": "1"}
    )
    sched = await schedules.create_schedule(any_svc, people.alice, EVERY_MINUTE)
    trigger = await triggers.create_trigger(
        any_svc,
        people.alice,
        schedule_id=sched.id,
        task_id=task.id,
        stack_id=stack.id,
        arguments={"who": "x"},
        name="t",
    )
    # A creator, so that the notification observer's watch is compared too.
    origin = Origin(actor="trigger:t", trigger=trigger, created_by=people.alice.user_id)
    async with any_svc.db.begin() as tx:
        one = await launch(
            any_svc,
            tx,
            org_id=trigger.org_id,
            task=task,
            stack=stack,
            arguments={"who": "x"},
            origin=origin,
        )
        planned = await plan_launch(
            Placements(tx),
            org_id=trigger.org_id,
            task=task,
            stack=stack,
            arguments={"who": "x"},
            origin=origin,
            box=any_svc.secrets,
        )
        (many,) = await launch_planned(any_svc, tx, [planned])
        assert one.job is not None
        pair = [one.job, many]
        runs = [[(r.node_name, r.status) for r in await tx.jobs.runs(j.id)] for j in pair]
        origins = [await tx.task_runs.get(j.id) for j in pair]
        watching = [[w.user_id for w in await tx.notify.watchers.of("job", j.id)] for j in pair]
        events = [
            [
                (e.type, e.from_status, e.to_status, e.actor, e.reason)
                for e in await tx.events.of_job(j.id)
            ]
            for j in pair
        ]
    skip = {"id", "created_at", "updated_at", "submitted_at"}
    a, b = ({k: v for k, v in dataclasses.asdict(j).items() if k not in skip} for j in pair)
    assert a == b
    assert runs[0] == runs[1] == [("n1", runs[0][0][1]), ("n2", runs[0][0][1])]
    assert events[0] == events[1]
    assert watching[0] == watching[1] == [people.alice.user_id]
    assert origins[0] is not None and origins[1] is not None
    assert dataclasses.replace(origins[0], job_id=0, first_job_id=0, created_at=START) == (
        dataclasses.replace(origins[1], job_id=0, first_job_id=0, created_at=START)
    )
