"""Node availability after a server restart: one rule for listings and the dispatcher
(service/nodes.py and service/dispatch.py on SQLite, fake clock)."""

from __future__ import annotations

import dataclasses

import pytest

from jobyard.domain.clock import FakeClock
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.nodes import Availability, availability
from jobyard.domain.targets import NodeInfo, Target, select_nodes
from jobyard.service import dispatch, nodes
from jobyard.service import jobs as job_uc
from jobyard.service.context import Services
from jobyard.service.rounds import node_topic
from jobyard.wire import agent as wire
from tests.conftest import Factory
from tests.unit.test_node_registry import _setup, hello


@pytest.mark.parametrize(
    ("online", "connected", "busy", "expected"),
    [
        (False, False, False, Availability.OFFLINE),
        (False, True, True, Availability.OFFLINE),
        (True, False, False, Availability.RECONNECTING),
        (True, True, True, Availability.BUSY),
        (True, True, False, Availability.AVAILABLE),
    ],
)
def test_one_rule_for_availability(
    online: bool, connected: bool, busy: bool, expected: Availability
) -> None:
    assert availability(online, connected, busy) is expected
    assert expected.word == ("available" if expected is Availability.AVAILABLE else "unavailable")


def test_a_count_target_picks_connected_nodes_first() -> None:
    infos = [
        NodeInfo("a", True, False, connected=False),  # reconnecting
        NodeInfo("b", True, False),
        NodeInfo("c", True, True),  # busy
    ]
    assert select_nodes(Target(count=1), infos) == ["b"]


async def test_after_a_restart_votes_wait_for_the_agents_hello(
    svc: Services, factory: Factory
) -> None:
    svc, user, agent = await _setup(svc, factory)
    settings = dataclasses.replace(svc.settings, voting_timeout=5, node_ttl=15, node_grace=10)
    svc = dataclasses.replace(svc, settings=settings)
    clock = svc.clock
    assert isinstance(clock, FakeClock)
    for name in ("n1", "n2"):
        await nodes.node_connected(svc, agent, hello(name), "r1")
    await nodes.grant_reconnect_grace(svc)  # the server restarted
    listed = {n.name: n.availability for n in await nodes.list_nodes(svc, user)}
    assert listed == {"n1": Availability.RECONNECTING, "n2": Availability.RECONNECTING}
    view = await job_uc.create_job(
        svc, user, JobSpec(target=Target(nodes=("n1", "n2")), command="true")
    )
    job_id = view.job.id
    async with svc.hub.subscribe(node_topic(agent.org_id, "n1"), maxsize=0) as outbox:
        await dispatch.start_jobs(svc)
        assert outbox.empty()  # nobody holds n1's socket yet: no commit into the void
        # The voting timeout passes while both are still within their reconnect grace.
        clock.advance(svc.settings.voting_timeout + 1)
        assert svc.settings.voting_timeout + 1 < svc.settings.node_ttl + svc.settings.node_grace
        await dispatch.fire_deadlines(svc)
        got = await job_uc.get_job(svc, user, job_id)
        assert got.job.status is JobStatus.VOTING
        assert {r.status for r in got.runs} == {NodeRunStatus.NEW}
        # n1's hello: the commit goes out, and n1 counts as available again.
        await nodes.node_connected(svc, agent, hello("n1"), "r1")
        sent = [wire.decode(outbox.get_nowait()) for _ in range(outbox.qsize())]
    assert [(m.kind, getattr(m, "job", None)) for m in sent] == [("commit", job_id)]
    assert (await nodes.get_node(svc, user, "n1")).availability is Availability.AVAILABLE
    # n2 never comes back: past its grace it is offline and its vote unavailable.
    clock.advance(svc.settings.node_ttl + svc.settings.node_grace)
    await nodes.node_connected(svc, agent, hello("n1"), "r1")  # n1 keeps heartbeating
    await nodes.expire_silent_nodes(svc)
    got = await job_uc.get_job(svc, user, job_id)
    assert {r.node_name: r.status for r in got.runs}["n2"] is NodeRunStatus.UNAVAILABLE
