"""Who is told what: notification kinds, channels, delivery states and retry policy, as data.

An event (a transition) becomes at most one notification *kind*::

    job.status → new (from draft)         job.submitted       (webhooks only)
    job.status → running                  job.started         (webhooks only)
    job.status → complete, every run ok   job.completed
    job.status → complete, a run failed,  job.failed
                 quorum_failed, timed_out
    job.status → aborted                  job.stopped
    job.shared                            job.shared          (the recipient)
    cluster.created                       cluster.requested   (webhooks only)
    cluster.status → available|terminated|error   cluster.<status>
    cluster.job_started                   cluster.job_started
    approval.requested                    approval.requested  (the approvers)
    input.requested                       input.requested     (who started the job)
    notification.requested                task.message        (a notification task's recipients)
    stack_run.status → succeeded|failed|stopped   stack_run.ended  (the run's watchers)

Each kind is delivered per recipient on the channels the recipient chose (in_app,
email) and, for an organization's webhook subscriptions, as signed JSON. Every
delivery is a row of the outbox::

    pending ──claim──▶ sending ──ok──▶ sent
       ▲                  │
       └──retry (backoff)─┤
                          └──too many attempts / subscription disabled──▶ failed

A ``sending`` row whose lease ran out (the relay crashed mid-send) is due again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus
from jobyard.domain.outcomes import job_outcome
from jobyard.domain.records import Event


class Channel(StrEnum):
    IN_APP = "in_app"
    EMAIL = "email"
    WEBHOOK = "webhook"


# Channels a person chooses between on the settings page.
PERSONAL_CHANNELS = (Channel.IN_APP, Channel.EMAIL)


class Kind(StrEnum):
    JOB_SUBMITTED = "job.submitted"
    JOB_STARTED = "job.started"
    JOB_COMPLETED = "job.completed"
    JOB_FAILED = "job.failed"
    JOB_STOPPED = "job.stopped"
    JOB_SHARED = "job.shared"
    CLUSTER_REQUESTED = "cluster.requested"
    CLUSTER_AVAILABLE = "cluster.available"
    CLUSTER_TERMINATED = "cluster.terminated"
    CLUSTER_ERROR = "cluster.error"
    CLUSTER_JOB_STARTED = "cluster.job_started"
    APPROVAL_REQUESTED = "approval.requested"
    INPUT_REQUESTED = "input.requested"
    TASK_MESSAGE = "task.message"
    STACK_RUN_ENDED = "stack_run.ended"


# Kinds people are told about (the keys of their settings); the rest go to webhooks only.
PERSONAL_KINDS = (
    Kind.JOB_COMPLETED,
    Kind.JOB_FAILED,
    Kind.JOB_STOPPED,
    Kind.JOB_SHARED,
    Kind.CLUSTER_AVAILABLE,
    Kind.CLUSTER_TERMINATED,
    Kind.CLUSTER_ERROR,
    Kind.CLUSTER_JOB_STARTED,
    Kind.APPROVAL_REQUESTED,
    Kind.INPUT_REQUESTED,
    Kind.TASK_MESSAGE,
    Kind.STACK_RUN_ENDED,
)
WEBHOOK_KINDS = tuple(Kind)
# A webhook subscription to every kind.
ALL_KINDS = "*"

_JOB_FAILED_STATUSES = frozenset({"quorum_failed", "timed_out"})
_CLUSTER_STATUSES = {
    "available": Kind.CLUSTER_AVAILABLE,
    "terminated": Kind.CLUSTER_TERMINATED,
    "error": Kind.CLUSTER_ERROR,
}
# Events that ask people for something, whatever their subject.
_REQUESTS = {
    "approval.requested": Kind.APPROVAL_REQUESTED,
    "input.requested": Kind.INPUT_REQUESTED,
    "notification.requested": Kind.TASK_MESSAGE,
}


# Event types nobody is told about and no watcher follows from: a node run's moves (a job's
# outcome is told once the job ends). The outbox's observer is not handed them.
UNTOLD_TYPES = frozenset({"node_run.status"})


def may_notify(event_type: str) -> bool:
    """False for an event type that never notifies anyone (``kind_of`` is None for it)."""
    return event_type not in UNTOLD_TYPES


def needs_runs(event: Event) -> bool:
    """True when the kind depends on the job's node runs (a job that completed)."""
    return event.kind == "job" and event.type == "job.status" and event.to_status == "complete"


