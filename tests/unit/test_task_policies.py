"""Pure policies: retry backoff, concurrency admission, catch-up and overlap planning,
failure budgets, and task argument checking."""

from __future__ import annotations

import datetime as dt

import pytest

from jobyard.domain.errors import Invalid
from jobyard.domain.policies import (
    Admission,
    CatchUp,
    Concurrency,
    ConcurrencyPolicy,
    FailureBudget,
    RetryPolicy,
    plan_slots,
)
from jobyard.domain.targets import Target
from jobyard.domain.tasks import ArgType, Argument, TaskSpec, TaskType, bind_arguments, job_spec

T0 = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)


def secs(n: float) -> dt.timedelta:
    return dt.timedelta(seconds=n)


def test_retry_backoff_grows_and_caps() -> None:
    policy = RetryPolicy(attempts=5, backoff=10, factor=3, max_backoff=60)
    assert [policy.delay_after(n) for n in range(1, 6)] == [10, 30, 60, 60, None]
    assert RetryPolicy().delay_after(1) is None  # one attempt: no retry


def test_retry_policy_from_json_checks_values() -> None:
    assert RetryPolicy.from_json({"attempts": 3}).attempts == 3
    with pytest.raises(Invalid, match=r"retry\.attempts"):
        RetryPolicy.from_json({"attempts": 0})
    with pytest.raises(Invalid, match="unknown key"):
        RetryPolicy.from_json({"tries": 3})


@pytest.mark.parametrize(
    ("mode", "running", "waiting", "expected"),
    [
        (Concurrency.ALLOW, 5, 0, Admission.START),
        (Concurrency.FORBID, 0, 0, Admission.START),
        (Concurrency.FORBID, 1, 0, Admission.REFUSE),
        (Concurrency.REPLACE, 1, 0, Admission.REPLACE),
        (Concurrency.QUEUE, 0, 0, Admission.START),
        (Concurrency.QUEUE, 1, 0, Admission.QUEUE),
        (Concurrency.QUEUE, 0, 1, Admission.QUEUE),  # first come, first served
        (Concurrency.QUEUE, 1, 2, Admission.REFUSE),  # queue of 2 is full
    ],
)
def test_admission(mode: Concurrency, running: int, waiting: int, expected: Admission) -> None:
    policy = ConcurrencyPolicy(mode=mode, limit=1, queue=2)
    assert policy.admit(running, waiting) is expected


def test_concurrency_from_json() -> None:
    assert ConcurrencyPolicy.from_json("forbid").mode is Concurrency.FORBID
    with pytest.raises(Invalid, match="unknown"):
        ConcurrencyPolicy.from_json({"mode": "sometimes"})


def test_on_time_and_late_slots_fire() -> None:
    due = [T0 - secs(2), T0 - secs(1), T0]
    plan = plan_slots(due, T0, grace=10, catch_up=CatchUp.SKIP, window=3600)
    assert plan.fire == due and plan.missed == []


def test_catch_up_skip_records_missed() -> None:
    due = [T0 - secs(600), T0 - secs(300), T0]
    plan = plan_slots(due, T0, grace=10, catch_up=CatchUp.SKIP, window=3600)
    assert plan.fire == [T0] and plan.missed == due[:2]


def test_catch_up_once_runs_the_latest_missed_when_nothing_is_on_time() -> None:
    due = [T0 - secs(600), T0 - secs(300)]
    plan = plan_slots(due, T0, grace=10, catch_up=CatchUp.ONCE, window=3600)
    assert plan.fire == [T0 - secs(300)] and plan.missed == [T0 - secs(600)]
    with_current = plan_slots([*due, T0], T0, grace=10, catch_up=CatchUp.ONCE, window=3600)
    assert with_current.fire == [T0] and len(with_current.missed) == 2


def test_catch_up_all_within_window() -> None:
    due = [T0 - secs(7200), T0 - secs(1800), T0 - secs(600), T0]
    plan = plan_slots(due, T0, grace=10, catch_up=CatchUp.ALL, window=3600)
    assert plan.fire == [T0 - secs(1800), T0 - secs(600), T0]
    assert plan.missed == [T0 - secs(7200)]


def test_failure_budget() -> None:
    budget = FailureBudget(limit=3, window=60)
    for t in (0.0, 1.0, 2.0):
        assert budget.retry_after("ip", t) is None
        budget.fail("ip", t)
    wait = budget.retry_after("ip", 3.0)
    assert wait == pytest.approx(57.0)
    assert budget.retry_after("other", 3.0) is None
    assert budget.retry_after("ip", 61.0) is None  # the first failure left the window


SCHEMA = (
    Argument("env", ArgType.SELECT, options=("staging", "prod")),
    Argument("count", ArgType.NUMBER, required=False, default=1),
    Argument("when", ArgType.DATE, required=False),
    Argument("note", ArgType.TEXT, required=False),
)


def test_bind_by_name_and_by_position() -> None:
    assert bind_arguments(SCHEMA, {"env": "prod", "count": "3"}) == {
        "env": "prod",
        "count": 3,
        "when": None,
        "note": None,
    }
    assert bind_arguments(SCHEMA, ["staging", 2.5, "2026-02-01"])["when"] == "2026-02-01"


@pytest.mark.parametrize(
    ("given", "message", "field"),
    [
        ({}, "argument 'env' is required", "arguments.env"),
        ({"env": "dev"}, "must be one of 'staging', 'prod'", "arguments.env"),
        ({"env": "prod", "count": "many"}, "argument 'count' must be a number", "arguments.count"),
        ({"env": "prod", "when": "tomorrow"}, "argument 'when' must be a date", "arguments.when"),
        ({"env": "prod", "color": "red"}, "unknown argument 'color'", "arguments.color"),
        (["prod", 1, None, "x", "extra"], "5 arguments given; this task declares 4", "arguments"),
    ],
)
def test_bind_says_which_argument_is_wrong(given: object, message: str, field: str) -> None:
    with pytest.raises(Invalid, match=message) as err:
        bind_arguments(SCHEMA, given)
    assert err.value.field == field


def test_arguments_reach_the_command_and_env() -> None:
    task = TaskSpec(name="deploy", command="./deploy.sh", arguments=SCHEMA, target=Target(("a",)))
    spec = job_spec(task, bind_arguments(SCHEMA, {"env": "prod", "note": "it's fine"}))
    assert spec.command == "./deploy.sh prod 1 '' 'it'\"'\"'s fine'"
    assert spec.env["JOBYARD_ARG_ENV"] == "prod"
    argv_task = TaskSpec(name="d", argv=("deploy",), arguments=SCHEMA[:1], target=Target(("a",)))
    assert job_spec(argv_task, {"env": "prod"}).argv == ("deploy", "prod")


def test_task_spec_rules() -> None:
    with pytest.raises(Invalid, match="needs a command"):
        TaskSpec(name="x")
    with pytest.raises(Invalid, match="at least one approver"):
        TaskSpec(name="x", type=TaskType.APPROVAL)
    with pytest.raises(Invalid, match="runs no command"):
        TaskSpec(name="x", type=TaskType.APPROVAL, approvers=(1,), command="ls")
    with pytest.raises(Invalid, match="not an environment variable name"):
        TaskSpec(name="x", command="ls", env={"1BAD": "v"})
    with pytest.raises(Invalid, match="declared twice"):
        TaskSpec(name="x", command="ls", arguments=(Argument("a"), Argument("a")))
    with pytest.raises(Invalid, match="has no target"):
        job_spec(TaskSpec(name="x", command="ls"), {})
