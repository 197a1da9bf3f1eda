"""Dispatcher use cases: open voting on new jobs, fire voting and run timeouts."""

from __future__ import annotations

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from jobyard.service.rounds import commit_message, load_round, persist_round, send


async def start_jobs(svc: Services, limit: int = 200) -> int:
    """Move ``new`` jobs to ``voting``: commit to online nodes, the others are unavailable."""
    started = 0
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        for candidate in await tx.jobs.active([JobStatus.NEW], limit=limit):
            job = await tx.jobs.get_any(candidate.id, for_update=True)
            if job is None or job.status is not JobStatus.NEW:
                continue
            rnd = await load_round(tx, job, now)
            rnd.start_voting()
            online = {
                n.name for n in await tx.nodes.by_names(job.org_id, list(rnd.runs)) if n.online
            }
            for node, run in rnd.runs.items():
                if run.status is not NodeRunStatus.NEW:
                    continue
                if node in online:
                    send(
                        svc,
                        tx,
                        job.org_id,
                        node,
                        commit_message(job, node, svc.settings.run_files_cap),
                    )
                else:
                    rnd.node_lost(node, "node is offline")
            rnd.settle()
            await persist_round(svc, tx, job, rnd, actor=None)
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
            rnd = await load_round(tx, job, now)
            if job.status is JobStatus.VOTING:
                rnd.voting_timeout()
            elif job.status is JobStatus.RUNNING:
                rnd.run_timeout()
            rnd.settle()
            await persist_round(svc, tx, job, rnd, actor=None)
            fired += 1
    return fired
