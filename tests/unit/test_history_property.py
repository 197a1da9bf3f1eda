"""Any sequence of job operations through the service records exactly one ``job.status``
event per status change, and one ``node_run.status`` event per node-run change: the
history is the list of transitions, nothing more, nothing less."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Conflict, InvalidTransition
from jobyard.domain.jobs import (
    JOB_TRANSITIONS,
    RUN_TRANSITIONS,
    JobStatus,
    NodeRunStatus,
    next_job_status,
)
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts
from jobyard.service import jobs as uc
from jobyard.service.context import Services
from jobyard.service.transitions import RunMove, apply, move_job

NODES = ("n1", "n2", "n3")

ops = st.lists(
    st.one_of(
        st.tuples(st.just("submit")),
        st.tuples(st.just("stop")),
        st.tuples(
            st.just("rename"),
            st.text(
                st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                min_size=1,
                max_size=8,
            ),
        ),
        st.tuples(st.just("move"), st.sampled_from(list(JobStatus))),
        st.tuples(st.just("run"), st.sampled_from(NODES), st.sampled_from(list(NodeRunStatus))),
        st.tuples(st.just("settle")),
    ),
    max_size=25,
)


@dataclass
class Model:
    status: JobStatus
    runs: dict[str, NodeRunStatus] = field(default_factory=dict)
    transitions: list[tuple[str, str]] = field(default_factory=list)
    run_transitions: list[tuple[str, str, str]] = field(default_factory=list)

    def move(self, target: JobStatus) -> bool:
        if target not in JOB_TRANSITIONS[self.status]:
            return False
        self.transitions.append((self.status.value, target.value))
        self.status = target
        return True

    def move_run(self, node: str, target: NodeRunStatus) -> bool:
        current = self.runs.get(node)
        if current is None or target not in RUN_TRANSITIONS[current]:
            return False
        self.run_transitions.append((node, current.value, target.value))
        self.runs[node] = target
        return True


async def _principal(svc: Services) -> Principal:
    async with svc.db.read() as tx:
        org = await tx.accounts.org_by_name("props")
    if org is None:
        await accounts.create_org(svc, "props")
        await accounts.create_user(svc, "props", "p@example.com", Role.ADMIN)
    issued = await accounts.create_token(svc, "props", "p@example.com")
    return await accounts.authenticate(svc, issued.secret)


async def step(
    svc: Services, who: Principal, job_id: int, op: tuple[object, ...], m: Model
) -> None:
    kind = op[0]
    if kind == "submit":
        if m.status is JobStatus.DRAFT:
            await uc.submit_job(svc, who, job_id)
            m.move(JobStatus.NEW)
            m.runs = dict.fromkeys(NODES, NodeRunStatus.NEW)
        else:
            with pytest.raises(Conflict):
                await uc.submit_job(svc, who, job_id)
    elif kind == "stop":
        if m.status.active:
            await uc.stop_job(svc, who, job_id)
            m.move(JobStatus.ABORTED)
            for node, status in list(m.runs.items()):
                if not status.terminal:
                    m.move_run(node, NodeRunStatus.ABORTED)
        else:
            with pytest.raises(Conflict):
                await uc.stop_job(svc, who, job_id)
    elif kind == "rename":
        await uc.update_job(svc, who, job_id, {"name": op[1]})
    elif kind == "move":
        target = op[1]
        assert isinstance(target, JobStatus)
        async with svc.db.begin() as tx:
            job = await tx.jobs.get(who.org_id, job_id)
            assert job is not None
            if target in JOB_TRANSITIONS[job.status]:
                assert await move_job(svc, tx, job, target, actor="prop") is not None
            else:
                with pytest.raises(InvalidTransition):
                    await move_job(svc, tx, job, target, actor="prop")
        m.move(target)
    elif kind == "run":
        node, target = op[1], op[2]
        assert isinstance(node, str) and isinstance(target, NodeRunStatus)
        async with svc.db.begin() as tx:
            run = await tx.jobs.run(job_id, node)
            moved = False
            if run is not None:
                try:
                    done = await apply(svc, tx, run_changes=[RunMove.of(run, target, actor="prop")])
                except InvalidTransition:
                    done = None
                moved = done is not None and done.runs == [run.id]
        assert moved == m.move_run(node, target)
    elif kind == "settle":
        # What the dispatcher does after votes and results: apply the implied move.
        async with svc.db.begin() as tx:
            job = await tx.jobs.get(who.org_id, job_id)
            assert job is not None
            runs = [r.status for r in await tx.jobs.runs(job_id)]
            required = Quorum.parse(job.quorum).required(len(runs))
            nxt = next_job_status(job.status, runs, required)
            if nxt is not None:
                assert await move_job(svc, tx, job, nxt, actor="prop") is not None
        if nxt is not None:
            assert m.move(nxt)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(draft=st.booleans(), quorum=st.sampled_from(["100%", "1", "2", "50%"]), steps=ops)
async def test_history_is_exactly_the_transitions(
    svc: Services, draft: bool, quorum: str, steps: list[tuple[object, ...]]
) -> None:
    who = await _principal(svc)
    spec = JobSpec(target=Target(nodes=NODES), command="true", quorum=Quorum.parse(quorum))
    view = await uc.create_job(svc, who, spec, draft=draft)
    job_id = view.job.id
    m = Model(JobStatus.DRAFT)
    if not draft:
        m.move(JobStatus.NEW)
        m.runs = dict.fromkeys(NODES, NodeRunStatus.NEW)
    for op in steps:
        await step(svc, who, job_id, op, m)

    async with svc.db.read() as tx:
        job = await tx.jobs.get(who.org_id, job_id)
        events = await tx.events.of_job(job_id, limit=10_000)
        runs = {r.node_name: r.status for r in await tx.jobs.runs(job_id)}
    assert job is not None
    assert job.status is m.status
    assert runs == m.runs
    job_moves = [(e.from_status, e.to_status) for e in events if e.type == "job.status"]
    assert job_moves == m.transitions
    run_moves = [
        (e.node_name, e.from_status, e.to_status) for e in events if e.type == "node_run.status"
    ]
    assert run_moves == m.run_transitions
    # The chain is unbroken: each move starts where the previous one ended.
    chain = [JobStatus.DRAFT.value] + [to for _, to in job_moves]
    assert [frm for frm, _ in job_moves] == chain[:-1]
    # The paginated history shows the creation and then exactly these moves.
    history = await uc.job_history(svc, who, job_id, limit=100)
    assert history.total == 1 + len(job_moves)
    assert [e.type for e in history.items] == ["job.created"] + ["job.status"] * len(job_moves)
    assert [(e.from_status, e.to_status) for e in history.items[1:]] == job_moves
    if m.status.terminal:
        assert job.finished_at is not None
