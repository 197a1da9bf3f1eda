"""Retention policies: finished jobs and their output go after the days a policy keeps them."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.domain.outputs import STREAMS, OutputCaps
from jobyard.service import retention
from jobyard.service.context import Services
from jobyard.service.outputs import stream_text
from jobyard.store.schema import events, jobs, node_runs
from tests.conftest import Account, Factory


@pytest.fixture
async def api(any_svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=any_svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _finished_job(
    svc: Services, api: httpx.AsyncClient, who: Account, days_ago: float
) -> int:
    """A job on web1 that ended ``days_ago`` days ago with output and a file."""
    made = await api.post(
        "/api/v1/jobs", json={"command": "echo hi", "nodes": ["web1"]}, headers=who.headers
    )
    assert made.status_code == 201, made.text
    job_id = int(made.json()["id"])
    ended = svc.clock.now() - dt.timedelta(days=days_ago)
    key, md5 = svc.files.put(b"report")
    async with svc.db.begin() as tx:
        await tx.conn.execute(
            jobs.update().where(jobs.c.id == job_id).values(status="complete", finished_at=ended)
        )
        await tx.conn.execute(
            node_runs.update()
            .where(node_runs.c.job_id == job_id)
            .values(status="succeeded", finished_at=ended)
        )
        run = await tx.jobs.run(job_id, "web1")
        assert run is not None
        for stream, text in (("stdout", "hi\n"), ("stderr", "warn\n")):
            await tx.outputs.append(run.id, stream, text, OutputCaps(100, 100))
        await tx.files.insert(
            {
                "org_id": (await tx.accounts.org_by_name(who.org)).id,  # type: ignore[union-attr]
                "job_id": job_id,
                "node_name": "web1",
                "name": "report.txt",
                "size": 6,
                "md5": md5,
                "storage_key": key,
                "created_at": ended,
            }
        )
    return job_id


async def test_a_policy_deletes_old_jobs_and_drops_old_output(
    any_svc: Services, api: httpx.AsyncClient
) -> None:
    factory = Factory(any_svc)
    org = await factory.org("acme")
    admin = await factory.account(org, Role.ADMIN)
    viewer = await factory.account(org, Role.VIEWER)
    other = await factory.account(await factory.org("rival"), Role.ADMIN)
    async with any_svc.db.begin() as tx:
        for who in (admin, other):
            found = await tx.accounts.org_by_name(who.org)
            assert found is not None
            await tx.nodes.upsert(
                found.id, "web1", {"tags": [], "online": True, "busy": False}, any_svc.clock.now()
            )
    ancient = await _finished_job(any_svc, api, admin, 100)
    old = await _finished_job(any_svc, api, admin, 20)
    fresh = await _finished_job(any_svc, api, admin, 1)
    theirs = await _finished_job(any_svc, api, other, 100)

    got = await api.get("/api/v1/retention", headers=viewer.headers)
    assert got.json() == {"keep_jobs_days": None, "keep_output_days": None}
    refused = await api.put(
        "/api/v1/retention", json={"keep_jobs_days": 30}, headers=viewer.headers
    )
    assert refused.status_code == 403
    for bad in (
        {"keep_jobs_days": 0},
        {"keep_output_days": -1},
        {"keep_jobs_days": 10**6},
        {"keep_jobs_days": "30"},
        {"keep": 3},
    ):
        r = await api.put("/api/v1/retention", json=bad, headers=admin.headers)
        assert r.status_code == 422, (bad, r.text)
    assert (await retention.apply_retention(any_svc)) == []  # no policy yet: nothing goes

    put = await api.put(
        "/api/v1/retention",
        json={"keep_jobs_days": 30, "keep_output_days": 7},
        headers=admin.headers,
    )
    assert put.status_code == 200, put.text
    applied = await retention.apply_retention(any_svc)
    assert [(a.jobs_deleted, a.outputs_cleared) for a in applied] == [(1, 1)]

    async def job(job_id: int) -> httpx.Response:
        return await api.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)

    assert (await job(ancient)).status_code == 404  # past 30 days: gone
    assert (await job(old)).status_code == 200  # kept, but its output is gone
    assert (await job(fresh)).status_code == 200
    async with any_svc.db.read() as tx:
        kept = {}
        for job_id in (old, fresh, theirs):
            run = await tx.jobs.run(job_id, "web1")
            assert run is not None
            kept[job_id] = [await stream_text(tx, run.id, s) for s in STREAMS]
        assert kept == {old: ["", ""], fresh: ["hi\n", "warn\n"], theirs: ["hi\n", "warn\n"]}
        assert await tx.files.of_job(old) == []
        assert len(await tx.files.of_job(fresh)) == 1
        recorded = (
            (
                await tx.conn.execute(
                    sa.select(events.c.data).where(events.c.type == "retention.applied")
                )
            )
            .scalars()
            .all()
        )
    assert recorded and recorded[0]["jobs_deleted"] == 1 and recorded[0]["outputs_cleared"] == 1
    # Another organization without a policy keeps everything.
    assert (await api.get(f"/api/v1/jobs/{theirs}", headers=other.headers)).status_code == 200
    # Applying again finds nothing more to do.
    assert await retention.apply_retention(any_svc) == []
