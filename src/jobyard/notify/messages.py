"""The words of a notification: a title, a message and a link, for each kind."""

from __future__ import annotations

from dataclasses import dataclass

from jobyard.domain.notifications import Kind
from jobyard.domain.outcomes import JobOutcome, job_outcome


@dataclass(frozen=True)
class About:
    """What a notification is about, gathered by the service from the event and its subject."""

    subject_kind: str  # job | cluster
    subject_id: int
    name: str | None = None
    status: str | None = None
    reason: str | None = None
    actor: str | None = None
    note: str | None = None  # a share's message, an approval's question
    runs: dict[str, int] | None = None  # node-run states and how many of each
    job_id: int | None = None  # for cluster.job_started: the job that started
    task: str | None = None  # the task a job was made from


@dataclass(frozen=True)
class Message:
    title: str
    text: str
    url: str

    def __post_init__(self) -> None:
        # An inbox title holds 300 characters; an email subject should not be longer.
        if len(self.title) > 300:
            object.__setattr__(self, "title", self.title[:299] + "…")


def page_url(base_url: str, subject_kind: str, subject_id: int) -> str:
    """The dashboard page of a job or cluster: what a person clicks in an email."""
    return f"{base_url.rstrip('/')}/{subject_kind.replace('_', '-')}s/{subject_id}"


def _label(about: About) -> str:
    noun = {"job": "Job", "stack_run": "Stack run"}.get(about.subject_kind, "Cluster")
    if about.name:
        return f"{noun} {about.name!r} (#{about.subject_id})"
    return f"{noun} #{about.subject_id}"


def _runs(about: About) -> str:
    if not about.runs:
        return ""
    parts = ", ".join(f"{n} {state}" for state, n in sorted(about.runs.items()))
    return f" Nodes: {parts}."


def _why(about: About) -> str:
    return f" Reason: {about.reason}." if about.reason else ""


def _outcome(about: About) -> JobOutcome | None:
    try:
        return job_outcome(about.status or "", about.runs or {})
    except ValueError:  # not a job status word
        return None


def compose(kind: str, about: About, base_url: str) -> Message:
    label = _label(about)
    url = page_url(base_url, about.subject_kind, about.subject_id)
    if kind == Kind.JOB_COMPLETED:
        return Message(f"{label} completed", f"{label} completed.{_runs(about)}", url)
    if kind == Kind.JOB_FAILED:
        outcome = _outcome(about)
        if outcome is None:
            text = f"{label} failed.{_why(about)}{_runs(about)}"
            return Message(f"{label} failed", text, url)
        said = outcome.title
        if outcome.failed:
            said += f": {outcome.failed} of {outcome.total} nodes failed"
        text = f"{label} {outcome.title} ({outcome.label}).{_why(about)}{_runs(about)}"
        return Message(f"{label} {said}", text, url)
    if kind == Kind.JOB_STOPPED:
        by = f" by {about.actor}" if about.actor else ""
        return Message(f"{label} stopped", f"{label} was stopped{by}.{_why(about)}", url)
    if kind == Kind.JOB_SHARED:
        who = about.actor or "someone"
        note = f"\n\n{about.note}" if about.note else ""
        return Message(
            f"{who} shared {label} with you", f"{who} shared {label} with you.{note}", url
        )
    if kind == Kind.CLUSTER_JOB_STARTED:
        job = f"Job #{about.job_id}" if about.job_id else "A job"
        return Message(f"{job} started on {label}", f"{job} started on {label}.", url)
    if kind == Kind.APPROVAL_REQUESTED:
        note = f"\n\n{about.note}" if about.note else ""
        return Message(
            f"{label} waits for your approval", f"{label} waits for your decision.{note}", url
        )
    if kind == Kind.INPUT_REQUESTED:
        note = f"\n\n{about.note}" if about.note else ""
        return Message(f"{label} waits for your input", f"{label} waits for your input.{note}", url)
    if kind == Kind.TASK_MESSAGE:
        text = about.note or f"{label} ran."
        first = text.strip().splitlines()[0] if text.strip() else label
        source = f"task {about.task!r}" if about.task else label
        return Message(first[:200], f"{text}\n\n(sent by {source}, job #{about.subject_id})", url)
    if kind == Kind.STACK_RUN_ENDED:
        status = about.status or "ended"
        return Message(f"{label} {status}", f"{label} {status}.{_why(about)}", url)
    if kind.startswith("cluster."):
        word = kind.split(".", 1)[1]
        return Message(f"{label} is {word}", f"{label} is {word}.{_why(about)}", url)
    word = kind.split(".", 1)[1] if "." in kind else kind
    return Message(f"{label} {word}", f"{label} {word}.{_why(about)}", url)
