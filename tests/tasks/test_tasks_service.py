"""Task use cases on SQLite and PostgreSQL: runs, approvals, input, secrets, retries,
concurrency, cancel rules and history deletion."""

from __future__ import annotations

import dataclasses

import pytest

from jobyard.domain.clock import FakeClock
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.policies import Concurrency, ConcurrencyPolicy, RetryPolicy
from jobyard.domain.targets import Target
from jobyard.domain.tasks import ArgType, Argument, TaskSpec, TaskType
from jobyard.service import approvals, history, holds, hooks, jobs, tasks
from jobyard.service.context import Services
from tests.tasks.conftest import People, events_of, finish, job, jobs_of

NODES = Target(nodes=("n1", "n2"))
ARGS = (
    Argument("env", ArgType.SELECT, options=("staging", "prod")),
    Argument("count", ArgType.NUMBER, required=False, default=1),
)


def script(name: str = "deploy", **kw: object) -> TaskSpec:
    fields: dict[str, object] = {"command": "./deploy.sh", "target": NODES, "arguments": ARGS}
    fields.update(kw)
    return TaskSpec(name=name, **fields)  # type: ignore[arg-type]


async def test_run_a_script_task(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    view = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    j = view.job
    assert j.status is JobStatus.NEW
    assert (j.kind, j.task_id, j.arguments) == ("script", task.id, {"env": "prod", "count": 1})
    assert j.command == "./deploy.sh prod 1"
    assert j.env["JOBYARD_ARG_ENV"] == "prod"
    assert view.node_names == ["n1", "n2"]
    with pytest.raises(Invalid, match="'env' must be one of") as err:
        await tasks.run_task(any_svc, people.alice, task.id, {"env": "dev"})
    assert err.value.field == "arguments.env"
    with pytest.raises(Conflict, match="exists already"):
        await tasks.create_task(any_svc, people.bob, script())


async def test_task_changes_and_permissions(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    with pytest.raises(Forbidden):
        await tasks.create_task(any_svc, people.viewer, script("other"))
    with pytest.raises(Forbidden):
        await tasks.run_task(any_svc, people.viewer, task.id, {"env": "prod"})
    with pytest.raises(NotFound):
        await tasks.update_task(any_svc, people.bob, task.id, {"description": "x"})
    changed = await tasks.update_task(any_svc, people.admin, task.id, {"description": "nightly"})
    assert changed.spec.description == "nightly"
    assert (await tasks.get_task_by_name(any_svc, people.viewer, "deploy")).id == task.id
    assert (await tasks.list_tasks(any_svc, people.viewer)).total == 1
    await tasks.delete_task(any_svc, people.alice, task.id)
    with pytest.raises(NotFound):
        await tasks.get_task(any_svc, people.alice, task.id)


async def test_approval_flow(any_svc: Services, people: People) -> None:
    spec = TaskSpec(
        name="go-live",
        type=TaskType.APPROVAL,
        approvers=(people.alice.user_id, people.bob.user_id, people.viewer.user_id),
    )
    task = await tasks.create_task(any_svc, people.alice, spec)
    view = await tasks.run_task(any_svc, people.alice, task.id)
    assert (view.job.status, view.job.kind) == (JobStatus.ONHOLD, "approval")
    assert "approval.requested" in await events_of(any_svc, view.job.id)
    async with any_svc.db.read() as tx:
        requested = [
            e for e in await tx.events.of_job(view.job.id) if e.type == "approval.requested"
        ]
    assert requested[0].data is not None
    assert requested[0].data["approvers"] == [
        people.alice.user_id,
        people.bob.user_id,
        people.viewer.user_id,
    ]
    with pytest.raises(Forbidden, match="not an approver"):
        await approvals.decide(any_svc, people.admin, view.job.id, approve=True)
    with pytest.raises(Forbidden, match="you requested"):
        await approvals.decide(any_svc, people.alice, view.job.id, approve=True)
    decided = await approvals.decide(any_svc, people.viewer, view.job.id, approve=True)
    assert (decided.job.status, decided.job.state) == (JobStatus.COMPLETE, "success")
    with pytest.raises(Conflict, match="not onhold"):
        await approvals.decide(any_svc, people.bob, view.job.id, approve=False)

    rejected = await tasks.run_task(any_svc, people.alice, task.id)
    out = await approvals.decide(any_svc, people.bob, rejected.job.id, approve=False, comment="no")
    assert (out.job.state, out.job.result["decision"]) == ("failure", "rejected")

    script_task = await tasks.create_task(any_svc, people.alice, script())
    plain = await tasks.run_task(any_svc, people.alice, script_task.id, {"env": "prod"})
    with pytest.raises(Invalid, match="not an approval"):
        await approvals.decide(any_svc, people.bob, plain.job.id, approve=True)


async def test_self_approval_when_the_task_allows(any_svc: Services, people: People) -> None:
    spec = TaskSpec(
        name="self",
        type=TaskType.APPROVAL,
        approvers=(people.alice.user_id,),
        allow_self_approval=True,
    )
    task = await tasks.create_task(any_svc, people.alice, spec)
    view = await tasks.run_task(any_svc, people.alice, task.id)
    decided = await approvals.decide(any_svc, people.alice, view.job.id, approve=True)
    assert decided.job.state == "success"


async def test_input_task_waits_then_runs(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script("ask", type=TaskType.INPUT))
    view = await tasks.run_task(any_svc, people.alice, task.id)
    assert view.job.status is JobStatus.ONHOLD and view.runs == []
    assert "input.requested" in await events_of(any_svc, view.job.id)
    with pytest.raises(Invalid, match="'env' is required"):
        await approvals.give_input(any_svc, people.bob, view.job.id, {})
    started = await approvals.give_input(any_svc, people.bob, view.job.id, ["staging", 3])
    assert started.job.status is JobStatus.NEW
    assert started.job.command == "./deploy.sh staging 3"
    assert started.node_names == ["n1", "n2"]
    with pytest.raises(Conflict, match="waits for no input"):
        await approvals.give_input(any_svc, people.bob, view.job.id, ["staging"])
    with pytest.raises(Invalid, match="takes its arguments"):
        await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})


