"""Store contract, jobs and node runs: insert, get, pages with every filter, stable order,
compare-and-set moves, output capping. Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.records import Job
from jobyard.service.context import Services
from jobyard.store import Tx, reads
from jobyard.store.jobs import SORTABLE, JobFilter, RunWrite

T0 = dt.datetime(2026, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def job_row(org_id: int, user_id: int | None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "org_id": org_id,
        "name": None,
        "description": "",
        "command": "true",
        "argv": None,
        "target": {"nodes": ["a"]},
        "quorum": "100%",
        "run_timeout": 60,
        "env": {},
        "dir": None,
        "capture_output": True,
        "status": "new",
        "attempt": 0,
        "meta": {},
        "created_by": user_id,
        "created_at": T0,
        "updated_at": T0,
    }
    row.update(kw)
    return row


class World:
    org: int
    other_org: int
    ann: int
    bob: int


async def world(svc: Services) -> World:
    w = World()
    async with svc.db.begin() as tx:
        w.org = (await tx.accounts.insert_org("o", "O", T0)).id
        w.other_org = (await tx.accounts.insert_org("p", "P", T0)).id
        w.ann = (await tx.accounts.insert_user("ann@x.io", "Ann", None, T0)).id
        w.bob = (await tx.accounts.insert_user("bob@x.io", "Bob", None, T0)).id
        await tx.accounts.upsert_membership(w.org, w.ann, Role.USER, T0)
        await tx.accounts.upsert_membership(w.org, w.bob, Role.USER, T0)
    return w


async def insert(tx: Tx, row: dict[str, Any], nodes: list[str] | None = None) -> Job:
    job = await tx.jobs.insert(row)
    await tx.jobs.insert_runs(job, nodes if nodes is not None else ["a"], row["created_at"])
    return job


async def test_insert_and_get(any_svc: Services) -> None:
    w = await world(any_svc)
    row = job_row(
        w.org,
        w.ann,
        name="deploy",
        argv=["echo", "hé llo"],
        command="echo 'hé llo'",
        env={"A": "1", "B": "ü"},
        target={"tags": ["web"], "count": 2},
        meta={"k": [1, 2]},
        dir="/srv",
        capture_output=False,
        run_timeout=None,
    )
    async with any_svc.db.begin() as tx:
        job = await insert(tx, row, ["web2", "web1"])
    assert job.id > 0 and job.status is JobStatus.NEW
    for key, value in row.items():
        got = getattr(job, key)
        assert (got.value if key == "status" else got) == value, key
    assert (job.kind, job.state, job.result, job.submitted_at) == ("script", None, None, None)
    async with any_svc.db.read() as tx:
        assert await tx.jobs.get(w.org, job.id) == job
        assert await tx.jobs.get(w.other_org, job.id) is None  # organizations never mix
        assert await tx.jobs.get_any(job.id) == job
        assert await tx.jobs.get(w.org, job.id + 1000) is None
        runs = await tx.jobs.runs(job.id)
        assert [(r.node_name, r.status, r.attempt) for r in runs] == [
            ("web1", NodeRunStatus.NEW, 0),
            ("web2", NodeRunStatus.NEW, 0),
        ]
        assert runs[0].truncated is False
        assert await tx.jobs.run(job.id, "web2") == runs[1]
        assert await tx.jobs.run(job.id, "web3") is None
        assert (await tx.jobs.runs_of_jobs([job.id, 999])) == {job.id: runs, 999: []}
        assert await tx.jobs.runs_of_jobs([]) == {}


async def test_by_name_is_the_newest(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        await insert(tx, job_row(w.org, w.ann, name="nightly"))
        newest = await insert(tx, job_row(w.org, w.ann, name="nightly"))
        await insert(tx, job_row(w.other_org, None, name="nightly"))
    async with any_svc.db.read() as tx:
        found = await tx.jobs.by_name(w.org, "nightly")
        assert found is not None and found.id == newest.id
        assert await tx.jobs.by_name(w.org, "Nightly") is None


async def ids(svc: Services, org: int, flt: JobFilter, **kw: Any) -> list[int]:
    async with svc.db.read() as tx:
        page = await tx.jobs.page(org, flt, limit=100, **kw)
        runs = await tx.jobs.runs_of_jobs([j.id for j in page.items])
    assert page.total == len(page.items)
    # The API's one-statement read (store/reads.py) finds the same jobs, runs and total.
    async with svc.db.read(snapshot=False) as tx:
        fast = await reads.page_with_runs(reads.ConnRows(tx.conn), org, flt, limit=100, **kw)
    assert fast.items == [(j, runs[j.id]) for j in page.items]
    assert fast.total == page.total
    return [j.id for j in page.items]


async def test_page_filters(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        j1 = await insert(
            tx, job_row(w.org, w.ann, name="build 100%", status="complete"), ["n1", "n2"]
        )
        j2 = await insert(
            tx,
            job_row(w.org, w.bob, name="build_x", created_at=at(10), updated_at=at(30)),
            ["n2"],
        )
        j3 = await insert(
            tx,
            job_row(
                w.org, None, name="deploy", status="aborted", created_at=at(20), updated_at=at(20)
            ),
            ["n3"],
        )
        j4 = await insert(tx, job_row(w.org, w.ann, created_at=at(30), updated_at=at(31)), [])
        await insert(tx, job_row(w.other_org, None, name="build 100%"), ["n1"])
    everything = [j4.id, j3.id, j2.id, j1.id]
    assert await ids(any_svc, w.org, JobFilter()) == everything
    assert await ids(any_svc, w.org, JobFilter(statuses=["complete", "aborted"])) == [j3.id, j1.id]
    assert await ids(any_svc, w.org, JobFilter(statuses=["voting"])) == []
    assert await ids(any_svc, w.org, JobFilter(name="deploy")) == [j3.id]
    assert await ids(any_svc, w.org, JobFilter(name="build")) == []  # exact
    assert await ids(any_svc, w.org, JobFilter(name_contains="build")) == [j2.id, j1.id]
    # LIKE wildcards in the needle are literal characters.
    assert await ids(any_svc, w.org, JobFilter(name_contains="0%")) == [j1.id]
    assert await ids(any_svc, w.org, JobFilter(name_contains="d_x")) == [j2.id]
    assert await ids(any_svc, w.org, JobFilter(name_contains="%")) == [j1.id]
    assert await ids(any_svc, w.org, JobFilter(owner_id=w.ann)) == [j4.id, j1.id]
    assert await ids(any_svc, w.org, JobFilter(owner_id=w.bob)) == [j2.id]
    assert await ids(any_svc, w.org, JobFilter(node="n2")) == [j2.id, j1.id]
    assert await ids(any_svc, w.org, JobFilter(node="n9")) == []
    assert await ids(any_svc, w.org, JobFilter(created_after=at(10))) == [j4.id, j3.id, j2.id]
    assert await ids(any_svc, w.org, JobFilter(created_before=at(10))) == [j1.id]
    assert await ids(any_svc, w.org, JobFilter(created_after=at(10), created_before=at(30))) == [
        j3.id,
        j2.id,
    ]
    assert await ids(any_svc, w.org, JobFilter(updated_after=at(30))) == [j4.id, j2.id]
    assert await ids(any_svc, w.org, JobFilter(updated_before=at(20))) == [j1.id]
    assert await ids(any_svc, w.org, JobFilter(visible_ids=[j1.id, j3.id])) == [j3.id, j1.id]
    assert await ids(any_svc, w.org, JobFilter(visible_ids=[])) == []
    combined = JobFilter(statuses=["new"], name_contains="build", owner_id=w.bob, node="n2")
    assert await ids(any_svc, w.org, combined) == [j2.id]
    # Times in another zone mean the same instant.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert await ids(any_svc, w.org, JobFilter(created_after=at(10).astimezone(plus2))) == [
        j4.id,
        j3.id,
        j2.id,
    ]


async def test_stable_order_with_equal_timestamps(any_svc: Services) -> None:
    """Jobs created in the same microsecond page without gaps or repeats, by id."""
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        made = [(await insert(tx, job_row(w.org, w.ann))).id for _ in range(7)]
    for descending in (True, False):
        seen: list[int] = []
        for offset in range(0, 7, 3):
            async with any_svc.db.read() as tx:
                page = await tx.jobs.page(
                    w.org, JobFilter(), descending=descending, offset=offset, limit=3
                )
                fast = await reads.page_with_runs(
                    reads.ConnRows(tx.conn),
                    w.org,
                    JobFilter(),
                    descending=descending,
                    offset=offset,
                    limit=3,
                )
            assert page.total == fast.total == 7
            assert [j for j, _ in fast.items] == page.items
            seen += [j.id for j in page.items]
        assert seen == (sorted(made, reverse=True) if descending else sorted(made))


@pytest.mark.parametrize("sort", sorted(SORTABLE))
async def test_sorting(any_svc: Services, sort: str) -> None:
    w = await world(any_svc)
    specs = [
        ("b", "new", at(2), at(5)),
        ("a", "running", at(1), at(9)),
        ("c", "aborted", at(3), at(1)),
        ("a", "complete", at(1), at(7)),
        (None, "voting", at(2), at(5)),
    ]
    async with any_svc.db.begin() as tx:
        for name, status, created, updated in specs:
            await insert(
                tx,
                job_row(
                    w.org, w.ann, name=name, status=status, created_at=created, updated_at=updated
                ),
            )
    async with any_svc.db.read() as tx:
        rows = (await tx.jobs.page(w.org, JobFilter(), limit=100)).items

    def key(j: Job) -> Any:
        # A job without a name sorts before every name, on both databases.
        value = getattr(j, sort)
        return (value is not None, value or "", j.id) if sort == "name" else (value, j.id)

    want_asc = [j.id for j in sorted(rows, key=key)]
    assert await ids(any_svc, w.org, JobFilter(), sort=sort, descending=False) == want_asc
    assert await ids(any_svc, w.org, JobFilter(), sort=sort, descending=True) == want_asc[::-1]


def _run_change(run_id: int, expected: str, status: str) -> RunWrite:
    return RunWrite(run_id, expected, status, None, None, dt.datetime.now(dt.UTC), None, None)


async def test_compare_and_set(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        job = await insert(tx, job_row(w.org, w.ann), ["a", "b"])
    async with any_svc.db.begin() as tx:
        assert await tx.jobs.set_status(job.id, JobStatus.NEW, {"status": "voting"}) is True
        # The second writer expected "new" too: it loses, nothing changes.
        assert await tx.jobs.set_status(job.id, JobStatus.NEW, {"status": "aborted"}) is False
        run = await tx.jobs.run(job.id, "a")
        assert run is not None
        assert await tx.jobs.move_runs([_run_change(run.id, "new", "ready")]) is True
        assert await tx.jobs.move_runs([_run_change(run.id, "new", "nacked")]) is False
        assert await tx.jobs.set_status(job.id + 99, JobStatus.NEW, {"status": "voting"}) is False
    async with any_svc.db.read() as tx:
        again = await tx.jobs.get(w.org, job.id)
        assert again is not None and again.status is JobStatus.VOTING
        assert [r.status for r in await tx.jobs.runs(job.id)] == [
            NodeRunStatus.READY,
            NodeRunStatus.NEW,
        ]
        assert [
            r.node_name for r in await tx.jobs.runs_of_node(w.org, "a", [NodeRunStatus.READY])
        ] == ["a"]
        assert await tx.jobs.runs_of_node(w.org, "a", [NodeRunStatus.NEW]) == []
        assert await tx.jobs.runs_of_node(w.other_org, "a", [NodeRunStatus.READY]) == []


async def test_update_delete_active_due(any_svc: Services) -> None:
    w = await world(any_svc)
    async with any_svc.db.begin() as tx:
        j1 = await insert(tx, job_row(w.org, w.ann, status="voting", deadline=at(1)))
        j2 = await insert(tx, job_row(w.org, w.ann, status="running", deadline=at(10)))
        j3 = await insert(tx, job_row(w.other_org, None, status="running", deadline=at(0)))
        await insert(tx, job_row(w.org, w.ann, status="complete"))
    async with any_svc.db.begin() as tx:
        updated = await tx.jobs.update(j1.id, {"name": "renamed", "updated_at": at(2)})
        assert (updated.name, updated.updated_at, updated.command) == ("renamed", at(2), "true")
        active = await tx.jobs.active([JobStatus.VOTING, JobStatus.RUNNING])
        assert [j.id for j in active] == [j1.id, j2.id, j3.id]  # every organization, oldest first
        assert [j.id for j in await tx.jobs.active([JobStatus.RUNNING], limit=1)] == [j2.id]
        assert sorted(await tx.jobs.due(at(5), [JobStatus.VOTING, JobStatus.RUNNING])) == [
            j1.id,
            j3.id,
        ]
        assert await tx.jobs.due(at(5), [JobStatus.VOTING]) == [j1.id]
        await tx.jobs.delete(j1.id)
    async with any_svc.db.read() as tx:
        assert await tx.jobs.get_any(j1.id) is None
        assert await tx.jobs.runs(j1.id) == []
        assert await tx.jobs.get_any(j2.id) is not None
