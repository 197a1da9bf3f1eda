"""What a job came to: one rule, from which every surface takes its words and colours.

A job's *status* says where it is in its life (Chef's words: ``complete`` means "it
ended"); its *outcome* says how it went. The CLI's colours, the dashboard's badges,
the notification titles, the retry policy and each dialect's failure word all read
the outcome from here, so "a failed run" is defined once.

Per node-run status (``RUN_OUTCOME``)::

    new, ready, running                  → pending
    succeeded                            → succeeded
    failed, crashed, timed_out, aborted  → failed
    nacked, unavailable, was_ready       → skipped   (the node never ran the command)

Per job status (``JOB_OUTCOME``); ``complete`` is decided by its runs::

    draft → draft; onhold → waiting; new, voting, running → running
    complete → succeeded | partially_failed (some failed, some succeeded) | failed
    quorum_failed → quorum_failed; timed_out → timed_out; aborted → stopped
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job, NodeRun


class Tone(StrEnum):
    """How a word looks: ok (green), bad (red), warn (amber), live (blue), idle (grey)."""

    OK = "ok"
    BAD = "bad"
    WARN = "warn"
    LIVE = "live"
    IDLE = "idle"


class RunOutcome(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    DRAFT = "draft"
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIALLY_FAILED = "partially_failed"
    FAILED = "failed"
    QUORUM_FAILED = "quorum_failed"
    TIMED_OUT = "timed_out"
    STOPPED = "stopped"


R = NodeRunStatus
RUN_OUTCOME: Mapping[NodeRunStatus, RunOutcome] = {
    R.NEW: RunOutcome.PENDING,
    R.READY: RunOutcome.PENDING,
    R.RUNNING: RunOutcome.PENDING,
    R.SUCCEEDED: RunOutcome.SUCCEEDED,
    R.FAILED: RunOutcome.FAILED,
    R.CRASHED: RunOutcome.FAILED,
    R.TIMED_OUT: RunOutcome.FAILED,
    R.ABORTED: RunOutcome.FAILED,
    R.NACKED: RunOutcome.SKIPPED,
    R.UNAVAILABLE: RunOutcome.SKIPPED,
    R.WAS_READY: RunOutcome.SKIPPED,
}
# A node run that makes a finished job failed, for watchers, retries and dialects.
RUN_FAILED = frozenset(s for s, o in RUN_OUTCOME.items() if o is RunOutcome.FAILED)

J = JobStatus
# None: decided by the job's node runs.
JOB_OUTCOME: Mapping[JobStatus, Outcome | None] = {
    J.DRAFT: Outcome.DRAFT,
    J.ONHOLD: Outcome.WAITING,
    J.NEW: Outcome.RUNNING,
    J.VOTING: Outcome.RUNNING,
    J.RUNNING: Outcome.RUNNING,
    J.COMPLETE: None,
    J.QUORUM_FAILED: Outcome.QUORUM_FAILED,
    J.TIMED_OUT: Outcome.TIMED_OUT,
    J.ABORTED: Outcome.STOPPED,
}

OUTCOME_TONE: Mapping[Outcome, Tone] = {
    Outcome.DRAFT: Tone.IDLE,
    Outcome.WAITING: Tone.WARN,
    Outcome.RUNNING: Tone.LIVE,
    Outcome.SUCCEEDED: Tone.OK,
    Outcome.PARTIALLY_FAILED: Tone.BAD,
    Outcome.FAILED: Tone.BAD,
    Outcome.QUORUM_FAILED: Tone.BAD,
    Outcome.TIMED_OUT: Tone.BAD,
    Outcome.STOPPED: Tone.WARN,
}
RUN_TONE: Mapping[RunOutcome, Tone] = {
    RunOutcome.PENDING: Tone.LIVE,
    RunOutcome.SUCCEEDED: Tone.OK,
    RunOutcome.FAILED: Tone.BAD,
    RunOutcome.SKIPPED: Tone.WARN,
}
# Outcomes that count as a failure: a retry is due, watchers hear "failed", dialects say so.
FAILURES = frozenset(
    {Outcome.PARTIALLY_FAILED, Outcome.FAILED, Outcome.QUORUM_FAILED, Outcome.TIMED_OUT}
)

# Each word a surface may colour, by its tone: job statuses by their outcome without runs
# (``complete`` alone reads ok), node-run statuses, outcomes themselves.
STATUS_TONE: Mapping[str, Tone] = {
    **{s.value: OUTCOME_TONE[o] for s, o in JOB_OUTCOME.items() if o is not None},
    J.COMPLETE.value: Tone.OK,
    **{s.value: RUN_TONE[o] for s, o in RUN_OUTCOME.items()},
    **{o.value: t for o, t in OUTCOME_TONE.items()},
}


@dataclass(frozen=True)
class JobOutcome:
    """A job's outcome with the counts that explain it."""

    status: JobStatus
    outcome: Outcome
    total: int
    succeeded: int
    failed: int
    skipped: int

    @property
    def is_failure(self) -> bool:
        return self.outcome in FAILURES

    @property
    def tone(self) -> Tone:
        return OUTCOME_TONE[self.outcome]

    @property
    def detail(self) -> str:
        """What happened to the nodes, when the status word alone does not say it."""
        if self.status is not J.COMPLETE or not self.total:
            return ""
        if self.failed:
            return f"{self.failed} of {self.total} failed"
        if self.skipped:
            return f"{self.succeeded} of {self.total} succeeded"
        return f"{self.total} of {self.total} succeeded"

    @property
    def label(self) -> str:
        """The status word with its outcome, e.g. ``complete · 3 of 3 failed``."""
        word = self.status.value.replace("_", " ")
        return f"{word} · {self.detail}" if self.detail else word

    @property
    def title(self) -> str:
        """The outcome in words, for a notification's title: ``partially failed``."""
        return self.outcome.value.replace("_", " ")