def kind_of(event: Event, run_statuses: list[str] | None = None) -> Kind | None:
    """The notification kind of an event, or None when nobody is told about it.

    ``run_statuses`` are the job's node-run states; they matter only when
    ``needs_runs(event)``.
    """
    if event.type in UNTOLD_TYPES:
        return None
    if event.kind == "job" and event.type == "job.status":
        to = event.to_status
        if to == "complete":
            outcome = job_outcome(JobStatus.COMPLETE, run_statuses or ())
            return Kind.JOB_FAILED if outcome.is_failure else Kind.JOB_COMPLETED
        if to in _JOB_FAILED_STATUSES:
            return Kind.JOB_FAILED
        if to == "aborted":
            return Kind.JOB_STOPPED
        if to == "running":
            return Kind.JOB_STARTED
        if to == "new" and event.from_status in (None, "draft"):
            return Kind.JOB_SUBMITTED
        return None
    if event.type == "job.shared":
        return Kind.JOB_SHARED
    if event.kind == "stack_run":
        return Kind.STACK_RUN_ENDED if event.type == "stack_run.status" else None
    if event.kind == "cluster":
        if event.type == "cluster.created":
            return Kind.CLUSTER_REQUESTED
        if event.type == "cluster.status" and event.to_status in _CLUSTER_STATUSES:
            return _CLUSTER_STATUSES[event.to_status]
        if event.type == "cluster.job_started":
            return Kind.CLUSTER_JOB_STARTED
        return None
    return _REQUESTS.get(event.type)


def check_kinds(values: list[str]) -> list[str]:
    """Validate a webhook subscription's event types; returns them de-duplicated, in order."""
    if not values:
        raise Invalid(
            f"event_types needs at least one of {', '.join(WEBHOOK_KINDS)}, or {ALL_KINDS!r}",
            "event_types",
        )
    out: list[str] = []
    for v in values:
        if v != ALL_KINDS and v not in WEBHOOK_KINDS:
            raise Invalid(
                f"unknown event type {v!r}: use {ALL_KINDS!r} or one of {', '.join(WEBHOOK_KINDS)}",
                "event_types",
            )
        if v not in out:
            out.append(v)
    return out


def subscribed(event_types: list[str], kind: str) -> bool:
    return ALL_KINDS in event_types or kind in event_types


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


def check_statuses(values: list[str] | None) -> list[str]:
    """Validate a filter of delivery statuses."""
    known = [s.value for s in DeliveryStatus]
    for v in values or []:
        if v not in known:
            raise Invalid(f"unknown delivery status {v!r}: use {', '.join(known)}", "status")
    return list(values or [])


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``base * 2**(attempt-1)`` seconds, capped; give up after a number."""

    base: float = 2.0
    cap: float = 3600.0
    max_attempts: int = 15
    # Webhook subscriptions are disabled after this many failed attempts in a row.
    disable_after: int = 10
    # How long a claimed row stays ours before another relay may take it over.
    lease: float = 60.0

    def delay(self, attempt: int) -> float:
        return float(min(self.cap, self.base * 2 ** max(0, attempt - 1)))

    def gives_up(self, attempt: int) -> bool:
        return attempt >= self.max_attempts


@dataclass(frozen=True)
class Prefs:
    """One person's channels for one kind."""

    kind: str
    in_app: bool = True
    email: bool = True

    def channels(self) -> list[Channel]:
        return [c for c, on in ((Channel.IN_APP, self.in_app), (Channel.EMAIL, self.email)) if on]


# -- records


@dataclass(frozen=True, slots=True)
class Watcher:
    user_id: int
    email: str
    display_name: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Share:
    job_id: int
    user_id: int
    email: str
    display_name: str
    message: str
    shared_by: int | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    org_id: int
    user_id: int
    key: str
    kind: str
    title: str
    message: str
    url: str | None
    subject_kind: str
    subject_id: int
    job_id: int | None
    event_id: int
    read_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def last_read_at(self) -> dt.datetime | None:
        return self.read_at


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    org_id: int
    event_id: int
    kind: str
    channel: str
    user_id: int | None
    subscription_id: int | None
    key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    org_id: int
    url: str
    secret: str
    event_types: list[str]
    description: str
    enabled: bool
    consecutive_failures: int
    disabled_reason: str | None
    disabled_at: dt.datetime | None
    last_success_at: dt.datetime | None
    last_failure_at: dt.datetime | None
    created_by: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
