"""Stacks as chains of steps, on SQLite and PostgreSQL: each step's end starts the next in the
same transaction, a failure stops the chain (or runs the on_failure step), a step reads the
previous step's output, a stop aborts the running step, and a step starts once however many
writers try."""

from __future__ import annotations

import pytest

from jobyard.dispatch.scheduler import Scheduler
from jobyard.domain.chains import StackRunStatus, StepState
from jobyard.domain.clock import FakeClock
from jobyard.domain.errors import Conflict, Invalid, NotFound
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.outputs import OutputCaps
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Argument, TaskSpec
from jobyard.service import chains, schedules, stacks, tasks, triggers
from jobyard.service.context import Services
from tests.tasks.conftest import People, finish, job, jobs_of

NODE = Target(nodes=("n1",))


async def finish_with(
    svc: Services, job_id: int, stdout: str, result: NodeRunStatus = NodeRunStatus.SUCCEEDED
) -> None:
    """Give the job's node some output, then drive it to the end."""
    async with svc.db.begin() as tx:
        for run in await tx.jobs.runs(job_id):
            await tx.outputs.append(run.id, "stdout", stdout, OutputCaps(1 << 20, 1 << 20))
    await finish(svc, job_id, result)


async def three_tasks(svc: Services, who: object) -> list[int]:
    ids = []
    for name, args in (("build", ()), ("test", ("version",)), ("ship", ("version", "tag"))):
        declared = tuple(Argument(a) for a in args)
        spec = TaskSpec(name=name, command=f"./{name}.sh", arguments=declared)
        ids.append((await tasks.create_task(svc, who, spec)).id)  # type: ignore[arg-type]
    return ids


async def chain_stack(svc: Services, people: People, **kw: object) -> stacks.Stack:
    await three_tasks(svc, people.alice)
    steps = kw.pop(
        "steps",
        [
            {"task": "build"},
            {"task": "test", "arguments": {"version": "${previous.stdout}"}},
            {
                "task": "ship",
                "arguments": ["${previous.output.version}", "v-${previous.output.tag}"],
            },
        ],
    )
    return await stacks.create_stack(
        svc,
        people.alice,
        "release",
        NODE,
        env={"STAGE": "prod"},
        steps=steps,
        **kw,  # type: ignore[arg-type]
    )


