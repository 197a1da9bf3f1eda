"""The one place a job or node run changes state: ``apply`` checks every change against the
domain tables (allowed edges, time stamps, deadlines), writes it with compare-and-set,
appends its events in one batch (``record_many``: batch observers, published after commit).
Jobs born submitted (``admit``) are written here too, in their first status."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jobyard.domain.errors import InvalidTransition
from jobyard.domain.jobs import (
    JOB_BEFORE_RUNS,
    JOB_STAMPS,
    KEEP_DEADLINE,
    RUN_STAMPS,
    JobStatus,
    NodeRunStatus,
    check_job_transition,
    check_run_transition,
    job_deadline,
)
from jobyard.domain.records import Job, NodeRun
from jobyard.domain.rounds import JobRound
from jobyard.service.context import Services
from jobyard.service.events import event_row, record_many
from jobyard.store import Tx
from jobyard.store.jobs import RunWrite

_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))
# The run statuses that stamp a run's start and its end.
_STARTS = frozenset(s for s, stamps in RUN_STAMPS.items() if "started_at" in stamps)
_FINISHES = frozenset(s for s, stamps in RUN_STAMPS.items() if "finished_at" in stamps)


@dataclass(frozen=True)
class JobMove:
    """Move ``job`` (as the caller last read it) to ``to``; ``values``: other columns
    written with the move; ``data``: the event's data."""

    job: Job
    to: JobStatus
    actor: str | None
    reason: str | None = None
    values: Mapping[str, Any] | None = None
    data: dict[str, Any] | None = None


class RunMove(NamedTuple):
    """Move one node run from ``from_status`` to ``to`` (a tuple: a round makes one per
    run)."""

    run_id: int
    org_id: int
    job_id: int
    node: str
    from_status: NodeRunStatus
    to: NodeRunStatus
    actor: str | None
    reason: str | None = None
    exit_code: int | None = None

    @classmethod
    def of(
        cls,
        run: NodeRun,
        to: NodeRunStatus,
        *,
        actor: str | None,
        reason: str | None = None,
        exit_code: int | None = None,
    ) -> RunMove:
        return cls(
            run.id, run.org_id, run.job_id, run.node_name, run.status, to, actor, reason, exit_code
        )


@dataclass
class Applied:
    """What ``apply`` wrote: each moved job as it is now, and the ids of the moved runs."""

    jobs: dict[int, Job] = field(default_factory=dict)
    runs: list[int] = field(default_factory=list)


async def apply(
    svc: Services,
    tx: Tx,
    job_changes: Sequence[JobMove] = (),
    run_changes: Sequence[RunMove] = (),
    *,
    now: dt.datetime | None = None,
) -> Applied:
    """Write job and node-run status changes with their events, in causal order: jobs
    entering ``new``/``voting`` first, then the runs, then the other job moves.

    Every change must be an edge of the domain tables (else InvalidTransition, nothing
    written). A job another writer moved first is left out of ``Applied.jobs``; so is a
    single run moved first. Many runs are written in one statement: their caller holds
    the job (row lock on PostgreSQL, the single writer on SQLite).
    """
    now = now or svc.clock.now()
    # Check everything before writing anything.
    seen: dict[int, JobStatus] = {}
    for m in job_changes:
        check_job_transition(seen.get(m.job.id, m.job.status), m.to)
        seen[m.job.id] = m.to
    for r in run_changes:
        check_run_transition(r.from_status, r.to)
    out = Applied()
    rows: list[dict[str, Any]] = []
    before = [m for m in job_changes if m.to in JOB_BEFORE_RUNS]
    after = [m for m in job_changes if m.to not in JOB_BEFORE_RUNS]
    await _move_jobs(svc, tx, before, now, out, rows)
    await _move_runs(tx, run_changes, now, out, rows)
    await _move_jobs(svc, tx, after, now, out, rows)
    if rows:
        await record_many(svc, tx, rows)
    return out


async def _move_jobs(
    svc: Services,
    tx: Tx,
    moves: Sequence[JobMove],
    now: dt.datetime,
    out: Applied,
    rows: list[dict[str, Any]],
) -> None:
    for m in moves:
        job = out.jobs.get(m.job.id, m.job)
        changes: dict[str, Any] = {"status": m.to.value, "updated_at": now}
        for column in JOB_STAMPS.get(m.to, ()):
            changes[column] = now
        deadline = job_deadline(
            m.to, now, voting_timeout=svc.settings.voting_timeout, run_timeout=job.run_timeout
        )
        if deadline is not KEEP_DEADLINE:
            changes["deadline"] = deadline
        changes.update(m.values or {})
        if not await tx.jobs.set_status(job.id, job.status, changes):
            continue
        plain = {k: v for k, v in changes.items() if k in _JOB_FIELDS and k != "status"}
        out.jobs[job.id] = dataclasses.replace(job, status=m.to, **plain)
        rows.append(
            event_row(
                org_id=job.org_id,
                kind="job",
                subject_id=job.id,
                job_id=job.id,
                type="job.status",
                from_status=job.status.value,
                to_status=m.to.value,
                actor=m.actor,
                reason=m.reason,
                data=m.data,
                now=now,
            )
        )


async def _move_runs(
    tx: Tx,
    moves: Sequence[RunMove],
    now: dt.datetime,
    out: Applied,
    rows: list[dict[str, Any]],
) -> None:
    if not moves:
        return
    moved = await tx.jobs.move_runs(
        [
            RunWrite(
                r.run_id,
                r.from_status.value,
                r.to.value,
                r.exit_code,
                r.reason,
                now,
                now if r.to in _STARTS else None,
                now if r.to in _FINISHES else None,
            )
            for r in moves
        ]
    )
    if not moved:
        return
    for r in moves:
        out.runs.append(r.run_id)
        rows.append(
            event_row(
                org_id=r.org_id,
                kind="node_run",
                subject_id=r.run_id,
                job_id=r.job_id,
                node_name=r.node,
                type="node_run.status",
                from_status=r.from_status.value,
                to_status=r.to.value,
                actor=r.actor,
                reason=r.reason,
                data={"exit_code": r.exit_code} if r.exit_code is not None else None,
                now=now,
            )
        )


