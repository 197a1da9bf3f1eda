"""Rounds kept in memory by the engine's report batcher (service/rounds.Rounds), on SQLite
and PostgreSQL: loaded once, reused while they match the database, read again after
another writer moved a run, and rebuilt after a restart equal to what the database holds."""

from __future__ import annotations

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Principal
from jobyard.domain.rounds import JobRound
from jobyard.domain.targets import Target
from jobyard.service import accounts, dispatch, nodes
from jobyard.service import jobs as job_uc
from jobyard.service.context import Services
from jobyard.service.rounds import Report, Rounds, apply_reports
from tests.conftest import Factory

NODES = tuple(f"n{i}" for i in range(6))


async def _job_voting(svc: Services) -> tuple[Principal, Principal, int]:
    factory = Factory(svc)
    org = await factory.org()
    user = await accounts.authenticate(svc, (await factory.account(org, Role.ADMIN)).token)
    agent = await accounts.authenticate(svc, (await factory.account(org, Role.AGENT)).token)
    for name in NODES:
        hello = nodes.Hello(
            node=name, incarnation="i1", tags=[], cluster=None, running=[], pending=[], busy=False
        )
        await nodes.node_connected(svc, agent, hello, "r1")
    view = await job_uc.create_job(svc, user, JobSpec(target=Target(nodes=NODES), command="true"))
    await dispatch.start_jobs(svc)
    return user, agent, view.job.id


def _runs(rnd: JobRound) -> dict[str, tuple[int, NodeRunStatus, int, int | None]]:
    return {n: (r.id, r.status, r.attempt, r.exit_code) for n, r in rnd.runs.items()}


async def _fresh_round(svc: Services, job_id: int) -> JobRound:
    """The round as a restarted server (an empty ``Rounds``) builds it from the database."""
    async with svc.db.begin() as tx:
        job = await tx.jobs.get_any(job_id, for_update=True)
        assert job is not None
        return await Rounds().round_of(tx, job, svc.clock.now())


async def _kept_round(svc: Services, rounds: Rounds, job_id: int) -> JobRound:
    async with svc.db.begin() as tx:
        job = await tx.jobs.get_any(job_id, for_update=True)
        assert job is not None
        return await rounds.round_of(tx, job, svc.clock.now())


async def test_a_kept_round_is_loaded_once_and_matches_a_rebuilt_one(any_svc: Services) -> None:
    svc = any_svc
    user, agent, job_id = await _job_voting(svc)
    org = agent.org_id
    rounds = Rounds()
    await apply_reports(svc, [Report("ack_commit", org, n, job_id, 0) for n in NODES[:3]], rounds)
    await apply_reports(svc, [Report("ack_commit", org, n, job_id, 0) for n in NODES[3:]], rounds)
    await apply_reports(svc, [Report("ack_run", org, n, job_id, 0) for n in NODES], rounds)
    await apply_reports(
        svc,
        [Report("result", org, n, job_id, 0, status="failed", exit_code=3) for n in NODES[:2]],
        rounds,
    )
    assert rounds.loads == 1 and job_id in rounds
    kept = await _kept_round(svc, rounds, job_id)
    assert rounds.loads == 1
    rebuilt = await _fresh_round(svc, job_id)
    assert _runs(kept) == _runs(rebuilt)
    assert kept.status is rebuilt.status is JobStatus.RUNNING
    assert {s for _, s, _, _ in _runs(rebuilt).values()} == {
        NodeRunStatus.FAILED,
        NodeRunStatus.RUNNING,
    }
    # The database says the same, run by run.
    runs = (await job_uc.get_job(svc, user, job_id)).runs
    assert {r.node_name: (r.id, r.status, r.attempt, r.exit_code) for r in runs} == _runs(kept)


async def test_a_round_moved_by_another_writer_is_read_again(any_svc: Services) -> None:
    svc = any_svc
    user, agent, job_id = await _job_voting(svc)
    org = agent.org_id
    rounds = Rounds()
    await apply_reports(svc, [Report("ack_commit", org, n, job_id, 0) for n in NODES], rounds)
    # Another writer (here: a lost node, applied without the engine's rounds) moves a run.
    await apply_reports(svc, [Report("lost", org, "n0", job_id, 0, reason="gone")])
    kept = await _kept_round(svc, rounds, job_id)
    assert rounds.loads == 2
    assert kept.runs["n0"].status is NodeRunStatus.CRASHED
    assert _runs(kept) == _runs(await _fresh_round(svc, job_id))
    # Results complete the job: its round is no longer kept.
    await apply_reports(svc, [Report("ack_run", org, n, job_id, 0) for n in NODES[1:]], rounds)
    await apply_reports(
        svc,
        [Report("result", org, n, job_id, 0, status="succeeded", exit_code=0) for n in NODES[1:]],
        rounds,
    )
    assert job_id not in rounds
    assert (await job_uc.get_job(svc, user, job_id)).job.status.terminal
