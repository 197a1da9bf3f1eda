"""The job and node-run state machines (domain/jobs.py), checked as data and by property."""

from __future__ import annotations

from collections import Counter, deque

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobyard.domain.errors import InvalidTransition
from jobyard.domain.jobs import (
    JOB_TERMINAL,
    JOB_TRANSITIONS,
    RUN_TERMINAL,
    RUN_TRANSITIONS,
    JobStatus,
    NodeRunStatus,
    can_run_transition,
    check_job_transition,
    check_run_transition,
    job_succeeded,
    next_job_status,
)

job_statuses = st.sampled_from(list(JobStatus))
run_statuses = st.sampled_from(list(NodeRunStatus))


def reachable(start: object, table: dict[object, frozenset[object]]) -> set[object]:
    seen = {start}
    queue = deque([start])
    while queue:
        for nxt in table[queue.popleft()]:
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return seen


# -- the tables themselves


def test_every_status_has_a_row() -> None:
    assert set(JOB_TRANSITIONS) == set(JobStatus)
    assert set(RUN_TRANSITIONS) == set(NodeRunStatus)


def test_terminal_sets_are_exactly_the_rows_without_edges() -> None:
    assert {s for s, to in JOB_TRANSITIONS.items() if not to} == JOB_TERMINAL
    assert {s for s, to in RUN_TRANSITIONS.items() if not to} == RUN_TERMINAL
    assert {
        JobStatus.COMPLETE,
        JobStatus.QUORUM_FAILED,
        JobStatus.TIMED_OUT,
        JobStatus.ABORTED,
    } == JOB_TERMINAL
    # Chef's terminal node states.
    assert {s.value for s in RUN_TERMINAL} == {
        "succeeded",
        "failed",
        "aborted",
        "unavailable",
        "nacked",
        "crashed",
        "was_ready",
        "timed_out",
    }


def test_no_self_loops_and_nothing_goes_back_to_draft_or_new_run() -> None:
    for status, targets in JOB_TRANSITIONS.items():
        assert status not in targets
        assert JobStatus.DRAFT not in targets
    for run_status, run_targets in RUN_TRANSITIONS.items():
        assert run_status not in run_targets
        assert NodeRunStatus.NEW not in run_targets


def test_every_status_is_reachable_and_every_path_can_end() -> None:
    table = dict(JOB_TRANSITIONS)
    assert reachable(JobStatus.DRAFT, table) == set(JobStatus)  # type: ignore[arg-type]
    for status in JobStatus:
        assert reachable(status, table) & JOB_TERMINAL, status  # type: ignore[arg-type]
    run_table = dict(RUN_TRANSITIONS)
    assert reachable(NodeRunStatus.NEW, run_table) == set(NodeRunStatus)  # type: ignore[arg-type]
    for run_status in NodeRunStatus:
        assert reachable(run_status, run_table) & RUN_TERMINAL, run_status  # type: ignore[arg-type]


def test_any_non_terminal_job_can_be_aborted() -> None:
    for status in JobStatus:
        if not status.terminal:
            check_job_transition(status, JobStatus.ABORTED)


def test_chef_edges_are_present() -> None:
    for a, b in [
        (JobStatus.DRAFT, JobStatus.NEW),
        (JobStatus.NEW, JobStatus.VOTING),
        (JobStatus.VOTING, JobStatus.RUNNING),
        (JobStatus.VOTING, JobStatus.QUORUM_FAILED),
        (JobStatus.RUNNING, JobStatus.COMPLETE),
        (JobStatus.RUNNING, JobStatus.TIMED_OUT),
    ]:
        check_job_transition(a, b)
    for ra, rb in [
        (NodeRunStatus.NEW, NodeRunStatus.READY),
        (NodeRunStatus.NEW, NodeRunStatus.NACKED),
        (NodeRunStatus.NEW, NodeRunStatus.UNAVAILABLE),
        (NodeRunStatus.READY, NodeRunStatus.RUNNING),
        (NodeRunStatus.READY, NodeRunStatus.WAS_READY),
        (NodeRunStatus.RUNNING, NodeRunStatus.SUCCEEDED),
        (NodeRunStatus.RUNNING, NodeRunStatus.FAILED),
        (NodeRunStatus.RUNNING, NodeRunStatus.CRASHED),
        (NodeRunStatus.RUNNING, NodeRunStatus.TIMED_OUT),
    ]:
        check_run_transition(ra, rb)


def test_status_words_are_chefs() -> None:
    assert {s.value for s in JobStatus} == {
        "draft",
        "onhold",
        "new",
        "voting",
        "running",
        "complete",
        "quorum_failed",
        "timed_out",
        "aborted",
    }


# -- the check functions agree with the tables, and terminal states absorb


@given(job_statuses, job_statuses)
def test_check_job_transition_is_the_table(a: JobStatus, b: JobStatus) -> None:
    if b in JOB_TRANSITIONS[a]:
        check_job_transition(a, b)
    else:
        with pytest.raises(InvalidTransition) as info:
            check_job_transition(a, b)
        assert str(a) in info.value.detail and str(b) in info.value.detail


@given(run_statuses, run_statuses)
def test_check_run_transition_is_the_table(a: NodeRunStatus, b: NodeRunStatus) -> None:
    allowed = b in RUN_TRANSITIONS[a]
    assert can_run_transition(a, b) is allowed
    if allowed:
        check_run_transition(a, b)
    else:
        with pytest.raises(InvalidTransition):
            check_run_transition(a, b)


