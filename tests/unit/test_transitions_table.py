"""Every status change goes through ``transitions.apply``, decided by the domain tables:
each allowed edge is written with its stamps, deadline and one event; each other edge is
refused with nothing written."""

from __future__ import annotations

import itertools

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.errors import InvalidTransition
from jobyard.domain.jobs import (
    JOB_STAMPS,
    JOB_TRANSITIONS,
    RUN_STAMPS,
    RUN_TRANSITIONS,
    JobStatus,
    NodeRunStatus,
)
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Job, NodeRun, Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts
from jobyard.service import jobs as uc
from jobyard.service.context import Services
from jobyard.service.transitions import JobMove, RunMove, apply
from jobyard.store.jobs import RunWrite


async def _principal(svc: Services) -> Principal:
    await accounts.create_org(svc, "walk")
    await accounts.create_user(svc, "walk", "w@example.com", Role.ADMIN)
    issued = await accounts.create_token(svc, "walk", "w@example.com")
    return await accounts.authenticate(svc, issued.secret)


async def _job_in(svc: Services, who: Principal, status: JobStatus) -> tuple[Job, NodeRun]:
    """A job with one node run, put in ``status`` behind the writer's back (test set-up)."""
    spec = JobSpec(target=Target(nodes=("n1",)), command="true", run_timeout=30)
    view = await uc.create_job(svc, who, spec, draft=True)
    async with svc.db.begin() as tx:
        await tx.jobs.set_status(view.job.id, JobStatus.DRAFT, {"status": status.value})
        job = await tx.jobs.get_any(view.job.id)
        assert job is not None
        await tx.jobs.insert_runs(job, ["n1"], svc.clock.now())
        (run,) = await tx.jobs.runs(job.id)
    return job, run


async def _put_run(svc: Services, run: NodeRun, status: NodeRunStatus) -> NodeRun:
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        row = RunWrite(run.id, run.status.value, status.value, None, None, now, None, None)
        assert await tx.jobs.move_runs([row])
        found = await tx.jobs.run(run.job_id, run.node_name)
    assert found is not None
    return found


async def _events(svc: Services, job_id: int) -> list[tuple[str, str | None, str | None]]:
    async with svc.db.read() as tx:
        events = await tx.events.of_job(job_id, limit=1000)
    return [(e.type, e.from_status, e.to_status) for e in events if e.type.endswith(".status")]


async def test_every_job_edge(svc: Services) -> None:
    who = await _principal(svc)
    for source, target in itertools.product(JobStatus, JobStatus):
        job, _ = await _job_in(svc, who, source)
        async with svc.db.begin() as tx:
            if target not in JOB_TRANSITIONS[source]:
                with pytest.raises(InvalidTransition):
                    await apply(svc, tx, [JobMove(job, target, "walk")])
                refused = await tx.jobs.get_any(job.id)
                assert refused is not None and refused.status is source
                assert await _events(svc, job.id) == []
                continue
            done = await apply(svc, tx, [JobMove(job, target, "walk", reason="walked")])
        async with svc.db.read() as tx:
            stored = await tx.jobs.get_any(job.id)
        assert stored is not None
        assert stored.status is target, (source, target)
        assert done.jobs[job.id] == stored, (source, target)
        for column in JOB_STAMPS.get(target, ()):
            assert getattr(stored, column) is not None, (source, target, column)
        if target in (JobStatus.VOTING, JobStatus.RUNNING):
            assert stored.deadline is not None and stored.deadline > stored.updated_at
        if target.terminal:
            assert stored.deadline is None
        assert await _events(svc, job.id) == [("job.status", source.value, target.value)]


async def test_every_run_edge(svc: Services) -> None:
    who = await _principal(svc)
    for source, target in itertools.product(NodeRunStatus, NodeRunStatus):
        job, run = await _job_in(svc, who, JobStatus.RUNNING)
        if source is not NodeRunStatus.NEW:
            run = await _put_run(svc, run, source)
        async with svc.db.begin() as tx:
            if target not in RUN_TRANSITIONS[source]:
                with pytest.raises(InvalidTransition):
                    await apply(svc, tx, run_changes=[RunMove.of(run, target, actor="walk")])
                stored = await tx.jobs.run(job.id, "n1")
                assert stored is not None and stored.status is source
                continue
            done = await apply(
                svc, tx, run_changes=[RunMove.of(run, target, actor="walk", exit_code=3)]
            )
            stored = await tx.jobs.run(job.id, "n1")
        assert done.runs == [run.id]
        assert stored is not None and stored.status is target, (source, target)
        assert stored.exit_code == 3
        for column in RUN_STAMPS.get(target, ()):
            assert getattr(stored, column) is not None, (source, target, column)
        assert await _events(svc, job.id) == [("node_run.status", source.value, target.value)]


async def test_a_run_moved_first_is_left_alone(svc: Services) -> None:
    who = await _principal(svc)
    job, run = await _job_in(svc, who, JobStatus.VOTING)
    await _put_run(svc, run, NodeRunStatus.READY)
    async with svc.db.begin() as tx:
        # ``run`` is the stale copy (still ``new``): the compare-and-set loses, no event.
        done = await apply(svc, tx, run_changes=[RunMove.of(run, NodeRunStatus.NACKED, actor="w")])
    assert done.runs == []
    assert await _events(svc, job.id) == []
