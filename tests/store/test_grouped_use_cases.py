"""Write use cases beside the submit go through the group writer too (store/writer.py):
concurrent stops, agent connections and disconnections share transactions, a refused one
fails alone, and each is answered after its commit, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from jobyard.domain.errors import Conflict
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.targets import Target
from jobyard.service import jobs as job_uc
from jobyard.service import nodes
from jobyard.service.context import Services
from tests.store.conftest import people
from tests.unit.test_node_registry import hello


def _spec(*names: str) -> JobSpec:
    return JobSpec(target=Target(nodes=names), command="true", quorum=Quorum.parse("100%"))


async def test_concurrent_agent_connections_share_transactions(counted: Services) -> None:
    user, agent = await people(counted)
    writer, counts = counted.db.writer, counted.db.counts
    assert writer is not None and counts is not None
    batches, commits = writer.batches, counts.commits
    names = [f"n{i:02d}" for i in range(30)]
    connected = await asyncio.gather(
        *(nodes.node_connected(counted, agent, hello(n), "r1") for n in names)
    )
    assert sorted(n.name for n in connected) == names
    assert all(n.online for n in connected)
    assert 0 < writer.batches - batches < 30  # queued behind the first, then together
    assert counts.commits - commits == writer.batches - batches
    gone = await asyncio.gather(
        *(nodes.node_gone(counted, agent.org_id, n, "agent stopped") for n in names)
    )
    assert gone == [None] * 30
    listed = await nodes.list_nodes(counted, user)
    assert {n.name: n.online for n in listed} == dict.fromkeys(names, False)


async def test_concurrent_stops_share_transactions_and_a_refused_one_fails_alone(
    counted: Services,
) -> None:
    user, agent = await people(counted)
    await nodes.node_connected(counted, agent, hello("web"), "r1")
    jobs = [
        (await job_uc.create_job(counted, user, _spec("web"), known_nodes_only=True)).job
        for _ in range(6)
    ]
    first = jobs[0].id
    await job_uc.stop_job(counted, user, first)  # stopping it again is refused with a 409
    writer = counted.db.writer
    assert writer is not None
    batches = writer.batches
    outcomes = await asyncio.gather(
        *(job_uc.stop_job(counted, user, j.id) for j in jobs), return_exceptions=True
    )
    assert isinstance(outcomes[0], Conflict)
    stopped = [o for o in outcomes[1:] if not isinstance(o, BaseException)]
    assert [v.job.status for v in stopped] == [JobStatus.ABORTED] * 5
    assert 0 < writer.batches - batches < 6
    for j in jobs:  # what each caller was told is what the database kept
        assert (await job_uc.get_job(counted, user, j.id)).job.status is JobStatus.ABORTED
