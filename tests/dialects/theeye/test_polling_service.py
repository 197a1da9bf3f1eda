"""The polling-agent use cases on SQLite and PostgreSQL: a poll is heartbeat, vote and run
start; concurrent polls hand a job out once; a result finishes the node run."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Conflict, Forbidden
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts, dispatch, nodes, outputs, polling
from jobyard.service import jobs as uc
from jobyard.service.context import Services


async def principals(svc: Services) -> tuple[Principal, Principal]:
    await accounts.create_org(svc, "acme")
    await accounts.create_user(svc, "acme", "admin@acme.test", Role.ADMIN, password="correct horse")
    admin = await accounts.create_token(svc, "acme", "admin@acme.test")
    agent = await accounts.create_token(svc, "acme", "admin@acme.test", role=Role.AGENT)
    return (
        await accounts.authenticate(svc, admin.secret),
        await accounts.authenticate(svc, agent.secret),
    )


async def test_poll_hands_a_job_out_once(any_svc: Services) -> None:
    svc = any_svc
    admin, agent = await principals(svc)
    assert await polling.poll_next_job(svc, agent, "web1") is None
    view = await uc.create_job(svc, admin, JobSpec(target=Target(nodes=("web1",)), command="true"))
    await dispatch.start_jobs(svc)
    # Ten concurrent polls of the same node: exactly one gets the job.
    got = await asyncio.gather(*(polling.poll_next_job(svc, agent, "web1") for _ in range(10)))
    handed = [g for g in got if g is not None]
    assert len(handed) == 1 and handed[0].job.id == view.job.id
    assert handed[0].job.status is JobStatus.RUNNING
    assert [r.status for r in handed[0].runs] == [NodeRunStatus.RUNNING]

    result = polling.PolledResult(succeeded=True, exit_code=0, state="success", stdout="ok\n")
    done = await polling.finish_polled_job(svc, agent, None, view.job.id, result)
    assert done.job.status is JobStatus.COMPLETE and done.job.state == "success"
    assert done.runs[0].status is NodeRunStatus.SUCCEEDED
    async with svc.db.read() as tx:
        assert await outputs.stream_text(tx, done.runs[0].id, "stdout") == "ok\n"
    history = await uc.job_history(svc, admin, view.job.id)
    assert [e.to_status for e in history.items] == [
        "draft",
        "new",
        "voting",
        "running",
        "complete",
    ]


async def test_silent_polling_node_goes_offline_and_its_run_crashes(any_svc: Services) -> None:
    svc = any_svc
    admin, agent = await principals(svc)
    await polling.poll_next_job(svc, agent, "web1")
    view = await uc.create_job(svc, admin, JobSpec(target=Target(nodes=("web1",)), command="x"))
    await dispatch.start_jobs(svc)
    assert await polling.poll_next_job(svc, agent, "web1") is not None
    # No poll for longer than TTL + grace: offline, and the run it was running crashed.
    async with svc.db.begin() as tx:
        node = await tx.nodes.get(admin.org_id, "web1")
        assert node is not None
        await tx.nodes.heartbeat([node.id], svc.clock.now() - dt.timedelta(seconds=10))
    assert await nodes.expire_silent_nodes(svc) == 1
    after = await uc.get_job(svc, admin, view.job.id)
    assert after.runs[0].status is NodeRunStatus.CRASHED
    assert after.job.status is JobStatus.COMPLETE


async def test_only_agents_poll(any_svc: Services) -> None:
    admin, _ = await principals(any_svc)
    with pytest.raises(Forbidden):
        await polling.poll_next_job(any_svc, admin, "web1")


async def test_a_name_held_by_a_websocket_agent_cannot_be_polled(any_svc: Services) -> None:
    svc = any_svc
    admin, agent = await principals(svc)
    hello = nodes.Hello("web1", "inc-1", [], None, [], [], False)
    await nodes.node_connected(svc, agent, hello, "replica")
    with pytest.raises(Conflict):
        await polling.poll_next_job(svc, agent, "web1")
    # Once that agent is gone, a polling agent may take the name.
    await nodes.node_gone(svc, admin.org_id, "web1", "agent said goodbye")
    assert await polling.poll_next_job(svc, agent, "web1") is None
