"""Dispatcher use cases: open voting on new jobs, fire voting and run timeouts."""

from __future__ import annotations

import datetime as dt

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.nodes import Availability
from jobyard.domain.records import Job
from jobyard.domain.rounds import open_voting
from jobyard.service.context import Services
from jobyard.service.rounds import Rounds, commits_of, load_round, persist_round, send_all
from jobyard.store import Tx


async def start_jobs(svc: Services, limit: int = 200, rounds: Rounds | None = None) -> int:
    """Move ``new`` jobs to ``voting``: commit to online nodes, the others are unavailable.

    With ``rounds`` (the engine's), each started job's round is kept there once committed."""
    started = 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        for candidate in await tx.jobs.active([JobStatus.NEW], limit=limit):
            job = await tx.jobs.get_any(candidate.id, for_update=True)
            if job is None or job.status is not JobStatus.NEW:
                continue
            rnd = await load_round(tx, job, now)
            # Shared locks: a hello committing meanwhile is seen (or sees this job voting),
            # so a reconnecting node's commit is sent by one side or the other.
            state = await tx.nodes.availability_of(job.org_id, list(rnd.runs), for_share=True)
            commit = commits_of(svc, job)
            send_all(svc, tx, job.org_id, [(n, commit(n)) for n in open_voting(rnd, state)])
            current = await persist_round(svc, tx, job, rnd, actor=None)
            if rounds is not None:
                tx.after_commit(lambda job=current, rnd=rnd: rounds.keep(job, rnd))
            started += 1
    return started


async def fire_deadlines(svc: Services) -> int:
    """Apply the voting timeout and run_timeout to every job whose deadline has passed."""
    fired = 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        for job_id in await tx.jobs.due(now, [JobStatus.VOTING, JobStatus.RUNNING]):
            job = await tx.jobs.get_any(job_id, for_update=True)
            if job is None or job.deadline is None or job.deadline > now:
                continue
            if job.status is JobStatus.VOTING and await _awaits_reconnect(svc, tx, job, now):
                continue
            rnd = await load_round(tx, job, now)
            if job.status is JobStatus.VOTING:
                rnd.voting_timeout()
            elif job.status is JobStatus.RUNNING:
                rnd.run_timeout()
            rnd.settle()
            await persist_round(svc, tx, job, rnd, actor=None)
            fired += 1
    return fired


async def _awaits_reconnect(svc: Services, tx: Tx, job: Job, now: dt.datetime) -> bool:
    """Whether a vote still missing is a reconnecting node's, within its grace: voting
    waits for it (its hello sends the commit) rather than call it unavailable."""
    waiting = [r.node_name for r in await tx.jobs.runs(job.id) if r.status is NodeRunStatus.NEW]
    if not waiting:
        return False
    grace = dt.timedelta(seconds=svc.settings.node_ttl + svc.settings.node_grace)
    return any(
        n.availability is Availability.RECONNECTING
        and n.last_heartbeat is not None
        and n.last_heartbeat + grace > now
        for n in await tx.nodes.by_names(job.org_id, waiting)
    )
