"""Applying what agents report to one job, in memory: Chef Push Jobs' rules as code.

A ``JobRound`` holds a working copy of a job's status and its node runs. Each report
(a vote, a run acknowledgement, a result, a lost node, a timeout, a stop) moves runs
through the transition table; ``settle()`` then moves the job as far as the runs
imply and queues the commands agents must receive (``run``, ``abort``). The service
layer loads a round, applies reports, and persists the recorded changes with their
events in one transaction. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from jobyard.domain.jobs import (
    JobStatus,
    NodeRunStatus,
    can_run_transition,
    implied_job_status,
)
from jobyard.domain.nodes import OFFLINE_REASON, UNKNOWN_REASON, Availability

R = NodeRunStatus
# The reason a node run that never voted gets when the voting timeout passes.
VOTING_TIMEOUT = "no vote before the voting timeout"


@dataclass(slots=True)
class RunCopy:
    id: int
    node: str
    status: NodeRunStatus
    attempt: int
    exit_code: int | None = None


class RunChange(NamedTuple):
    run_id: int
    node: str
    from_status: NodeRunStatus
    to_status: NodeRunStatus
    reason: str | None
    exit_code: int | None


@dataclass(frozen=True)
class JobChange:
    from_status: JobStatus
    to_status: JobStatus
    reason: str | None


@dataclass
class JobRound:
    job_id: int
    status: JobStatus
    attempt: int
    quorum_required: int
    runs: dict[str, RunCopy]
    now: dt.datetime
    run_changes: list[RunChange] = field(default_factory=list)
    job_changes: list[JobChange] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)  # (node, "run" | "abort")
    stale: int = 0
    # How many runs are in each status, kept up to date by each move: ``settle`` reads it
    # instead of walking every run. A round kept between batches passes its own along.
    counts: Counter[NodeRunStatus] | None = None

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = Counter(r.status for r in self.runs.values())

    # -- node-run moves
    def _move(
        self, node: str, target: NodeRunStatus, reason: str | None, exit_code: int | None = None
    ) -> bool:
        run = self.runs.get(node)
        if run is None or not can_run_transition(run.status, target):
            return False
        self.run_changes.append(RunChange(run.id, node, run.status, target, reason, exit_code))
        counts = self.counts
        assert counts is not None
        counts[run.status] -= 1
        counts[target] += 1
        run.status = target
        if exit_code is not None:
            run.exit_code = exit_code
        return True

    def _fresh(self, node: str, attempt: int) -> bool:
        run = self.runs.get(node)
        if run is None or run.attempt != attempt:
            self.stale += 1
            return False
        return True

    def vote(self, node: str, attempt: int, ack: bool, reason: str | None = None) -> None:
        if not self._fresh(node, attempt):
            return
        if self.status is not JobStatus.VOTING:
            # A late vote: the job moved on. A late ack must release the node.
            if ack and self.runs[node].status is not R.READY:
                self.commands.append((node, "abort"))
            return
        if ack:
            self._move(node, R.READY, None)
        else:
            self._move(node, R.NACKED, reason or "nacked")

    def run_started(self, node: str, attempt: int) -> None:
        if self._fresh(node, attempt) and self.status is JobStatus.RUNNING:
            self._move(node, R.RUNNING, None)

    def finished(
        self, node: str, attempt: int, status: str, exit_code: int | None, reason: str | None = None
    ) -> None:
        if not self._fresh(node, attempt):
            return
        target = {"succeeded": R.SUCCEEDED, "failed": R.FAILED, "aborted": R.ABORTED}.get(status)
        if target is None:
            return
        if target is R.ABORTED and self.runs[node].status in (R.READY, R.RUNNING):
            self._move(node, R.ABORTED, "aborted on the node", exit_code)
            return
        if target is R.FAILED:
            self._move(node, target, reason or f"exit code {exit_code}", exit_code)
        else:
            self._move(node, target, None, exit_code)

    def node_lost(self, node: str, reason: str) -> None:
        """The node went away: before running it is unavailable, while running it crashed."""
        run = self.runs.get(node)
        if run is None:
            return
        if run.status is R.NEW or (run.status is R.READY and self.status is JobStatus.VOTING):
            self._move(node, R.UNAVAILABLE, reason)
        elif run.status in (R.READY, R.RUNNING):
            self._move(node, R.CRASHED, reason)

    def voting_timeout(self) -> None:
        if self.status is not JobStatus.VOTING:
            return
        for node, run in self.runs.items():
            if run.status is R.NEW:
                self._move(node, R.UNAVAILABLE, VOTING_TIMEOUT)

    def run_timeout(self) -> None:
        if self.status is not JobStatus.RUNNING:
            return
        for node, run in self.runs.items():
            if run.status in (R.READY, R.RUNNING):
                self._move(node, R.TIMED_OUT, "run_timeout reached")
                self.commands.append((node, "abort"))
        self._job(JobStatus.TIMED_OUT, "run_timeout reached")

    def abort(self, reason: str) -> None:
        for node, run in self.runs.items():
            if run.status in (R.READY, R.RUNNING):
                self.commands.append((node, "abort"))
            if not run.status.terminal:
                self._move(node, R.ABORTED, reason)
        self._job(JobStatus.ABORTED, reason)

    # -- job moves
    def _job(self, target: JobStatus, reason: str | None) -> None:
        if self.status.terminal or self.status is target:
            return
        self.job_changes.append(JobChange(self.status, target, reason))
        self.status = target

    def start_voting(self) -> None:
        if self.status is JobStatus.NEW:
            self._job(JobStatus.VOTING, "asking the nodes")

    def settle(self) -> None:
        """Move the job as far as its runs imply, queueing the agents' commands."""
        while True:
            assert self.counts is not None
            nxt = implied_job_status(self.status, self.counts, self.quorum_required)
            if nxt is None:
                return
            if nxt is JobStatus.RUNNING:
                self._job(nxt, "quorum met")
                for node, run in self.runs.items():
                    if run.status is R.READY:
                        self.commands.append((node, "run"))
            elif nxt is JobStatus.QUORUM_FAILED:
                # Every node has voted (or is unavailable): the ready ones were_ready, the
                # others keep the word their vote gave them (nacked, unavailable).
                for node, run in self.runs.items():
                    if run.status is R.READY:
                        self._move(node, R.WAS_READY, "quorum failed")
                        self.commands.append((node, "abort"))
                ready = sum(1 for r in self.runs.values() if r.status is R.WAS_READY)
                self._job(nxt, f"{ready} of {self.quorum_required} required nodes ready")
            else:
                self._job(nxt, None)