async def test_input_requested_by_a_running_command(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    view = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    ask = approvals.InputAsk(
        job_id=view.job.id, node="n1", attempt=0, fields=[{"name": "ok", "type": "text"}]
    )
    with pytest.raises(Conflict, match="not running"):
        await approvals.request_input(any_svc, people.alice.org_id, ask)
    from jobyard.service.transitions import move_job

    async with any_svc.db.begin() as tx:
        current = await tx.jobs.get_any(view.job.id)
        assert current is not None
        current = await move_job(any_svc, tx, current, JobStatus.VOTING, actor=None)
        assert current is not None
        await move_job(any_svc, tx, current, JobStatus.RUNNING, actor=None)
    request = await approvals.request_input(any_svc, people.alice.org_id, ask)
    assert [r.id for r in await approvals.pending_input(any_svc, people.viewer, view.job.id)] == [
        request.id
    ]
    async with any_svc.hub.subscribe(approvals.input_topic(view.job.id)) as inbox:
        await approvals.give_input(any_svc, people.bob, view.job.id, {"ok": "yes"})
        message = inbox.get_nowait()
    assert message["values"] == {"ok": "yes"} and message["status"] == "answered"
    assert await approvals.pending_input(any_svc, people.viewer, view.job.id) == []
    # A second request that nobody answers expires at its deadline.
    await approvals.request_input(any_svc, people.alice.org_id, dataclasses.replace(ask, timeout=5))
    clock = any_svc.clock
    assert isinstance(clock, FakeClock)
    assert await approvals.expire_inputs(any_svc, clock.now()) == 0
    assert await approvals.expire_inputs(any_svc, clock.advance(6)) == 1
    assert "input.expired" in await events_of(any_svc, view.job.id)


async def test_notification_task_completes_at_once(any_svc: Services, people: People) -> None:
    spec = TaskSpec(
        name="tell", type=TaskType.NOTIFICATION, message="hello", recipients=(people.bob.user_id,)
    )
    task = await tasks.create_task(any_svc, people.alice, spec)
    view = await tasks.run_task(any_svc, people.alice, task.id)
    assert (view.job.status, view.job.kind, view.job.state) == (
        JobStatus.COMPLETE,
        "notification",
        "success",
    )
    assert "notification.requested" in await events_of(any_svc, view.job.id)


async def test_not_cancellable_except_by_admins(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script(cancellable=False))
    first = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    with pytest.raises(Forbidden, match="Job is not cancellable"):
        await jobs.stop_job(any_svc, people.alice, first.job.id)
    stopped = await jobs.stop_job(any_svc, people.admin, first.job.id)
    assert stopped.job.status is JobStatus.ABORTED
    approval = await tasks.create_task(
        any_svc,
        people.alice,
        TaskSpec(name="ok?", type=TaskType.APPROVAL, approvers=(people.bob.user_id,)),
    )
    held = await tasks.run_task(any_svc, people.alice, approval.id)
    assert (await jobs.stop_job(any_svc, people.alice, held.job.id)).job.status is JobStatus.ABORTED


async def test_concurrency_forbid(any_svc: Services, people: People) -> None:
    policy = ConcurrencyPolicy(mode=Concurrency.FORBID)
    task = await tasks.create_task(any_svc, people.alice, script(concurrency=policy))
    first = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    with pytest.raises(Conflict, match="allows 1 run"):
        await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await finish(any_svc, first.job.id)
    second = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    assert second.job.status is JobStatus.NEW


async def test_concurrency_queue_waits_then_starts(any_svc: Services, people: People) -> None:
    policy = ConcurrencyPolicy(mode=Concurrency.QUEUE, limit=1, queue=2)
    task = await tasks.create_task(any_svc, people.alice, script(concurrency=policy))
    first = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    second = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    third = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    assert [v.job.status for v in (first, second, third)] == [
        JobStatus.NEW,
        JobStatus.ONHOLD,
        JobStatus.ONHOLD,
    ]
    with pytest.raises(Conflict, match=r"queue .* is full"):
        await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    assert await holds.release_queued(any_svc) == 0  # the first still runs
    await finish(any_svc, first.job.id)
    assert await holds.release_queued(any_svc) == 1
    assert (await job(any_svc, second.job.id)).status is JobStatus.NEW
    assert (await job(any_svc, third.job.id)).status is JobStatus.ONHOLD
    await jobs.stop_job(any_svc, people.alice, second.job.id)
    assert await holds.release_queued(any_svc) == 1
    assert (await job(any_svc, third.job.id)).status is JobStatus.NEW


async def test_concurrency_replace(any_svc: Services, people: People) -> None:
    policy = ConcurrencyPolicy(mode=Concurrency.REPLACE)
    task = await tasks.create_task(any_svc, people.alice, script(concurrency=policy))
    first = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    second = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    old = await job(any_svc, first.job.id)
    assert old.status is JobStatus.ABORTED
    assert second.job.status is JobStatus.NEW


async def test_retries_are_counted_in_rows(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    retry = RetryPolicy(attempts=3, backoff=10, factor=2, max_backoff=15)
    task = await tasks.create_task(any_svc, people.alice, script(retry=retry))
    first = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await finish(any_svc, first.job.id, NodeRunStatus.FAILED)
    all_jobs = await jobs_of(any_svc, people.alice.org_id)
    assert [j.status for j in all_jobs] == [JobStatus.COMPLETE, JobStatus.ONHOLD]
    second = all_jobs[1]
    assert second.meta["try"] == 2 and second.command == first.job.command
    assert "job.retry_scheduled" in await events_of(any_svc, first.job.id)
    assert await holds.release_due(any_svc, clock.advance(9)) == 0
    assert await holds.release_due(any_svc, clock.advance(1)) == 1
    assert (await job(any_svc, second.id)).status is JobStatus.NEW
    await finish(any_svc, second.id, NodeRunStatus.CRASHED)
    third = (await jobs_of(any_svc, people.alice.org_id))[2]
    assert await holds.release_due(any_svc, clock.advance(14)) == 0  # 20 s capped at 15
    assert await holds.release_due(any_svc, clock.advance(1)) == 1
    await finish(any_svc, third.id, NodeRunStatus.FAILED)
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 3  # attempts exhausted


async def test_success_and_stop_are_not_retried(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script(retry=RetryPolicy(attempts=3)))
    ok = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await finish(any_svc, ok.job.id)
    stopped = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await jobs.stop_job(any_svc, people.alice, stopped.job.id)
    assert len(await jobs_of(any_svc, people.alice.org_id)) == 2


async def test_hold_timeout_expires_an_approval(
    any_svc: Services, people: People, clock: FakeClock
) -> None:
    spec = TaskSpec(
        name="quick", type=TaskType.APPROVAL, approvers=(people.bob.user_id,), hold_timeout=60
    )
    task = await tasks.create_task(any_svc, people.alice, spec)
    view = await tasks.run_task(any_svc, people.alice, task.id)
    assert await holds.release_due(any_svc, clock.advance(59)) == 0
    assert await holds.release_due(any_svc, clock.advance(2)) == 1
    assert (await job(any_svc, view.job.id)).status is JobStatus.TIMED_OUT


async def test_secret_runs_anonymously(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    with pytest.raises(NotFound):
        await hooks.rotate_secret(any_svc, people.bob, task.id)
    issued = await hooks.rotate_secret(any_svc, people.alice, task.id)
    assert issued.secret.startswith("jyh_") and issued.task.secret_prefix
    view = await hooks.run_by_secret(any_svc, issued.secret, {"env": "staging"}, client="c1")
    assert view.job.created_by is None and view.job.task_id == task.id
    with pytest.raises(Invalid, match="unknown argument 'evil'"):
        await hooks.run_by_secret(any_svc, issued.secret, {"env": "prod", "evil": 1}, client="c1")
    with pytest.raises(NotFound):
        await hooks.run_by_secret(any_svc, issued.secret, {"env": "prod"}, client="c1", task_id=999)
    rotated = await hooks.rotate_secret(any_svc, people.alice, task.id)
    with pytest.raises(NotFound):
        await hooks.run_by_secret(any_svc, issued.secret, {"env": "prod"}, client="c1")
    await hooks.run_by_secret(
        any_svc, rotated.secret, {"env": "prod"}, client="c1", org_name=people.org
    )
    await hooks.drop_secret(any_svc, people.alice, task.id)
    with pytest.raises(NotFound):
        await hooks.run_by_secret(any_svc, rotated.secret, {"env": "prod"}, client="c1")


async def test_secret_failures_are_rate_limited(any_svc: Services, people: People) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    issued = await hooks.rotate_secret(any_svc, people.alice, task.id)
    for _ in range(10):
        with pytest.raises(NotFound):
            await hooks.run_by_secret(any_svc, "jyh_guess", {"env": "prod"}, client="attacker")
    with pytest.raises(RateLimited) as err:
        await hooks.run_by_secret(any_svc, issued.secret, {"env": "prod"}, client="attacker")
    assert err.value.extra["retry_after"] >= 1
    # Others are not slowed down.
    await hooks.run_by_secret(any_svc, issued.secret, {"env": "prod"}, client="friend")


async def test_delete_finished_history(any_svc: Services, people: People, clock: FakeClock) -> None:
    task = await tasks.create_task(any_svc, people.alice, script())
    old = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await finish(any_svc, old.job.id)
    clock.advance(7200)
    recent = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    await finish(any_svc, recent.job.id, NodeRunStatus.FAILED)
    active = await tasks.run_task(any_svc, people.alice, task.id, {"env": "prod"})
    with pytest.raises(Forbidden):
        await history.delete_finished_jobs(any_svc, people.alice)
    with pytest.raises(Invalid, match="not a finished status"):
        await history.delete_finished_jobs(any_svc, people.admin, statuses=["running"])
    import datetime as dt

    gone = await history.delete_finished_jobs(
        any_svc, people.admin, older_than=dt.timedelta(hours=1)
    )
    assert gone == 1
    assert await history.delete_finished_jobs(any_svc, people.admin, task_id=task.id + 1) == 0
    assert await history.delete_finished_jobs(any_svc, people.admin, task_id=task.id) == 1
    remaining = await jobs_of(any_svc, people.alice.org_id)
    assert [j.id for j in remaining] == [active.job.id]
