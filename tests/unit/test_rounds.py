"""A job's round (domain/rounds.py) against Chef Push Jobs' rules (NOTES.md), and the
cluster lifecycle (domain/clusters.py). Pure: no database, no clock but a fixed time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jobyard.domain.clusters import (
    CLUSTER_TRANSITIONS,
    MAX_NODES,
    ClusterStatus,
    check_cluster_transition,
    check_desired,
    next_cluster_status,
)
from jobyard.domain.errors import Invalid, InvalidTransition
from jobyard.domain.jobs import (
    JOB_TRANSITIONS,
    RUN_TRANSITIONS,
    JobStatus,
    NodeRunStatus,
)
from jobyard.domain.quorum import Quorum
from jobyard.domain.rounds import JobRound, RunCopy

J = JobStatus
R = NodeRunStatus
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
ATTEMPT = 0


def make_round(
    nodes: int | list[str],
    *,
    status: JobStatus = J.VOTING,
    required: int | None = None,
    runs: dict[str, NodeRunStatus] | None = None,
) -> JobRound:
    names = [f"n{i}" for i in range(1, nodes + 1)] if isinstance(nodes, int) else nodes
    given_runs = runs or {}
    return JobRound(
        job_id=7,
        status=status,
        attempt=ATTEMPT,
        quorum_required=len(names) if required is None else required,
        runs={n: RunCopy(i, n, given_runs.get(n, R.NEW), ATTEMPT) for i, n in enumerate(names, 1)},
        now=NOW,
    )


def statuses(rnd: JobRound) -> dict[str, NodeRunStatus]:
    return {n: r.status for n, r in rnd.runs.items()}


def commands(rnd: JobRound, kind: str) -> list[str]:
    return sorted(node for node, k in rnd.commands if k == kind)


def vote_all(rnd: JobRound, acks: dict[str, bool]) -> None:
    for node, ack in acks.items():
        rnd.vote(node, ATTEMPT, ack, None if ack else "busy")
        rnd.settle()


# -- voting and quorum


def test_every_node_acks_and_the_job_runs_on_all() -> None:
    rnd = make_round(3)
    vote_all(rnd, {"n1": True, "n2": True, "n3": True})
    assert rnd.status is J.RUNNING
    assert statuses(rnd) == dict.fromkeys(["n1", "n2", "n3"], R.READY)
    assert commands(rnd, "run") == ["n1", "n2", "n3"]
    assert [(c.from_status, c.to_status, c.reason) for c in rnd.job_changes] == [
        (J.VOTING, J.RUNNING, "quorum met")
    ]


def test_voting_waits_for_the_last_vote_even_with_quorum_met() -> None:
    rnd = make_round(3, required=1)
    vote_all(rnd, {"n1": True, "n2": True})
    assert rnd.status is J.VOTING and rnd.commands == []
    vote_all(rnd, {"n3": False})
    assert rnd.status is J.RUNNING
    assert commands(rnd, "run") == ["n1", "n2"]  # never to the node that nacked
    assert statuses(rnd)["n3"] is R.NACKED


def test_a_nack_records_its_reason() -> None:
    rnd = make_round(2, required=1)
    rnd.vote("n1", ATTEMPT, False, "command not on this node's allowlist")
    rnd.vote("n2", ATTEMPT, False)
    assert [c.reason for c in rnd.run_changes] == [
        "command not on this node's allowlist",
        "nacked",
    ]


@pytest.mark.parametrize(
    ("quorum", "acks", "expected"),
    [
        (2, 2, J.RUNNING),  # a count: two of three
        (2, 1, J.QUORUM_FAILED),
        ("50%", 2, J.RUNNING),  # ceil(3 * 50%) = 2
        ("50%", 1, J.QUORUM_FAILED),
        ("34%", 2, J.RUNNING),  # ceil(1.02) = 2
        ("34%", 1, J.QUORUM_FAILED),
        ("33%", 1, J.RUNNING),  # ceil(0.99) = 1
        (None, 3, J.RUNNING),  # default 100%
        (None, 2, J.QUORUM_FAILED),
        (0, 0, J.RUNNING),  # nobody needed: runs, and completes at once
    ],
)
def test_quorum_as_a_count_or_a_percentage(
    quorum: int | str | None, acks: int, expected: JobStatus
) -> None:
    rnd = make_round(3, required=Quorum.parse(quorum).required(3))
    vote_all(rnd, {f"n{i}": i <= acks for i in range(1, 4)})
    final = J.COMPLETE if acks == 0 and expected is J.RUNNING else expected
    assert rnd.status is final


def test_voting_waits_for_every_vote_even_when_the_quorum_is_already_out_of_reach() -> None:
    # pushy_job_state: voting ends when no node is new; it never fails early, so no node's
    # run is cut short (aborted) in a job that nobody stopped.
    rnd = make_round(4, required=3)
    vote_all(rnd, {"n1": True, "n2": False, "n3": False})
    assert rnd.status is J.VOTING  # 1 ready + 1 undecided cannot make 3, but n4 may vote
    assert statuses(rnd)["n4"] is R.NEW
    vote_all(rnd, {"n4": True})
    assert rnd.status is J.QUORUM_FAILED
    assert statuses(rnd) == {"n1": R.WAS_READY, "n2": R.NACKED, "n3": R.NACKED, "n4": R.WAS_READY}
    assert commands(rnd, "abort") == ["n1", "n4"]
    assert commands(rnd, "run") == []
    assert R.ABORTED not in {c.to_status for c in rnd.run_changes}


def test_quorum_failure_turns_ready_into_was_ready_and_aborts_them() -> None:
    rnd = make_round(3)
    vote_all(rnd, {"n1": True, "n2": True, "n3": False})
    assert rnd.status is J.QUORUM_FAILED
    assert statuses(rnd) == {"n1": R.WAS_READY, "n2": R.WAS_READY, "n3": R.NACKED}
    assert commands(rnd, "abort") == ["n1", "n2"]
    assert rnd.job_changes[-1].reason == "2 of 3 required nodes ready"


def test_a_late_ack_after_the_job_ended_is_answered_with_abort() -> None:
    rnd = make_round(2)
    vote_all(rnd, {"n1": False})
    assert rnd.status is J.VOTING
    rnd.voting_timeout()
    rnd.settle()
    assert rnd.status is J.QUORUM_FAILED and statuses(rnd)["n2"] is R.UNAVAILABLE
    rnd.commands.clear()
    rnd.vote("n2", ATTEMPT, True)  # the agent reserved a slot: release it
    assert rnd.commands == [("n2", "abort")]
    assert statuses(rnd)["n2"] is R.UNAVAILABLE
    rnd.commands.clear()
    rnd.vote("n2", ATTEMPT, False)  # a late nack needs nothing
    assert rnd.commands == []


def test_a_repeated_ack_while_running_changes_nothing() -> None:
    rnd = make_round(1)
    vote_all(rnd, {"n1": True})
    rnd.commands.clear()
    changes = len(rnd.run_changes)
    rnd.vote("n1", ATTEMPT, True)
    rnd.settle()
    assert rnd.commands == [] and len(rnd.run_changes) == changes


# -- voting timeout


def test_voting_timeout_makes_silent_nodes_unavailable_then_quorum_decides() -> None:
    rnd = make_round(3, required=2)
    vote_all(rnd, {"n1": True})
    rnd.voting_timeout()
    rnd.settle()
    assert statuses(rnd) == {"n1": R.WAS_READY, "n2": R.UNAVAILABLE, "n3": R.UNAVAILABLE}
    assert rnd.status is J.QUORUM_FAILED
    assert {c.reason for c in rnd.run_changes if c.to_status is R.UNAVAILABLE} == {
        "no vote before the voting timeout"
    }
    assert commands(rnd, "abort") == ["n1"]


def test_voting_timeout_with_quorum_met_runs_the_ready_nodes() -> None:
    rnd = make_round(3, required=1)
    vote_all(rnd, {"n1": True})
    rnd.voting_timeout()
    rnd.settle()
    assert rnd.status is J.RUNNING
    assert commands(rnd, "run") == ["n1"]


@pytest.mark.parametrize("status", [J.RUNNING, J.COMPLETE, J.ABORTED])
def test_voting_timeout_outside_voting_does_nothing(status: JobStatus) -> None:
    rnd = make_round(2, status=status, runs={"n1": R.RUNNING, "n2": R.NEW})
    rnd.voting_timeout()
    assert rnd.run_changes == [] and rnd.job_changes == []


# -- running, results and run_timeout


def running_round(*, runs: dict[str, NodeRunStatus] | None = None, nodes: int = 3) -> JobRound:
    names = [f"n{i}" for i in range(1, nodes + 1)]
    return make_round(names, status=J.RUNNING, runs=runs or dict.fromkeys(names, R.READY))


def test_results_complete_the_job() -> None:
    rnd = running_round()
    rnd.run_started("n1", ATTEMPT)
    rnd.run_started("n2", ATTEMPT)
    rnd.finished("n1", ATTEMPT, "succeeded", 0)
    rnd.finished("n2", ATTEMPT, "failed", 3)
    rnd.settle()
    assert rnd.status is J.RUNNING  # n3 is still ready
    rnd.finished("n3", ATTEMPT, "succeeded", 0)  # a fast command: result before ack_run
    rnd.settle()
    assert rnd.status is J.COMPLETE
    assert statuses(rnd) == {"n1": R.SUCCEEDED, "n2": R.FAILED, "n3": R.SUCCEEDED}
    failed = next(c for c in rnd.run_changes if c.to_status is R.FAILED)
    assert failed.exit_code == 3 and failed.reason == "exit code 3"
    assert rnd.runs["n2"].exit_code == 3


def test_an_aborted_result_aborts_the_run_and_unknown_results_are_ignored() -> None:
    rnd = running_round(nodes=2)
    rnd.run_started("n1", ATTEMPT)
    rnd.finished("n1", ATTEMPT, "aborted", None)
    rnd.finished("n2", ATTEMPT, "exploded", 1)
    assert statuses(rnd) == {"n1": R.ABORTED, "n2": R.READY}
    assert rnd.run_changes[-1].reason == "aborted on the node"


def test_run_timeout_times_out_what_still_runs_and_aborts_it() -> None:
    rnd = running_round(runs={"n1": R.RUNNING, "n2": R.READY, "n3": R.SUCCEEDED})
    rnd.run_timeout()
    rnd.settle()
    assert rnd.status is J.TIMED_OUT
    assert statuses(rnd) == {"n1": R.TIMED_OUT, "n2": R.TIMED_OUT, "n3": R.SUCCEEDED}
    assert commands(rnd, "abort") == ["n1", "n2"]
    assert rnd.job_changes[-1].reason == "run_timeout reached"
    # The agent's "aborted" confirmation arrives afterwards: timed_out stays.
    rnd.finished("n1", ATTEMPT, "aborted", None)
    assert statuses(rnd)["n1"] is R.TIMED_OUT


@pytest.mark.parametrize("status", [J.VOTING, J.COMPLETE, J.ABORTED])
def test_run_timeout_outside_running_does_nothing(status: JobStatus) -> None:
    rnd = make_round(1, status=status, runs={"n1": R.READY})
    rnd.run_timeout()
    assert rnd.run_changes == [] and rnd.job_changes == [] and rnd.commands == []


# -- nodes lost


@pytest.mark.parametrize("run_status", [R.NEW, R.READY])
def test_a_node_lost_while_voting_is_unavailable(run_status: NodeRunStatus) -> None:
    rnd = make_round(2, required=1, runs={"n1": run_status})
    rnd.node_lost("n1", "no heartbeat within TTL + grace")
    assert statuses(rnd)["n1"] is R.UNAVAILABLE
    assert rnd.run_changes[-1].reason == "no heartbeat within TTL + grace"


@pytest.mark.parametrize("run_status", [R.READY, R.RUNNING])
def test_a_node_lost_while_running_crashed(run_status: NodeRunStatus) -> None:
    rnd = running_round(runs={"n1": run_status, "n2": R.RUNNING}, nodes=2)
    rnd.node_lost("n1", "the agent restarted")
    rnd.settle()
    assert statuses(rnd)["n1"] is R.CRASHED
    assert rnd.status is J.RUNNING
    rnd.node_lost("n2", "no heartbeat within TTL + grace")
    rnd.settle()
    assert rnd.status is J.COMPLETE  # crashed runs are finished runs
    assert rnd.commands == []


def test_losing_a_node_with_a_finished_run_or_no_run_changes_nothing() -> None:
    rnd = running_round(runs={"n1": R.SUCCEEDED, "n2": R.RUNNING}, nodes=2)
    rnd.node_lost("n1", "gone")
    rnd.node_lost("elsewhere", "gone")
    assert rnd.run_changes == []


def test_losing_enough_nodes_while_voting_fails_the_quorum_once_all_have_voted() -> None:
    rnd = make_round(3)
    vote_all(rnd, {"n1": True})
    rnd.node_lost("n2", "node is offline")
    rnd.settle()
    assert rnd.status is J.VOTING  # n3 has not voted yet
    vote_all(rnd, {"n3": True})
    assert rnd.status is J.QUORUM_FAILED
    assert statuses(rnd) == {"n1": R.WAS_READY, "n2": R.UNAVAILABLE, "n3": R.WAS_READY}


# -- stop


@pytest.mark.parametrize("status", [J.NEW, J.VOTING, J.RUNNING])
def test_stop_aborts_every_unfinished_run_and_tells_the_busy_nodes(status: JobStatus) -> None:
    runs = {"n1": R.NEW, "n2": R.READY, "n3": R.RUNNING, "n4": R.SUCCEEDED}
    if status is not J.RUNNING:
        runs["n3"] = R.READY
    rnd = make_round(list(runs), status=status, runs=runs)
    rnd.abort("stopped by someone")
    rnd.settle()
    assert rnd.status is J.ABORTED
    assert statuses(rnd) == {"n1": R.ABORTED, "n2": R.ABORTED, "n3": R.ABORTED, "n4": R.SUCCEEDED}
    # A node that only got the commit is not told: if it acks late, it gets abort then.
    assert commands(rnd, "abort") == ["n2", "n3"]
    assert rnd.job_changes == [type(rnd.job_changes[0])(status, J.ABORTED, "stopped by someone")]


def test_stopping_a_finished_job_changes_nothing() -> None:
    rnd = make_round(1, status=J.COMPLETE, runs={"n1": R.SUCCEEDED})
    rnd.abort("too late")
    assert rnd.job_changes == [] and rnd.run_changes == [] and rnd.commands == []


# -- fencing


def test_reports_for_another_attempt_or_node_are_refused() -> None:
    rnd = make_round(2)
    rnd.vote("n1", ATTEMPT + 1, True)
    rnd.vote("ghost", ATTEMPT, True)
    rnd.run_started("n1", ATTEMPT - 1)
    rnd.finished("n2", ATTEMPT + 5, "succeeded", 0)
    assert rnd.stale == 4
    assert rnd.run_changes == [] and rnd.commands == []
    assert statuses(rnd) == {"n1": R.NEW, "n2": R.NEW}


def test_a_stale_result_cannot_finish_a_running_run() -> None:
    rnd = running_round(runs={"n1": R.RUNNING}, nodes=1)
    rnd.runs["n1"].attempt = 2
    rnd.finished("n1", 1, "succeeded", 0)
    rnd.settle()
    assert statuses(rnd)["n1"] is R.RUNNING and rnd.status is J.RUNNING and rnd.stale == 1
    rnd.finished("n1", 2, "succeeded", 0)
    rnd.settle()
    assert rnd.status is J.COMPLETE


def test_start_voting_only_from_new() -> None:
    rnd = make_round(1, status=J.NEW)
    rnd.start_voting()
    rnd.start_voting()
    assert rnd.status is J.VOTING and len(rnd.job_changes) == 1
    running = running_round(nodes=1)
    running.start_voting()
    assert running.status is J.RUNNING and running.job_changes == []


# -- properties: any sequence of reports


NODES = ["n1", "n2", "n3", "n4"]
node_names = st.sampled_from([*NODES, "ghost"])
attempts = st.sampled_from([ATTEMPT, ATTEMPT, ATTEMPT, ATTEMPT + 1])

Op = Callable[[JobRound], None]


def _vote(node: str, attempt: int, ack: bool) -> Op:
    return lambda r: r.vote(node, attempt, ack, None if ack else "busy")


def _started(node: str, attempt: int) -> Op:
    return lambda r: r.run_started(node, attempt)


def _finished(node: str, attempt: int, status: str, code: int | None) -> Op:
    return lambda r: r.finished(node, attempt, status, code)


def _lost(node: str) -> Op:
    return lambda r: r.node_lost(node, "lost")


ops = st.one_of(
    st.builds(_vote, node_names, attempts, st.booleans()),
    st.builds(_started, node_names, attempts),
    st.builds(
        _finished,
        node_names,
        attempts,
        st.sampled_from(["succeeded", "failed", "aborted", "bogus"]),
        st.one_of(st.none(), st.integers(-9, 255)),
    ),
    st.builds(_lost, node_names),
    st.just(lambda r: r.voting_timeout()),
    st.just(lambda r: r.run_timeout()),
    st.just(lambda r: r.abort("stopped")),
)


@settings(max_examples=400)
@given(st.integers(1, 4), st.integers(0, 4), st.lists(ops, max_size=25))
def test_any_report_sequence_respects_the_state_machines(
    n: int, required: int, sequence: list[Op]
) -> None:
    required = min(required, n)
    rnd = make_round(NODES[:n], required=required)
    for op in sequence:
        before_job = rnd.status
        before_runs = statuses(rnd)
        seen_run_changes = len(rnd.run_changes)
        seen_commands = len(rnd.commands)
        op(rnd)
        rnd.settle()
        new_changes = rnd.run_changes[seen_run_changes:]
        new_commands = rnd.commands[seen_commands:]
        # Every move is an edge of the tables, from the state the run really was in.
        for c in new_changes:
            assert c.to_status in RUN_TRANSITIONS[c.from_status]
        for c in rnd.job_changes:
            assert c.to_status in JOB_TRANSITIONS[c.from_status]
        # Terminal states are absorbing: a finished job and finished runs never move.
        if before_job.terminal:
            assert rnd.status is before_job
            assert new_changes == []
            assert all(k == "abort" for _, k in new_commands)
        for node, status in before_runs.items():
            if status.terminal:
                assert rnd.runs[node].status is status
        # A finished job leaves no run unfinished.
        if rnd.status.terminal:
            assert all(r.status.terminal for r in rnd.runs.values()), statuses(rnd)
        # "run" goes only to ready nodes, and only as the job starts running.
        for node, kind in new_commands:
            if kind == "run":
                assert before_job is J.VOTING and rnd.runs[node].status is R.READY
        # Quorum: the job runs only with enough nodes ready.
        if before_job is J.VOTING and rnd.status in (J.RUNNING, J.COMPLETE):
            committed = sum(
                1
                for r in rnd.runs.values()
                if r.status not in (R.NACKED, R.UNAVAILABLE, R.ABORTED, R.NEW)
            )
            assert committed >= required
    # Counted once per report: ghosts and wrong attempts are stale, never applied.
    assert rnd.stale >= 0


@given(st.integers(1, 20), st.data())
def test_quorum_failure_never_runs_anything(n: int, data: st.DataObject) -> None:
    names = [f"n{i}" for i in range(n)]
    required = data.draw(st.integers(1, n))
    acks = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    rnd = make_round(names, required=required)
    vote_all(rnd, dict(zip(names, acks, strict=True)))
    if sum(acks) >= required:
        assert rnd.status is J.RUNNING
        assert commands(rnd, "run") == sorted(n for n, a in zip(names, acks, strict=True) if a)
    else:
        assert rnd.status is J.QUORUM_FAILED
        assert commands(rnd, "run") == []
        # Every node that said ready is was_ready and told to abort; the others nacked.
        acked = sorted(n for n, a in zip(names, acks, strict=True) if a)
        assert commands(rnd, "abort") == acked
        assert all(rnd.runs[n].status is R.WAS_READY for n in acked)
        assert all(r.status in (R.WAS_READY, R.NACKED) for r in rnd.runs.values())
        assert all(r.status.terminal for r in rnd.runs.values())


# -- the cluster lifecycle

C = ClusterStatus


def test_every_cluster_status_has_a_row_and_terminated_is_absorbing() -> None:
    assert set(CLUSTER_TRANSITIONS) == set(ClusterStatus)
    assert CLUSTER_TRANSITIONS[C.TERMINATED] == frozenset()
    for target in ClusterStatus:
        with pytest.raises(InvalidTransition):
            check_cluster_transition(C.TERMINATED, target)


@pytest.mark.parametrize(
    ("status", "online", "desired", "age", "expected"),
    [
        (C.PENDING, 0, 2, 0, C.CREATING),
        (C.CREATING, 1, 2, 5, None),  # waiting for members
        (C.CREATING, 2, 2, 5, C.AVAILABLE),
        (C.CREATING, 3, 2, 5, C.AVAILABLE),
        (C.CREATING, 1, 2, 601, C.ERROR),  # never got its nodes
        (C.AVAILABLE, 2, 2, 0, None),
        (C.AVAILABLE, 1, 2, 0, C.ERROR),  # a member went offline
        (C.ERROR, 1, 2, 0, None),
        (C.ERROR, 2, 2, 0, C.AVAILABLE),  # and came back
        (C.SCALING, 2, 3, 0, None),
        (C.SCALING, 3, 3, 0, C.AVAILABLE),
        (C.PENDING_TERMINATE, 3, 3, 0, C.TERMINATING),
        (C.TERMINATING, 3, 3, 0, C.TERMINATED),
        (C.TERMINATED, 3, 3, 0, None),
    ],
)
def test_next_cluster_status(
    status: ClusterStatus, online: int, desired: int, age: float, expected: ClusterStatus | None
) -> None:
    assert next_cluster_status(status, online, desired, age, 600) is expected


@given(
    st.sampled_from(list(ClusterStatus)),
    st.integers(0, 20),
    st.integers(1, 20),
    st.floats(0, 2000),
)
def test_the_implied_cluster_move_is_always_an_edge(
    status: ClusterStatus, online: int, desired: int, age: float
) -> None:
    nxt = next_cluster_status(status, online, desired, age, 600)
    if nxt is not None:
        check_cluster_transition(status, nxt)


@given(st.integers(0, 20), st.integers(1, 20), st.lists(st.integers(0, 20), max_size=10))
def test_a_cluster_settles_and_ends_terminated(online: int, desired: int, later: list[int]) -> None:
    """Follow the lifecycle as the dispatch loop does: it never loops forever."""
    status = C.PENDING
    for members in [online, *later]:
        for _ in range(4):
            nxt = next_cluster_status(status, members, desired, 0, 600)
            if nxt is None:
                break
            status = nxt
        assert next_cluster_status(status, members, desired, 0, 600) is None
        assert (status is C.AVAILABLE) == (members >= desired) or status is C.CREATING
    check_cluster_transition(status, C.PENDING_TERMINATE)
    status = C.PENDING_TERMINATE
    while (nxt := next_cluster_status(status, online, desired, 0, 600)) is not None:
        status = nxt
    assert status is C.TERMINATED


@pytest.mark.parametrize("value", [True, 0, -1, MAX_NODES + 1, "2", 1.5, None])
def test_a_cluster_size_is_a_whole_number_in_range(value: object) -> None:
    with pytest.raises(Invalid):
        check_desired(value)


@pytest.mark.parametrize("value", [1, 2, MAX_NODES])
def test_valid_cluster_sizes(value: int) -> None:
    assert check_desired(value) == value
