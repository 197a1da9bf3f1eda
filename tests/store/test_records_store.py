"""Store contract: events, nodes, clusters, files, transactions, migrations, time.

Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jobyard.service.context import Services
from jobyard.service.events import event_row
from jobyard.store import Database
from jobyard.store.tables import metadata

T0 = dt.datetime(2026, 2, 3, 4, 5, 6, 789012, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


async def orgs(svc: Services) -> tuple[int, int]:
    async with svc.db.begin() as tx:
        a = await tx.accounts.insert_org("a", "A", T0)
        b = await tx.accounts.insert_org("b", "B", T0)
    return a.id, b.id


async def test_events(any_svc: Services) -> None:
    a, b = await orgs(any_svc)

    def row(org: int, subject: int, type: str, **kw: Any) -> dict[str, Any]:
        return event_row(org_id=org, kind="job", subject_id=subject, type=type, now=at(0), **kw)

    async with any_svc.db.begin() as tx:
        assert await tx.events.last_id() == 0
        e1 = await tx.events.append(
            row(a, 1, "job.created", job_id=1, to_status="draft", actor="ann@x.io")
        )
        e2 = await tx.events.append(
            row(
                a,
                1,
                "job.status",
                job_id=1,
                from_status="draft",
                to_status="new",
                reason="submitted",
                data={"n": [1, "ü"]},
            )
        )
        await tx.events.append_many(
            [
                {**row(a, 7, "node_run.status", job_id=1, node_name="web1"), "kind": "node_run"},
                row(b, 2, "job.created", job_id=2),
                {**row(a, 1, "job.updated", job_id=1), "created_at": at(-100)},
            ]
        )
        await tx.events.append_many([])
    assert e2.id > e1.id
    assert (e2.from_status, e2.to_status, e2.reason, e2.data, e2.created_at) == (
        "draft",
        "new",
        "submitted",
        {"n": [1, "ü"]},
        at(0),
    )
    async with any_svc.db.read() as tx:
        last = await tx.events.last_id()
        assert last == e1.id + 4
        page = await tx.events.of_subject("job", 1)
        assert [e.type for e in page.items] == ["job.created", "job.status", "job.updated"]
        assert page.total == 3
        page = await tx.events.of_subject("job", 1, types=("job.status", "job.created"))
        assert [e.id for e in page.items] == [e1.id, e2.id] and page.total == 2
        page = await tx.events.of_subject("job", 1, offset=1, limit=1, newest_first=True)
        assert [e.id for e in page.items] == [e2.id] and page.total == 3
        assert (await tx.events.of_subject("node_run", 1)).total == 0
        of_job = await tx.events.of_job(1)
        assert [e.type for e in of_job] == [
            "job.created",
            "job.status",
            "node_run.status",
            "job.updated",
        ]
        assert [e.id for e in await tx.events.of_job(1, after_id=e2.id, limit=1)] == [e2.id + 1]
        assert [e.org_id for e in await tx.events.of_org(b)] == [b]
        assert len(await tx.events.of_org(a, after_id=e1.id)) == 3
    async with any_svc.db.begin() as tx:
        assert await tx.events.older_than(at(-1)) == 1  # the back-dated one
        await tx.events.delete_of_job(1)
    async with any_svc.db.read() as tx:
        assert await tx.events.of_job(1) == []
        assert len(await tx.events.of_job(2)) == 1


async def test_nodes(any_svc: Services) -> None:
    a, b = await orgs(any_svc)
    async with any_svc.db.begin() as tx:
        web2 = await tx.nodes.upsert(
            a,
            "web2",
            {
                "tags": ["web", "eu"],
                "cluster": "c1",
                "online": True,
                "busy": False,
                "incarnation": "i1",
                "replica": "r1",
                "last_heartbeat": at(0),
            },
            at(0),
        )
        web1 = await tx.nodes.upsert(
            a,
            "web1",
            {"tags": [], "cluster": None, "online": True, "busy": True, "last_heartbeat": at(-60)},
            at(0),
        )
        other = await tx.nodes.upsert(
            b, "web1", {"tags": [], "online": False, "busy": False}, at(0)
        )
    assert web2.tags == ["web", "eu"] and web2.created_at == at(0)
    assert other.id != web1.id  # node names are per organization
    async with any_svc.db.begin() as tx:
        again = await tx.nodes.upsert(a, "web2", {"incarnation": "i2", "busy": True}, at(5))
        assert again.id == web2.id
        assert (again.incarnation, again.busy, again.tags, again.created_at, again.updated_at) == (
            "i2",
            True,
            ["web", "eu"],
            at(0),
            at(5),
        )
        await tx.nodes.update(web1.id, {"online": False})
        await tx.nodes.heartbeat([web2.id], at(10))
        await tx.nodes.heartbeat([], at(10))
    async with any_svc.db.read() as tx:
        assert [n.name for n in await tx.nodes.all(a)] == ["web1", "web2"]
        assert [n.name for n in await tx.nodes.all(a, cluster="c1")] == ["web2"]
        assert [n.name for n in await tx.nodes.all(b)] == ["web1"]
        got = await tx.nodes.get(a, "web2")
        assert got is not None and got.last_heartbeat == at(10)
        assert await tx.nodes.get(a, "web9") is None
        assert sorted(n.name for n in await tx.nodes.by_names(a, ["web1", "web2", "x"])) == [
            "web1",
            "web2",
        ]
        assert [n.name for n in await tx.nodes.silent_since(at(11))] == ["web2"]
        assert await tx.nodes.silent_since(at(9)) == []
        assert [n.name for n in await tx.nodes.online_of_replica("r1")] == ["web2"]
        assert await tx.nodes.online_of_replica("r2") == []


async def test_clusters(any_svc: Services) -> None:
    a, b = await orgs(any_svc)

    def values(org: int, name: str, status: str) -> dict[str, Any]:
        return {
            "org_id": org,
            "name": name,
            "status": status,
            "desired_nodes": 2,
            "created_at": at(0),
            "updated_at": at(0),
        }

    async with any_svc.db.begin() as tx:
        c1 = await tx.clusters.insert(values(a, "etl", "pending"))
        c2 = await tx.clusters.insert(values(a, "old", "terminated"))
        c3 = await tx.clusters.insert(values(b, "etl", "available"))
    # Server defaults are applied on both databases.
    assert (c1.description, c1.type, c1.terminate_on_idle, c1.time_to_idle) == (
        "",
        "production",
        False,
        3600,
    )
    async with any_svc.db.begin() as tx:
        moved = await tx.clusters.update(c1.id, {"status": "available", "available_since": at(3)})
        assert (moved.status, moved.available_since) == ("available", at(3))
    async with any_svc.db.read() as tx:
        assert await tx.clusters.get(a, c1.id) == moved
        assert await tx.clusters.get(b, c1.id) is None
        assert (await tx.clusters.by_name(b, "etl")) == c3
        assert [c.id for c in await tx.clusters.all(a)] == [c1.id, c2.id]
        assert [c.id for c in await tx.clusters.all(a, ["terminated"])] == [c2.id]
        assert [c.id for c in await tx.clusters.all_live()] == [c1.id, c3.id]


async def test_files(any_svc: Services) -> None:
    a, b = await orgs(any_svc)
    async with any_svc.db.begin() as tx:
        job = await tx.jobs.insert(
            {
                "org_id": a,
                "command": "x",
                "target": {"nodes": ["n"]},
                "quorum": "1",
                "env": {},
                "status": "complete",
                "meta": {},
                "created_at": at(0),
                "updated_at": at(0),
            }
        )

        def f(name: str) -> dict[str, Any]:
            return {
                "org_id": a,
                "job_id": job.id,
                "node_name": "n",
                "name": name,
                "size": 3,
                "md5": "0" * 32,
                "storage_key": f"k/{name}",
                "created_at": at(0),
            }

        f1 = await tx.files.insert(f("out.txt"))
        f2 = await tx.files.insert(f("sub/dir/é.bin"))
    async with any_svc.db.read() as tx:
        assert await tx.files.of_job(job.id) == [f1, f2]
        assert await tx.files.get(a, f2.id) == f2
        assert await tx.files.get(b, f2.id) is None
    async with any_svc.db.begin() as tx:
        assert await tx.files.delete_of_job(job.id) == ["k/out.txt", "k/sub/dir/é.bin"]
    async with any_svc.db.read() as tx:
        assert await tx.files.of_job(job.id) == []


async def test_a_failed_transaction_writes_nothing_and_skips_after_commit(
    any_svc: Services,
) -> None:
    called: list[str] = []
    with pytest.raises(RuntimeError):
        async with any_svc.db.begin() as tx:
            await tx.accounts.insert_org("gone", "Gone", T0)
            tx.after_commit(lambda: called.append("rolled back"))
            raise RuntimeError("boom")
    async with any_svc.db.begin() as tx:
        await tx.accounts.insert_org("kept", "Kept", T0)
        tx.after_commit(lambda: called.append("committed"))
    async with any_svc.db.read() as tx:
        assert await tx.accounts.org_by_name("gone") is None
        assert await tx.accounts.org_by_name("kept") is not None
    assert called == ["committed"]


async def test_times_are_aware_utc_and_naive_times_are_refused(any_svc: Services) -> None:
    plus5 = dt.timezone(dt.timedelta(hours=5, minutes=30))
    async with any_svc.db.begin() as tx:
        org = await tx.accounts.insert_org("t", "T", T0.astimezone(plus5))
    assert org.created_at == T0 and org.created_at.tzinfo is dt.UTC
    with pytest.raises(sa.exc.StatementError, match="naive"):
        async with any_svc.db.begin() as tx:
            await tx.accounts.insert_org("n", "N", dt.datetime(2026, 1, 1))


async def test_migrations_build_exactly_the_declared_schema(any_svc: Services) -> None:
    """Every table and column in the metadata exists as declared, and nothing else."""

    def diff(conn: sa.Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return [
            d
            for d in compare_metadata(ctx, metadata)
            if not (
                isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version"
            )
        ]

    async with any_svc.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_migrate_twice_is_harmless(any_svc: Services) -> None:
    await any_svc.db.migrate()
    db = Database(any_svc.db.url)
    try:
        await db.migrate()
        await db.ping()
    finally:
        await db.close()
