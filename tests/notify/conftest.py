"""Fixtures for notification tests: receivers, configured services, people and jobs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts, jobs
from jobyard.service import outbox as relay
from jobyard.service.context import Services
from jobyard.service.transitions import RunMove, apply, move_job
from tests.notify.receivers import SmtpServer, WebhookReceiver

T = TypeVar("T")

# Fast retries for tests; everything else as in production.
FAST = {"outbox_base": 0.05, "outbox_cap": 0.2, "outbox_lease": 5.0}


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    server = SmtpServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def configure(svc: Services, smtp: SmtpServer | None = None, **extra: Any) -> Services:
    changes: dict[str, Any] = {
        "webhook_allow_private": True,
        "extra": {**FAST, **extra},
    }
    if smtp is not None:
        changes.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="jobyard@example.com")
    svc.settings = svc.settings.replace(**changes)
    return svc


@pytest.fixture
async def nsvc(any_svc: Services, smtp: SmtpServer) -> Services:
    """Services (SQLite and PostgreSQL) with SMTP pointing at the test server."""
    return configure(any_svc, smtp)


_people = itertools.count(1)


async def person(
    svc: Services, org: str, role: Role = Role.USER, email: str | None = None
) -> Principal:
    """A member of ``org`` with that role, as the principal their new token stands for."""
    email = email or f"{role.value}{next(_people)}@example.com"
    await accounts.create_user(svc, org, email, role)
    issued = await accounts.create_token(svc, org, email)
    return await accounts.authenticate(svc, issued.secret)


async def new_org(svc: Services, name: str) -> str:
    await accounts.create_org(svc, name)
    return name


async def start_job(svc: Services, who: Principal, nodes: tuple[str, ...] = ("n1",)) -> int:
    view = await jobs.create_job(
        svc, who, JobSpec(target=Target(nodes=nodes), command="true", name="nightly")
    )
    return view.job.id


async def finish_job(
    svc: Services, job_id: int, results: dict[str, NodeRunStatus] | None = None
) -> None:
    """Drive a new job through voting and running to complete, each node to its result."""
    async with svc.db.begin() as tx:
        job = await tx.jobs.get_any(job_id)
        assert job is not None
        job = await move_job(svc, tx, job, JobStatus.VOTING, actor=None)
        assert job is not None
        for run in await tx.jobs.runs(job_id):
            await apply(svc, tx, run_changes=[RunMove.of(run, NodeRunStatus.READY, actor=None)])
        job = await move_job(svc, tx, job, JobStatus.RUNNING, actor=None)
        assert job is not None
        for run in await tx.jobs.runs(job_id):
            result = (results or {}).get(run.node_name, NodeRunStatus.SUCCEEDED)
            await apply(svc, tx, run_changes=[RunMove.of(run, result, actor=None)])
        await move_job(svc, tx, job, JobStatus.COMPLETE, actor=None)


async def fail_quorum(svc: Services, job_id: int) -> None:
    async with svc.db.begin() as tx:
        job = await tx.jobs.get_any(job_id)
        assert job is not None
        job = await move_job(svc, tx, job, JobStatus.VOTING, actor=None)
        assert job is not None
        await move_job(svc, tx, job, JobStatus.QUORUM_FAILED, actor=None, reason="quorum")


async def drain(svc: Services, channels: relay.Channels | None = None) -> int:
    """Run the relay until nothing is due now; returns how many deliveries it handled."""
    own = channels is None
    ch = channels or relay.Channels.from_settings(svc.settings)
    total = 0
    try:
        while n := await relay.relay_once(svc, ch):
            total += n
    finally:
        if own:
            await ch.close()
    return total


async def eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 10.0, what: str = ""
) -> T:
    """Poll an async check until it returns something truthy, with a deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or check}")
        await asyncio.sleep(0.02)


@pytest.fixture
def qsvc(any_svc: Services) -> Services:
    """Services (SQLite and PostgreSQL) without SMTP: in-app and webhooks only."""
    return configure(any_svc)