def open_voting(rnd: JobRound, seen: Mapping[str, Availability]) -> list[str]:
    """Open voting on a ``new`` job's round and settle it. ``seen``: the availability of
    each of its nodes that an agent ever registered; a node missing there was pre-declared
    and never came (unavailable: unknown), an offline one is unavailable at once. Returns
    the nodes to ask for their vote now; a reconnecting node is asked after its hello."""
    rnd.start_voting()
    ask: list[str] = []
    for node, run in rnd.runs.items():
        if run.status is not R.NEW:
            continue
        state = seen.get(node)
        if state is None:
            rnd.node_lost(node, UNKNOWN_REASON)
        elif state is Availability.OFFLINE:
            rnd.node_lost(node, OFFLINE_REASON)
        elif state is not Availability.RECONNECTING:
            ask.append(node)
    rnd.settle()
    return ask


def first_round(
    nodes: Sequence[str], quorum_required: int, now: dt.datetime, seen: Mapping[str, Availability]
) -> tuple[JobRound, list[str]]:
    """The round of a job submitted with voting opened at once (its runs not written yet:
    their ids are 0), and the nodes to ask. The caller writes it as the job's first state
    when it stays ``voting``; else it takes the long way (``new``, then the starter)."""
    rnd = JobRound(
        job_id=0,
        status=JobStatus.NEW,
        attempt=0,
        quorum_required=quorum_required,
        runs={n: RunCopy(0, n, R.NEW, 0) for n in nodes},
        now=now,
    )
    return rnd, open_voting(rnd, seen)
