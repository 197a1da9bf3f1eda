"""The replica bridge carries hub messages between processes through PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from jobyard.dispatch.bridge import Bridge
from jobyard.service.context import Services
from jobyard.service.events import record
from jobyard.settings import Settings
from jobyard.store import Database
from tests.store.event_rows import run_moves


@contextlib.asynccontextmanager
async def replica(url: str, settings: Settings, name: str, nodes: set) -> AsyncIterator[Services]:
    db = Database(url)
    await db.migrate()
    svc = Services(db=db, settings=settings.replace(database_url=url))
    try:
        async with Bridge(svc, name, lambda org, node: (org, node) in nodes).running():
            yield svc
    finally:
        await db.close()


async def test_commands_and_events_cross_replicas(pg_url: str, settings: Settings) -> None:
    async with (
        replica(pg_url, settings, "a", {(1, "n1")}) as a,
        replica(pg_url, settings, "b", set()) as b,
    ):
        async with a.hub.subscribe("node:1:n1", maxsize=0) as to_node:
            # Nobody on B listens for n1: the frame crosses to A, which has the node.
            b.hub.publish("node:1:n1", '{"type":"run","job":7,"attempt":0}')
            frame = await asyncio.wait_for(to_node.get(), 5)
            assert frame == '{"type":"run","job":7,"attempt":0}'

        from jobyard.service import accounts

        org = await accounts.create_org(a, "acme")
        async with b.hub.subscribe(f"org:{org.id}") as seen_on_b:
            async with a.db.begin() as tx:
                event = await record(
                    a,
                    tx,
                    org_id=org.id,
                    kind="node",
                    subject_id=1,
                    type="node.status",
                    to_status="online",
                    now=a.clock.now(),
                )
            got = await asyncio.wait_for(seen_on_b.get(), 5)
            assert got.id == event.id and got.type == "node.status"


async def test_a_replica_ignores_its_own_notifications(pg_url: str, settings: Settings) -> None:
    async with replica(pg_url, settings, "a", {(1, "n1")}) as a:
        # Nobody listens locally, so the frame goes out; coming back, A must drop it.
        a.hub.publish("node:1:n1", "frame")
        async with a.hub.subscribe("node:1:n1", maxsize=0) as queue:
            await asyncio.sleep(0.5)
            assert queue.empty()


async def test_a_batch_of_events_is_told_only_where_a_stream_follows(
    pg_url: str, settings: Settings
) -> None:
    from jobyard.service import accounts
    from jobyard.service.events import Appended, job_topic, record_many

    async with (
        replica(pg_url, settings, "a", set()) as a,
        replica(pg_url, settings, "b", set()) as b,
        replica(pg_url, settings, "c", set()) as c,
    ):
        org = await accounts.create_org(a, "acme")
        rows = run_moves(org.id, 41, 700, a.clock.now())
        quiet_on_c = c.hub.published
        async with b.hub.subscribe(job_topic(41), maxsize=0) as seen_on_b:
            async with a.db.begin() as tx:
                await record_many(a, tx, rows)
            told = await asyncio.wait_for(seen_on_b.get(), 5)
            # One notice for the batch, not the 700 events: the stream reads them by id.
            assert isinstance(told, Appended) and told.org == org.id and told.jobs == {41}
            assert told.kinds == {"node_run"} and not told.ended
            async with b.db.read() as tx:
                assert len(await tx.events.of_job(41, limit=1000)) == 700
            await asyncio.sleep(0.3)
            assert seen_on_b.empty()
        # C follows nothing: nothing was published there.
        assert c.hub.published == quiet_on_c
