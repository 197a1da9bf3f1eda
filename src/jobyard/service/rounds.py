"""Loading a job's round, applying agent reports and timeouts, and persisting the result.

This is the write path of the hot loop: many reports (votes, run acks, results,
output) are applied in one transaction, grouped by job, with each job's row locked
(PostgreSQL) or the single writer held (SQLite). Run changes are written in bulk, each
with its event; the commands for agents are published after commit.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from jobyard.domain.jobs import JobStatus
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Job
from jobyard.domain.rounds import JobRound, RunCopy
from jobyard.domain.secrets import secret_names
from jobyard.service.context import Services
from jobyard.service.outputs import append_output
from jobyard.service.secrets import mask_output
from jobyard.service.transitions import JobMove, RunMove, apply
from jobyard.store import Tx
from jobyard.wire import agent as wire


@dataclass(frozen=True)
class Report:
    """One thing an agent told us (or the dispatcher decided) about one node's run."""

    kind: str  # ack_commit | nack_commit | ack_run | result | output | lost
    org_id: int
    node: str
    job_id: int
    attempt: int
    status: str | None = None
    exit_code: int | None = None
    reason: str | None = None
    stream: str | None = None
    data: str | None = None


def node_topic(org_id: int, node: str) -> str:
    return f"node:{org_id}:{node}"


def send(svc: Services, tx: Tx, org_id: int, node: str, message: str) -> None:
    """Queue a message to a node's connection, delivered once the transaction commits."""
    tx.after_commit(lambda: svc.hub.publish(node_topic(org_id, node), message))


async def load_round(tx: Tx, job: Job, now: dt.datetime) -> JobRound:
    runs = await tx.jobs.runs(job.id)
    required = Quorum.parse(job.quorum).required(len(runs))
    return JobRound(
        job_id=job.id,
        status=job.status,
        attempt=job.attempt,
        quorum_required=required,
        runs={
            r.node_name: RunCopy(r.id, r.node_name, r.status, r.attempt, r.exit_code) for r in runs
        },
        now=now,
    )


def command_for(job: Job, kind: str) -> str:
    message = wire.Run if kind == "run" else wire.Abort
    return wire.encode(message(job=job.id, attempt=job.attempt))


def commit_message(svc: Services, job: Job, node: str) -> str:
    """What a node needs to run its part of ``job``: secret values opened, and named in
    ``secret_env`` so that the agent masks them in the output it sends."""
    return wire.encode(
        wire.Commit(
            job=job.id,
            attempt=job.attempt,
            command=job.command,
            argv=svc.secrets.plain_list(job.argv),
            env=svc.secrets.plain_env(job.env),
            secret_env=secret_names(job.env),
            dir=job.dir,
            run_timeout=job.run_timeout,
            capture_output=job.capture_output,
            node=node,
            file=job.meta.get("file"),
            user=job.meta.get("user"),
            input_files=[
                wire.InputFile(
                    id=f["id"], name=f["name"], size=f.get("size"), sha256=f.get("sha256")
                )
                for f in job.meta.get("input_files") or []
            ],
            outputs=job.meta.get("outputs"),
            files_cap=svc.settings.run_files_cap,
        )
    )


async def persist_round(svc: Services, tx: Tx, job: Job, rnd: JobRound, actor: str | None) -> Job:
    """Write a round's run changes and job moves through the transition writer; queue its
    commands."""
    done = await apply(
        svc,
        tx,
        [JobMove(job, c.to_status, actor, reason=c.reason) for c in rnd.job_changes],
        [
            RunMove(
                c.run_id,
                job.org_id,
                job.id,
                c.node,
                c.from_status,
                c.to_status,
                actor,
                reason=c.reason,
                exit_code=c.exit_code,
            )
            for c in rnd.run_changes
        ],
        now=rnd.now,
    )
    current = done.jobs.get(job.id, job)
    if rnd.job_changes and current.status is not rnd.job_changes[-1].to_status:
        raise RuntimeError(f"job {job.id} moved under a locked round")
    if current.cluster_id is not None and any(
        c.to_status is JobStatus.RUNNING for c in rnd.job_changes
    ):
        await _cluster_job_started(svc, tx, current)
    for node, kind in rnd.commands:
        send(svc, tx, job.org_id, node, command_for(current, kind))
    return current


async def _cluster_job_started(svc: Services, tx: Tx, job: Job) -> None:
    from jobyard.service.events import record

    assert job.cluster_id is not None
    await record(
        svc,
        tx,
        org_id=job.org_id,
        kind="cluster",
        subject_id=job.cluster_id,
        job_id=job.id,
        type="cluster.job_started",
        actor=None,
        reason=f"job {job.id} started on the cluster",
        data={"job_id": job.id},
        now=svc.clock.now(),
    )


async def apply_reports(svc: Services, reports: Sequence[Report]) -> int:
    """Apply a batch of agent reports in one transaction; returns how many were stale."""
    by_job: dict[int, list[Report]] = defaultdict(list)
    for r in reports:
        by_job[r.job_id].append(r)
    stale = 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        for job_id in sorted(by_job):
            items = by_job[job_id]
            job = await tx.jobs.get_any(job_id, for_update=True)
            if job is None or job.org_id != items[0].org_id:
                stale += len(items)
                continue
            output = [r for r in items if r.kind == "output"]
            if output:
                await _append_output(svc, tx, job, output)
            state_reports = [r for r in items if r.kind != "output"]
            if not state_reports:
                continue
            rnd = await load_round(tx, job, now)
            for r in state_reports:
                _apply(rnd, r)
            rnd.settle()
            stale += rnd.stale
            if rnd.run_changes or rnd.job_changes or rnd.commands:
                await persist_round(svc, tx, job, rnd, actor=None)
    return stale


def _apply(rnd: JobRound, r: Report) -> None:
    if r.kind == "ack_commit":
        rnd.vote(r.node, r.attempt, True)
    elif r.kind == "nack_commit":
        rnd.vote(r.node, r.attempt, False, r.reason)
    elif r.kind == "ack_run":
        rnd.run_started(r.node, r.attempt)
    elif r.kind == "result":
        rnd.finished(r.node, r.attempt, r.status or "failed", r.exit_code, r.reason)
    elif r.kind == "lost":
        rnd.node_lost(r.node, r.reason or "node lost")


async def _append_output(svc: Services, tx: Tx, job: Job, output: Iterable[Report]) -> None:
    if not job.capture_output:
        return
    merged: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in output:
        if r.stream in wire.STREAMS and r.data and r.attempt == job.attempt:
            merged[(r.node, r.stream)].append(r.data)
    for (node, stream), chunks in merged.items():
        run = await tx.jobs.run(job.id, node)
        if run is not None and run.attempt == job.attempt:
            data = mask_output(svc.secrets, job, "".join(chunks))
            await append_output(svc, tx, run.id, stream, data)
            tx.after_commit(
                lambda node=node, stream=stream, data=data: svc.hub.publish(
                    f"output:{job.id}", (node, stream, data)
                )
            )
