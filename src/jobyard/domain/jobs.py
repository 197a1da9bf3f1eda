"""The job and node-run state machines, as data.

Job (Chef Push Jobs' words, plus ``draft`` and ``onhold``)::

    draft ──submit──▶ new ──▶ voting ──quorum met──▶ running ──▶ complete
      │                │  ╲      │                       │  ╲──▶ timed_out
      │              onhold╲     └──▶ quorum_failed       └──▶ aborted
      ▼                     ╲──▶ aborted (from any non-terminal state)
    (deleted)

Node run::

    new ──ack──▶ ready ──run──▶ running ──▶ succeeded | failed
     │            │               ├──▶ crashed | timed_out | aborted
     ├──▶ nacked  ├──▶ was_ready (quorum failed)
     └──▶ unavailable, aborted     └──▶ unavailable, crashed, timed_out, aborted

Terminal states are absorbing: no edge leaves them.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from enum import StrEnum

from jobyard.domain.errors import InvalidTransition


class JobStatus(StrEnum):
    DRAFT = "draft"
    ONHOLD = "onhold"
    NEW = "new"
    VOTING = "voting"
    RUNNING = "running"
    COMPLETE = "complete"
    QUORUM_FAILED = "quorum_failed"
    TIMED_OUT = "timed_out"
    ABORTED = "aborted"

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL

    @property
    def active(self) -> bool:
        return self not in JOB_TERMINAL and self is not JobStatus.DRAFT


JOB_TERMINAL = frozenset(
    {JobStatus.COMPLETE, JobStatus.QUORUM_FAILED, JobStatus.TIMED_OUT, JobStatus.ABORTED}
)

JOB_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    JobStatus.DRAFT: frozenset({JobStatus.NEW, JobStatus.ONHOLD, JobStatus.ABORTED}),
    JobStatus.ONHOLD: frozenset(
        {JobStatus.NEW, JobStatus.COMPLETE, JobStatus.ABORTED, JobStatus.TIMED_OUT}
    ),
    JobStatus.NEW: frozenset(
        {
            JobStatus.VOTING,
            JobStatus.ONHOLD,
            JobStatus.QUORUM_FAILED,
            JobStatus.ABORTED,
            JobStatus.COMPLETE,
        }
    ),
    JobStatus.VOTING: frozenset(
        {JobStatus.RUNNING, JobStatus.QUORUM_FAILED, JobStatus.ABORTED, JobStatus.TIMED_OUT}
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.COMPLETE, JobStatus.TIMED_OUT, JobStatus.ABORTED, JobStatus.ONHOLD}
    ),
    JobStatus.COMPLETE: frozenset(),
    JobStatus.QUORUM_FAILED: frozenset(),
    JobStatus.TIMED_OUT: frozenset(),
    JobStatus.ABORTED: frozenset(),
}


class NodeRunStatus(StrEnum):
    NEW = "new"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"
    UNAVAILABLE = "unavailable"
    NACKED = "nacked"
    CRASHED = "crashed"
    WAS_READY = "was_ready"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in RUN_TERMINAL


RUN_TERMINAL = frozenset(
    {
        NodeRunStatus.SUCCEEDED,
        NodeRunStatus.FAILED,
        NodeRunStatus.ABORTED,
        NodeRunStatus.UNAVAILABLE,
        NodeRunStatus.NACKED,
        NodeRunStatus.CRASHED,
        NodeRunStatus.WAS_READY,
        NodeRunStatus.TIMED_OUT,
    }
)

RUN_TRANSITIONS: Mapping[NodeRunStatus, frozenset[NodeRunStatus]] = {
    NodeRunStatus.NEW: frozenset(
        {
            NodeRunStatus.READY,
            NodeRunStatus.NACKED,
            NodeRunStatus.UNAVAILABLE,
            NodeRunStatus.ABORTED,
        }
    ),
    NodeRunStatus.READY: frozenset(
        {
            NodeRunStatus.RUNNING,
            NodeRunStatus.WAS_READY,
            NodeRunStatus.UNAVAILABLE,
            NodeRunStatus.CRASHED,
            NodeRunStatus.TIMED_OUT,
            NodeRunStatus.ABORTED,
            # A fast command may report its result before its run acknowledgement.
            NodeRunStatus.SUCCEEDED,
            NodeRunStatus.FAILED,
        }
    ),
    NodeRunStatus.RUNNING: frozenset(
        {
            NodeRunStatus.SUCCEEDED,
            NodeRunStatus.FAILED,
            NodeRunStatus.CRASHED,
            NodeRunStatus.TIMED_OUT,
            NodeRunStatus.ABORTED,
        }
    ),
    **{s: frozenset() for s in RUN_TERMINAL},
}

# What entering a status does to the row besides the status (the one table the transition
# writer, service/transitions.apply, reads): time columns stamped with the moment of the
# change, and the job's deadline (see ``job_deadline``).
JOB_STAMPS: Mapping[JobStatus, tuple[str, ...]] = {
    JobStatus.NEW: ("submitted_at",),
    JobStatus.RUNNING: ("started_at",),
    **{s: ("finished_at",) for s in JOB_TERMINAL},
}
RUN_STAMPS: Mapping[NodeRunStatus, tuple[str, ...]] = {
    NodeRunStatus.RUNNING: ("started_at",),
    **{s: ("finished_at",) for s in RUN_TERMINAL},
}
# A job entering voting waits for votes until the voting timeout; entering running, until
# its run_timeout (none without one); a finished job waits for nothing.
KEEP_DEADLINE = object()


def job_deadline(
    target: JobStatus,
    now: dt.datetime,
    *,
    voting_timeout: float,
    run_timeout: int | None,
) -> dt.datetime | object | None:
    """The deadline a job gets on entering ``target``, or KEEP_DEADLINE (unchanged)."""
    if target is JobStatus.VOTING:
        return now + dt.timedelta(seconds=voting_timeout)
    if target is JobStatus.RUNNING:
        return now + dt.timedelta(seconds=run_timeout) if run_timeout else None
    if target.terminal:
        return None
    return KEEP_DEADLINE


# Job moves written before the node-run moves of the same change (the runs' moves are
# caused by them: voting opens, then the votes), the others after (caused by the runs).
JOB_BEFORE_RUNS = frozenset({JobStatus.NEW, JobStatus.VOTING})


# A node run that counts as "fine" for knife-push's exit rule.
RUN_OK_FOR_EXIT = frozenset(
    {NodeRunStatus.SUCCEEDED, NodeRunStatus.NACKED, NodeRunStatus.UNAVAILABLE}
)
# A node run that makes a finished job failed: see domain.outcomes (RUN_FAILED, job_outcome).


def check_job_transition(current: JobStatus, target: JobStatus) -> None:
    """Raise InvalidTransition unless ``current → target`` is an edge."""
    if target not in JOB_TRANSITIONS[current]:
        raise InvalidTransition(f"a job cannot go from {current} to {target}")


def check_run_transition(current: NodeRunStatus, target: NodeRunStatus) -> None:
    if target not in RUN_TRANSITIONS[current]:
        raise InvalidTransition(f"a node run cannot go from {current} to {target}")


def can_run_transition(current: NodeRunStatus, target: NodeRunStatus) -> bool:
    return target in RUN_TRANSITIONS[current]


def next_job_status(
    status: JobStatus, runs: Iterable[NodeRunStatus], quorum_required: int
) -> JobStatus | None:
    """The job status that the node runs imply, or None when nothing changes.

    Voting ends when no node is ``new`` (each voted, was lost, or the voting timeout made
    it unavailable), as Chef Push Jobs' ``pushy_job_state`` decides: quorum met → running,
    else quorum_failed. It never ends early, so no node's run is cut short in a job that
    nobody stopped. A running job with no node ready or running is complete.
    """
    return implied_job_status(status, Counter(runs), quorum_required)


def implied_job_status(
    status: JobStatus, counts: Mapping[NodeRunStatus, int], quorum_required: int
) -> JobStatus | None:
    """``next_job_status`` from how many runs are in each status (a round keeps them)."""
    if status is JobStatus.VOTING:
        n = counts.get
        ready = n(NodeRunStatus.READY, 0) + n(NodeRunStatus.RUNNING, 0)
        ready += n(NodeRunStatus.SUCCEEDED, 0) + n(NodeRunStatus.FAILED, 0)
        if n(NodeRunStatus.NEW, 0) == 0:
            return JobStatus.RUNNING if ready >= quorum_required else JobStatus.QUORUM_FAILED
        return None
    if status is JobStatus.RUNNING:
        if counts.get(NodeRunStatus.READY, 0) + counts.get(NodeRunStatus.RUNNING, 0) == 0:
            return JobStatus.COMPLETE
        return None
    return None


def job_succeeded(runs: Iterable[NodeRunStatus]) -> bool:
    """knife-push's exit rule: every node succeeded, nacked or was unavailable."""
    return all(r in RUN_OK_FOR_EXIT for r in runs)