async def move_job(
    svc: Services,
    tx: Tx,
    job: Job,
    target: JobStatus,
    *,
    actor: str | None,
    reason: str | None = None,
    values: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> Job | None:
    """``apply`` for one job; None if another writer moved it first."""
    done = await apply(
        svc, tx, [JobMove(job, target, actor, reason=reason, values=values, data=data)]
    )
    return done.jobs.get(job.id)


async def admit(
    svc: Services, tx: Tx, born: Sequence[tuple[dict[str, Any], str]], *, reason: str
) -> list[Job]:
    """Write new jobs directly in ``new`` (each ``(columns, actor)``), with the history a
    draft submitted at once has: ``job.created`` (draft), then ``job.status`` draft → new."""
    if not born:
        return []
    check_job_transition(JobStatus.DRAFT, JobStatus.NEW)
    now = svc.clock.now()
    stamps = dict.fromkeys(JOB_STAMPS[JobStatus.NEW], now)
    jobs = await tx.jobs.insert_many(
        [
            {
                **values,
                "status": JobStatus.NEW.value,
                "attempt": 0,
                "created_at": now,
                "updated_at": now,
                **stamps,
            }
            for values, _ in born
        ]
    )
    rows: list[dict[str, Any]] = []
    for job, (_, actor) in zip(jobs, born, strict=True):
        common: dict[str, Any] = {
            "org_id": job.org_id,
            "kind": "job",
            "subject_id": job.id,
            "job_id": job.id,
            "actor": actor,
            "now": now,
        }
        rows.append(event_row(**common, type="job.created", to_status=JobStatus.DRAFT.value))
        rows.append(
            event_row(
                **common,
                type="job.status",
                from_status=JobStatus.DRAFT.value,
                to_status=JobStatus.NEW.value,
                reason=reason,
            )
        )
    await record_many(svc, tx, rows)
    return jobs


async def admit_voting(
    svc: Services, tx: Tx, values: dict[str, Any], actor: str, rnd: JobRound
) -> tuple[Job, list[NodeRun]]:
    """Write a job submitted with voting opened at once (``rnd``: its first round, from
    ``domain.rounds.first_round``, still ``voting``) directly in that status, with its runs
    as the round left them and the history a draft submitted, then started, has:
    ``job.created`` (draft), draft → new, new → voting, and each run's change. Three
    statements: the job, its runs and its events, each written with RETURNING."""
    if rnd.status is not JobStatus.VOTING:
        raise InvalidTransition(f"a job born {rnd.status} is written through its round")
    steps: list[tuple[JobStatus, JobStatus, str | None, str | None]] = [
        (JobStatus.DRAFT, JobStatus.NEW, "submitted", actor)
    ]
    steps += [(c.from_status, c.to_status, c.reason, None) for c in rnd.job_changes]
    for before, to, _, _ in steps:
        check_job_transition(before, to)
    for c in rnd.run_changes:
        check_run_transition(c.from_status, c.to_status)
    now = rnd.now
    row: dict[str, Any] = {
        **values,
        "status": rnd.status.value,
        "attempt": rnd.attempt,
        "created_at": now,
        "updated_at": now,
    }
    for _, to, _, _ in steps:
        row.update(dict.fromkeys(JOB_STAMPS.get(to, ()), now))
        deadline = job_deadline(
            to, now, voting_timeout=svc.settings.voting_timeout, run_timeout=row["run_timeout"]
        )
        if deadline is not KEEP_DEADLINE:
            row["deadline"] = deadline
    job = await tx.jobs.insert(row)
    reasons = {c.node: c.reason for c in rnd.run_changes}
    runs = await tx.jobs.insert_runs_returning(
        [
            {
                "job_id": job.id,
                "org_id": job.org_id,
                "node_name": node,
                "status": run.status.value,
                "attempt": run.attempt,
                "reason": reasons.get(node),
                "created_at": now,
                "updated_at": now,
                "started_at": None,
                "finished_at": None,
                **dict.fromkeys(RUN_STAMPS.get(run.status, ()), now),
            }
            for node, run in rnd.runs.items()
        ]
    )
    common: dict[str, Any] = {"org_id": job.org_id, "job_id": job.id, "now": now}
    job_common = {**common, "kind": "job", "subject_id": job.id}
    rows = [
        event_row(**job_common, type="job.created", to_status=JobStatus.DRAFT.value, actor=actor)
    ]
    rows += [
        event_row(
            **job_common,
            type="job.status",
            from_status=before.value,
            to_status=to.value,
            actor=who,
            reason=why,
        )
        for before, to, why, who in steps
    ]
    ids = {r.node_name: r.id for r in runs}
    rows += [
        event_row(
            **common,
            kind="node_run",
            subject_id=ids[c.node],
            node_name=c.node,
            type="node_run.status",
            from_status=c.from_status.value,
            to_status=c.to_status.value,
            actor=None,
            reason=c.reason,
        )
        for c in rnd.run_changes
    ]
    await record_many(svc, tx, rows)
    return job, runs


__all__ = [
    "Applied",
    "InvalidTransition",
    "JobMove",
    "RunMove",
    "admit",
    "admit_voting",
    "apply",
    "move_job",
]