@given(st.sampled_from(sorted(JOB_TERMINAL)), job_statuses)
def test_terminal_jobs_absorb(terminal: JobStatus, target: JobStatus) -> None:
    assert terminal.terminal and not terminal.active
    with pytest.raises(InvalidTransition):
        check_job_transition(terminal, target)


@given(st.sampled_from(sorted(RUN_TERMINAL)), run_statuses)
def test_terminal_runs_absorb(terminal: NodeRunStatus, target: NodeRunStatus) -> None:
    assert terminal.terminal
    assert not can_run_transition(terminal, target)


@given(job_statuses, st.lists(job_statuses, max_size=30))
def test_walks_never_leave_a_terminal_state(start: JobStatus, wanted: list[JobStatus]) -> None:
    """Apply arbitrary requests through the check: once terminal, the status never changes."""
    status = start
    for target in wanted:
        before = status
        try:
            check_job_transition(status, target)
            status = target
        except InvalidTransition:
            pass
        if before.terminal:
            assert status is before


def test_active_is_neither_draft_nor_terminal() -> None:
    assert {s for s in JobStatus if s.active} == {
        JobStatus.ONHOLD,
        JobStatus.NEW,
        JobStatus.VOTING,
        JobStatus.RUNNING,
    }


# -- next_job_status against Chef's rules, written independently here

COMMITTED = {
    NodeRunStatus.READY,
    NodeRunStatus.RUNNING,
    NodeRunStatus.SUCCEEDED,
    NodeRunStatus.FAILED,
}


def chef_rule(status: JobStatus, runs: list[NodeRunStatus], required: int) -> JobStatus | None:
    """NOTES.md and pushy_job_state: voting ends when no node is new (never early); quorum
    met (ready >= quorum) → running, else quorum_failed; running with nothing ready or
    running → complete."""
    c = Counter(runs)
    if status is JobStatus.VOTING:
        ready = sum(c[s] for s in COMMITTED)
        undecided = c[NodeRunStatus.NEW]
        if undecided:
            return None
        return JobStatus.RUNNING if ready >= required else JobStatus.QUORUM_FAILED
    if status is JobStatus.RUNNING:
        busy = c[NodeRunStatus.READY] + c[NodeRunStatus.RUNNING]
        return JobStatus.COMPLETE if busy == 0 else None
    return None


@given(job_statuses, st.lists(run_statuses, max_size=40), st.integers(0, 45))
def test_next_job_status_follows_chef(
    status: JobStatus, runs: list[NodeRunStatus], required: int
) -> None:
    got = next_job_status(status, runs, required)
    assert got == chef_rule(status, runs, required)
    if got is not None:
        check_job_transition(status, got)  # the implied move is always an edge


@given(st.integers(1, 30), st.data())
def test_quorum_met_runs_and_not_met_fails(n: int, data: st.DataObject) -> None:
    required = data.draw(st.integers(1, n))
    acks = data.draw(st.integers(0, n))
    runs = [NodeRunStatus.READY] * acks + [NodeRunStatus.NACKED] * (n - acks)
    expected = JobStatus.RUNNING if acks >= required else JobStatus.QUORUM_FAILED
    assert next_job_status(JobStatus.VOTING, runs, required) is expected


@given(st.integers(2, 30), st.data())
def test_quorum_out_of_reach_still_waits_for_every_vote(n: int, data: st.DataObject) -> None:
    required = data.draw(st.integers(2, n))
    # Enough refusals that the rest cannot reach the quorum; the others have not voted:
    # pushy_job_state waits for them (or the voting timeout) all the same.
    refused = n - required + 1
    runs = [NodeRunStatus.UNAVAILABLE] * refused + [NodeRunStatus.NEW] * (n - refused)
    assert next_job_status(JobStatus.VOTING, runs, required) is None
    runs = [NodeRunStatus.UNAVAILABLE] * refused + [NodeRunStatus.READY] * (n - refused)
    assert next_job_status(JobStatus.VOTING, runs, required) is JobStatus.QUORUM_FAILED


def test_voting_waits_for_every_vote_even_with_quorum() -> None:
    runs = [NodeRunStatus.READY, NodeRunStatus.NEW]
    assert next_job_status(JobStatus.VOTING, runs, 1) is None
    assert next_job_status(JobStatus.VOTING, [NodeRunStatus.READY] * 2, 1) is JobStatus.RUNNING


@given(st.lists(st.sampled_from(sorted(RUN_TERMINAL)), max_size=20), st.integers(0, 20))
def test_running_with_only_finished_runs_completes(
    runs: list[NodeRunStatus], required: int
) -> None:
    assert next_job_status(JobStatus.RUNNING, runs, required) is JobStatus.COMPLETE
    busy = [*runs, NodeRunStatus.RUNNING]
    assert next_job_status(JobStatus.RUNNING, busy, required) is None


@given(st.lists(run_statuses, max_size=20))
def test_knife_push_exit_rule(runs: list[NodeRunStatus]) -> None:
    ok = {NodeRunStatus.SUCCEEDED, NodeRunStatus.NACKED, NodeRunStatus.UNAVAILABLE}
    assert job_succeeded(runs) is all(r in ok for r in runs)