async def test_three_steps_run_in_order_reading_the_previous_output(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(any_svc, people)
    assert [s.task_id for s in stack.steps] and stack.chained
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    assert first.job.command == "./build.sh" and first.job.env["STAGE"] == "prod"
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    waiting = [StepState.RUNNING, StepState.PENDING, StepState.PENDING]
    assert [s.state for s in view.steps] == waiting

    await finish_with(any_svc, first.job.id, "1.2.3\n")
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    second = view.steps[1].job
    assert second is not None and second.command == "./test.sh 1.2.3"
    await finish_with(any_svc, second.id, 'testing\n{"version": "1.2.3", "tag": "rc1"}\n')
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    third = view.steps[2].job
    assert third is not None and third.command == "./ship.sh 1.2.3 v-rc1"
    assert view.run.status is StackRunStatus.RUNNING
    await finish(any_svc, third.id)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.SUCCEEDED and view.run.finished_at is not None
    assert [s.state for s in view.steps] == [StepState.SUCCEEDED] * 3
    history = await chains.stack_run_history(any_svc, people.alice, run_id)
    assert [e.type for e in history] == [
        "stack_run.created",
        *["stack_run.step_started"] * 3,
        "stack_run.status",
    ]
    assert history[-1].to_status == "succeeded"
    # Another organization sees no such run.
    with pytest.raises(NotFound):
        await chains.get_stack_run(any_svc, people.viewer, run_id + 1000)


async def test_a_failing_step_stops_the_chain_and_runs_on_failure(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(any_svc, people, on_failure={"task": "build"})
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    await finish_with(any_svc, first.job.id, "oops\n", NodeRunStatus.FAILED)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.RUNNING
    assert [s.state for s in view.steps] == [
        StepState.FAILED,
        StepState.PENDING,
        StepState.PENDING,
        StepState.RUNNING,
    ]
    failure = view.steps[3]
    assert failure.on_failure_step and failure.job is not None
    await finish(any_svc, failure.job.id)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.FAILED
    assert "step 1 failed" in (view.run.reason or "")
    assert [s.state for s in view.steps][1:3] == [StepState.SKIPPED, StepState.SKIPPED]
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 2


async def test_without_on_failure_the_run_fails_at_once_and_continue_goes_on(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(
        any_svc,
        people,
        steps=[{"task": "build", "on_failure": "continue"}, {"task": "build"}, {"task": "build"}],
    )
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    await finish(any_svc, first.job.id, NodeRunStatus.FAILED)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.steps[1].state is StepState.RUNNING
    assert view.steps[1].job is not None
    await finish(any_svc, view.steps[1].job.id, NodeRunStatus.FAILED)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.FAILED
    assert view.steps[2].state is StepState.SKIPPED


async def test_stop_aborts_the_running_step_and_skips_the_rest(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(any_svc, people)
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    with pytest.raises(NotFound):
        await chains.stop_stack_run(any_svc, people.bob, run_id + 999)
    view = await chains.stop_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.STOPPED
    assert (await job(any_svc, first.job.id)).status is JobStatus.ABORTED
    assert [s.state for s in view.steps] == [StepState.FAILED, StepState.SKIPPED, StepState.SKIPPED]
    with pytest.raises(Conflict, match="ended already"):
        await chains.stop_stack_run(any_svc, people.alice, run_id)
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 1


async def test_a_step_starts_once_however_many_writers_try(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(any_svc, people)
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    await finish_with(any_svc, first.job.id, "9\n")
    # The observer advanced the chain; advancing again (the sweep, another replica) is a no-op.
    async with any_svc.db.begin() as tx:
        row = await tx.stack_runs.step_of_job(first.job.id)
        done = await tx.jobs.get_any(first.job.id)
        assert row is not None and done is not None
        await chains.advance(any_svc, tx, row, done)
        await chains.advance(any_svc, tx, row, done)
    assert await chains.sweep(any_svc) == 0
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 2


async def test_the_sweep_advances_a_chain_the_observer_missed(
    any_svc: Services, people: People
) -> None:
    stack = await chain_stack(any_svc, people)
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    composed = any_svc.observers
    any_svc.observers = tuple(o for o in composed if o.one is not chains.on_step_finished)
    try:
        await finish_with(any_svc, first.job.id, "7\n")
    finally:
        any_svc.observers = composed
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 1
    assert await chains.sweep(any_svc) == 1
    made = await jobs_of(any_svc, people.alice.org_id)
    assert [j.command for j in made] == ["./build.sh", "./test.sh 7"]
    assert await chains.sweep(any_svc) == 0


async def test_a_schedule_runs_a_chain(any_svc: Services, people: People, clock: FakeClock) -> None:
    stack = await chain_stack(any_svc, people)
    every = await schedules.create_schedule(
        any_svc, people.alice, Schedule(ScheduleKind.CRON, cron="* * * * *")
    )
    with pytest.raises(Invalid, match="is a chain"):
        await triggers.create_trigger(
            any_svc, people.alice, schedule_id=every.id, stack_id=stack.id, arguments={"a": 1}
        )
    await triggers.create_trigger(any_svc, people.alice, schedule_id=every.id, stack_id=stack.id)
    clock.advance(60)
    report = await Scheduler(any_svc).tick()
    assert len(report.fired) == 1
    made = await jobs_of(any_svc, people.alice.org_id)
    assert [j.command for j in made] == ["./build.sh"] and "stack_run" in made[0].meta
    runs = await chains.list_stack_runs(any_svc, people.alice, 0, 10, stack.id)
    assert runs.total == 1 and runs.items[0].trigger_id is not None


async def test_bad_chains_are_refused_and_change_nothing(any_svc: Services, people: People) -> None:
    await three_tasks(any_svc, people.alice)
    bad: list[tuple[object, object, str]] = [
        ([], None, "at least one step"),
        ("x", None, "list of at least one"),
        ([{"task": "nope"}], None, "no task 'nope'"),
        ([{"task": 999999}], None, "no task 999999"),
        ([{"task": "build", "colour": 1}], None, "unknown key 'colour'"),
        ([{"task": "build", "on_failure": "maybe"}], None, "stop or continue"),
        ([{"task": "test", "arguments": {"version": "${previous.stdout}"}}], None, "no previous"),
        ([{"task": "test", "arguments": {"nope": 1}}], None, "unknown argument"),
        ([{"task": "build", "target": {"planet": "x"}}], None, "unknown key 'planet'"),
        ([{"task": True}], None, "names a task"),
        (None, {"task": "build"}, "on_failure needs steps"),
        ([{"task": "build"}], {"task": "build", "on_failure": "continue"}, "unknown key"),
    ]
    for steps, failure, message in bad:
        with pytest.raises((Invalid, NotFound), match=message):
            await stacks.create_stack(
                any_svc, people.alice, "bad", NODE, steps=steps, on_failure=failure
            )
    with pytest.raises(Invalid, match="not both"):
        await stacks.create_stack(
            any_svc, people.alice, "bad", NODE, steps=[{"task": "build"}], command="true"
        )
    assert (await stacks.list_stacks(any_svc, people.alice)).total == 0
    stack = await stacks.create_stack(any_svc, people.alice, "ok", NODE, steps=[{"task": "build"}])
    with pytest.raises(Conflict, match="used by stack 'ok'"):
        await tasks.delete_task(any_svc, people.alice, stack.steps[0].task_id)
    changed = await stacks.update_stack(
        any_svc, people.alice, stack.id, {"steps": [{"task": "build"}, {"task": "build"}]}
    )
    assert len(changed.steps) == 2
    with pytest.raises(NotFound):
        await stacks.update_stack(any_svc, people.alice, stack.id, {"steps": [{"task": "zzz"}]})
    assert len((await stacks.get_stack(any_svc, people.alice, stack.id)).steps) == 2


async def test_watchers_are_told_when_a_stack_run_ends(any_svc: Services, people: People) -> None:
    from jobyard.service import notifications, outbox, watchers

    stack = await chain_stack(any_svc, people, steps=[{"task": "build"}])
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    # The creator watches; bob asks to; the viewer of another run gets a 404.
    listed = await watchers.list_watchers(any_svc, people.bob, "stack_run", run_id)
    assert [w.user_id for w in listed] == [people.alice.user_id]
    await watchers.watch(any_svc, people.bob, "stack_run", run_id)
    with pytest.raises(NotFound):
        await watchers.watch(any_svc, people.bob, "stack_run", run_id + 100)
    await finish(any_svc, first.job.id)
    await outbox.deliver_in_app(any_svc)
    for who in (people.alice, people.bob):
        inbox = await notifications.list_notifications(any_svc, who)
        found = [n for n in inbox.items if n.kind == "stack_run.ended"]
        assert len(found) == 1, inbox.items
        assert found[0].title == f"Stack run 'release' (#{run_id}) succeeded"
        assert found[0].url is not None and found[0].url.endswith(f"/stack-runs/{run_id}")
    viewer_inbox = await notifications.list_notifications(any_svc, people.viewer)
    assert not [n for n in viewer_inbox.items if n.kind == "stack_run.ended"]


async def test_a_step_whose_task_retries_waits_for_the_retry(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    from jobyard.domain.policies import RetryPolicy
    from jobyard.service import holds

    flaky = TaskSpec(name="flaky", command="./flaky.sh", retry=RetryPolicy(attempts=2, backoff=5))
    await tasks.create_task(any_svc, people.alice, flaky)
    stack = await chain_stack(any_svc, people, steps=[{"task": "flaky"}, {"task": "build"}])
    first = await stacks.run_stack(any_svc, people.alice, stack.id)
    run_id = first.job.meta["stack_run"]
    await finish_with(any_svc, first.job.id, "x\n", NodeRunStatus.FAILED)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.run.status is StackRunStatus.RUNNING
    retry = view.steps[0].job
    assert retry is not None and retry.id != first.job.id and retry.status is JobStatus.ONHOLD
    assert view.steps[1].state is StepState.PENDING
    assert await holds.release_due(any_svc, clock.advance(5)) == 1
    await finish(any_svc, retry.id)
    view = await chains.get_stack_run(any_svc, people.alice, run_id)
    assert view.steps[0].state is StepState.SUCCEEDED
    assert view.steps[1].state is StepState.RUNNING
    history = [e.type for e in await chains.stack_run_history(any_svc, people.alice, run_id)]
    assert "stack_run.step_retried" in history
