"""Fixtures for tasks, schedules, stacks and triggers: people, a fake clock, job drivers."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.clock import FakeClock
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job, Principal
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.service.transitions import RunMove, apply, move_job

START = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
_n = itertools.count(1)


async def person(svc: Services, org: str, role: Role) -> Principal:
    email = f"{role.value}{next(_n)}@example.com"
    await accounts.create_user(svc, org, email, role)
    issued = await accounts.create_token(svc, org, email)
    return await accounts.authenticate(svc, issued.secret)


@dataclass
class People:
    org: str
    admin: Principal
    alice: Principal  # user
    bob: Principal  # user
    viewer: Principal


@pytest.fixture
async def clock(any_svc: Services) -> FakeClock:
    fake = FakeClock(START)
    any_svc.clock = fake
    return fake


@pytest.fixture
async def people(any_svc: Services, clock: FakeClock) -> People:
    org = f"org{next(_n)}"
    await accounts.create_org(any_svc, org)
    return People(
        org=org,
        admin=await person(any_svc, org, Role.ADMIN),
        alice=await person(any_svc, org, Role.USER),
        bob=await person(any_svc, org, Role.USER),
        viewer=await person(any_svc, org, Role.VIEWER),
    )


async def job(svc: Services, job_id: int) -> Job:
    async with svc.db.read() as tx:
        found = await tx.jobs.get_any(job_id)
    assert found is not None
    return found


async def finish(
    svc: Services, job_id: int, result: NodeRunStatus = NodeRunStatus.SUCCEEDED
) -> None:
    """Drive a ``new`` job through voting and running to complete, every node to ``result``."""
    async with svc.db.begin() as tx:
        current = await tx.jobs.get_any(job_id)
        assert current is not None and current.status is JobStatus.NEW, current
        current = await move_job(svc, tx, current, JobStatus.VOTING, actor=None)
        assert current is not None
        for run in await tx.jobs.runs(job_id):
            await apply(svc, tx, run_changes=[RunMove.of(run, NodeRunStatus.READY, actor=None)])
        current = await move_job(svc, tx, current, JobStatus.RUNNING, actor=None)
        assert current is not None
        for run in await tx.jobs.runs(job_id):
            await apply(svc, tx, run_changes=[RunMove.of(run, NodeRunStatus.RUNNING, actor=None)])
        for run in await tx.jobs.runs(job_id):
            await apply(svc, tx, run_changes=[RunMove.of(run, result, actor=None)])
        await move_job(svc, tx, current, JobStatus.COMPLETE, actor=None)


async def jobs_of(svc: Services, org_id: int) -> list[Job]:
    """Every job of the organization, oldest first."""
    from jobyard.store.jobs import JobFilter

    async with svc.db.read() as tx:
        page = await tx.jobs.page(org_id, JobFilter(), sort="id", descending=False, limit=1000)
    return page.items


async def events_of(svc: Services, job_id: int) -> list[str]:
    async with svc.db.read() as tx:
        return [e.type for e in await tx.events.of_job(job_id)]
