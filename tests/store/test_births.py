"""A job submitted in a server that dispatches is born voting: one transaction writes the
job, its node runs and their history, and the commits go out after it (service/jobs.py,
transitions.admit_voting), on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

from jobyard.domain.clock import FakeClock
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.nodes import OFFLINE_REASON, UNKNOWN_REASON
from jobyard.domain.quorum import Quorum
from jobyard.domain.targets import Target
from jobyard.service import dispatch, nodes
from jobyard.service import jobs as job_uc
from jobyard.service.context import Services
from jobyard.service.rounds import node_topic
from jobyard.wire import agent as wire
from tests.store.conftest import people
from tests.unit.test_node_registry import hello


def _spec(*names: str, quorum: str = "100%") -> JobSpec:
    return JobSpec(target=Target(nodes=names), command="true", quorum=Quorum.parse(quorum))


async def test_a_submit_is_one_transaction_that_opens_voting(counted: Services) -> None:
    svc = counted
    user, agent = await people(svc)
    for name in ("n1", "n2"):
        await nodes.node_connected(svc, agent, hello(name), "r1")
    assert svc.db.counts is not None
    async with (
        svc.hub.subscribe(node_topic(agent.org_id, "n1")) as n1,
        svc.hub.subscribe(node_topic(agent.org_id, "n2")) as n2,
    ):
        # The first submit of an organization reads its webhook subscriptions (cached).
        await job_uc.create_job(svc, user, _spec("n1", "n2"), known_nodes_only=True)
        for q in (n1, n2):
            q.get_nowait()
        before = dataclasses.replace(svc.db.counts)
        view = await job_uc.create_job(svc, user, _spec("n1", "n2"), known_nodes_only=True)
        after = svc.db.counts
        sent = [wire.decode(q.get_nowait()) for q in (n1, n2)]
    begin = 1 if svc.db.is_sqlite else 0  # SQLite's BEGIN is a statement jobyard sends
    # The nodes (shared lock), the job, its runs, its events and the creator's watch (the
    # notification observer): nothing read back.
    assert after.statements - before.statements == 5 + begin
    assert (after.begun - before.begun, after.commits - before.commits) == (1, 1)
    assert view.job.status is JobStatus.VOTING
    assert view.job.submitted_at is not None and view.job.deadline is not None
    assert {r.node_name: r.status for r in view.runs} == {
        "n1": NodeRunStatus.NEW,
        "n2": NodeRunStatus.NEW,
    }
    assert [(m.kind, m.job) for m in sent] == [("commit", view.job.id)] * 2  # type: ignore[attr-defined]
    # What was answered is what was written.
    got = await job_uc.get_job(svc, user, view.job.id)
    assert got.job == view.job
    assert sorted(got.runs, key=lambda r: r.id) == sorted(view.runs, key=lambda r: r.id)
    history = await job_uc.job_history(svc, user, view.job.id)
    assert [(e.type, e.from_status, e.to_status, e.actor) for e in history.items] == [
        ("job.created", None, "draft", user.actor),
        ("job.status", "draft", "new", user.actor),
        ("job.status", "new", "voting", None),
    ]


async def test_nodes_that_cannot_vote_are_unavailable_from_birth(counted: Services) -> None:
    svc = counted
    user, agent = await people(svc)
    for name in ("up", "down"):
        await nodes.node_connected(svc, agent, hello(name), "r1")
    await nodes.node_gone(svc, agent.org_id, "down", "goodbye")
    view = await job_uc.create_job(svc, user, _spec("up", "down", "ghost", quorum="1"))
    assert view.job.status is JobStatus.VOTING
    runs = {r.node_name: r for r in view.runs}
    assert runs["up"].status is NodeRunStatus.NEW
    assert (runs["down"].status, runs["down"].reason) == (NodeRunStatus.UNAVAILABLE, OFFLINE_REASON)
    assert (runs["ghost"].status, runs["ghost"].reason) == (
        NodeRunStatus.UNAVAILABLE,
        UNKNOWN_REASON,
    )
    events = await job_uc.job_events(svc, user, view.job.id)
    lost = [(e.node_name, e.subject_id, e.to_status) for e in events if e.kind == "node_run"]
    assert sorted(lost) == sorted(
        [("down", runs["down"].id, "unavailable"), ("ghost", runs["ghost"].id, "unavailable")]
    )


async def test_a_job_no_node_can_run_takes_the_starters_way(counted: Services) -> None:
    """Every node unavailable: the first round goes past voting, so the job is written
    ``new`` and the starter ends it exactly as before."""
    svc = counted
    user, _ = await people(svc)
    view = await job_uc.create_job(svc, user, _spec("ghost"))
    assert view.job.status is JobStatus.NEW
    await dispatch.start_jobs(svc)
    got = await job_uc.get_job(svc, user, view.job.id)
    assert got.job.status is JobStatus.QUORUM_FAILED
    assert [r.reason for r in got.runs] == [UNKNOWN_REASON]


async def test_without_a_dispatcher_the_job_waits_in_new(any_svc: Services) -> None:
    """``jobyard admin`` or a bare ``Services``: nobody would send the commits, so the job
    is left ``new`` for a dispatcher's starter, which opens voting."""
    svc = dataclasses.replace(any_svc, clock=FakeClock())
    assert not svc.runtime.dispatching
    user, agent = await people(svc)
    await nodes.node_connected(svc, agent, hello("n1"), "r1")
    view = await job_uc.create_job(svc, user, _spec("n1"))
    assert view.job.status is JobStatus.NEW
    async with svc.hub.subscribe(node_topic(agent.org_id, "n1")) as n1:
        assert await dispatch.start_jobs(svc) == 1
        assert wire.decode(n1.get_nowait()).kind == "commit"
    got = await job_uc.get_job(svc, user, view.job.id)
    assert got.job.status is JobStatus.VOTING