RunsLike = Iterable[NodeRun | NodeRunStatus | str] | Mapping[str, int]


def _statuses(runs: RunsLike) -> list[NodeRunStatus]:
    if isinstance(runs, Mapping):
        return [NodeRunStatus(s) for s, n in runs.items() for _ in range(int(n))]
    return [NodeRunStatus(r.status if isinstance(r, NodeRun) else r) for r in runs]


def run_outcome(status: NodeRunStatus | str) -> RunOutcome:
    return RUN_OUTCOME[NodeRunStatus(status)]


def run_failed(runs: RunsLike) -> bool:
    """Whether any of these node runs failed."""
    return any(s in RUN_FAILED for s in _statuses(runs))


def job_outcome(job: Job | JobStatus | str, runs: RunsLike = ()) -> JobOutcome:
    """The outcome of a job in its status, given its node runs (records, statuses, or a
    mapping of status to count)."""
    status = job.status if isinstance(job, Job) else JobStatus(job)
    counts = {o: 0 for o in RunOutcome}
    statuses = _statuses(runs)
    for s in statuses:
        counts[RUN_OUTCOME[s]] += 1
    failed, succeeded = counts[RunOutcome.FAILED], counts[RunOutcome.SUCCEEDED]
    outcome = JOB_OUTCOME[status]
    if outcome is None:
        if not failed:
            outcome = Outcome.SUCCEEDED
        elif succeeded:
            outcome = Outcome.PARTIALLY_FAILED
        else:
            outcome = Outcome.FAILED
    return JobOutcome(
        status=status,
        outcome=outcome,
        total=len(statuses),
        succeeded=succeeded,
        failed=failed,
        skipped=counts[RunOutcome.SKIPPED],
    )


def tone_of(word: object) -> Tone:
    """The tone of a status or outcome word (idle for a word not in the tables)."""
    return STATUS_TONE.get(str(word), Tone.IDLE)
