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
