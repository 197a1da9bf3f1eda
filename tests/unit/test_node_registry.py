"""The node registry's races (service/nodes.py on SQLite, fake clock): expiry against a
reconnect, heartbeats from a node declared offline, aborts owed after a reconnect."""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobyard.domain.accounts import Role
from jobyard.domain.clock import FakeClock
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts, dispatch, nodes
from jobyard.service import jobs as job_uc
from jobyard.service.context import Services
from jobyard.service.rounds import Report, apply_reports, node_topic
from jobyard.wire import agent as wire
from tests.conftest import Factory


async def _setup(svc: Services, factory: Factory) -> tuple[Services, Principal, Principal]:
    svc = dataclasses.replace(svc, clock=FakeClock())
    org = await factory.org()
    user = await factory.account(org, Role.ADMIN)
    agent = await factory.account(org, Role.AGENT)
    return (
        svc,
        await accounts.authenticate(svc, user.token),
        await accounts.authenticate(svc, agent.token),
    )


def hello(node: str, running: list[tuple[int, int]] | None = None) -> nodes.Hello:
    return nodes.Hello(
        node=node,
        incarnation="i1",
        tags=[],
        cluster=None,
        running=list(running or []),
        pending=[],
        busy=False,
    )


async def test_expiry_spares_a_node_that_reconnected_after_the_check(
    svc: Services, factory: Factory
) -> None:
    svc, user, agent = await _setup(svc, factory)
    clock = svc.clock
    assert isinstance(clock, FakeClock)
    await nodes.node_connected(svc, agent, hello("n1"), "r1")
    clock.advance(svc.settings.node_ttl + svc.settings.node_grace + 1)
    cutoff = clock.now() - dt.timedelta(seconds=svc.settings.node_ttl + svc.settings.node_grace)
    async with svc.db.read() as tx:
        assert [n.name for n in await tx.nodes.silent_since(cutoff)] == ["n1"]
    # The agent reconnects between the silence check and the expiry's transaction.
    await nodes.node_connected(svc, agent, hello("n1"), "r1")
    await nodes.node_gone(svc, agent.org_id, "n1", "silent", silent_before=cutoff)
    assert (await nodes.get_node(svc, user, "n1")).online
    # Without the reconnect it does go offline.
    clock.advance(svc.settings.node_ttl + svc.settings.node_grace + 1)
    assert await nodes.expire_silent_nodes(svc) == 1
    assert not (await nodes.get_node(svc, user, "n1")).online


async def test_heartbeats_report_the_nodes_declared_offline(
    svc: Services, factory: Factory
) -> None:
    svc, _, agent = await _setup(svc, factory)
    a = await nodes.node_connected(svc, agent, hello("a"), "r1")
    b = await nodes.node_connected(svc, agent, hello("b"), "r1")
    await nodes.node_gone(svc, agent.org_id, "b", "silent")
    assert await nodes.record_heartbeats(svc, [a.id, b.id], {a.id: False, b.id: True}) == [b.id]
    assert await nodes.record_heartbeats(svc, [], {}) == []


async def test_a_reconnecting_agent_is_told_to_abort_runs_that_ended_meanwhile(
    svc: Services, factory: Factory
) -> None:
    svc, user, agent = await _setup(svc, factory)
    for name in ("n1", "n2"):
        await nodes.node_connected(svc, agent, hello(name), "r1")
    spec = JobSpec(target=Target(nodes=("n1", "n2")), command="sleep 60")
    view = await job_uc.create_job(svc, user, spec)
    job_id = view.job.id
    await dispatch.start_jobs(svc)
    await apply_reports(
        svc,
        [Report("ack_commit", agent.org_id, n, job_id, 0) for n in ("n1", "n2")]
        + [Report("ack_run", agent.org_id, n, job_id, 0) for n in ("n1", "n2")],
    )
    assert (await job_uc.get_job(svc, user, job_id)).job.status is JobStatus.RUNNING
    # Stopped while n1 was cut off: the abort it was sent reached nobody.
    await job_uc.stop_job(svc, user, job_id)
    runs = {r.node_name: r.status for r in (await job_uc.get_job(svc, user, job_id)).runs}
    assert runs == {"n1": NodeRunStatus.ABORTED, "n2": NodeRunStatus.ABORTED}
    # n1 comes back still holding the run, and with another one the server never heard of.
    async with svc.hub.subscribe(node_topic(agent.org_id, "n1"), maxsize=0) as outbox:
        await nodes.node_connected(svc, agent, hello("n1", running=[(job_id, 0), (999, 0)]), "r1")
        got = [wire.decode(outbox.get_nowait()) for _ in range(outbox.qsize())]
    assert sorted((m.kind, getattr(m, "job", None)) for m in got) == sorted(
        [("abort", 999), ("abort", job_id)]
    )


async def test_a_reconnecting_agent_keeps_its_live_runs(svc: Services, factory: Factory) -> None:
    svc, user, agent = await _setup(svc, factory)
    await nodes.node_connected(svc, agent, hello("n1"), "r1")
    view = await job_uc.create_job(
        svc, user, JobSpec(target=Target(nodes=("n1",)), command="sleep 60")
    )
    job_id = view.job.id
    await dispatch.start_jobs(svc)
    await apply_reports(svc, [Report("ack_commit", agent.org_id, "n1", job_id, 0)])
    async with svc.hub.subscribe(node_topic(agent.org_id, "n1"), maxsize=0) as outbox:
        # The run message was lost: the job runs, the node only holds a slot for it.
        await nodes.node_connected(svc, agent, hello("n1", running=[(job_id, 0)]), "r1")
        got = [wire.decode(outbox.get_nowait()) for _ in range(outbox.qsize())]
    assert [(m.kind, getattr(m, "job", None)) for m in got] == [("run", job_id)]
    runs = (await job_uc.get_job(svc, user, job_id)).runs
    assert [r.status for r in runs] == [NodeRunStatus.READY]
