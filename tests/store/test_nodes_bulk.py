"""Store contract: heartbeats and busy flags written for many nodes at once.

Runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt

from jobyard.service.context import Services

T0 = dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


async def test_heartbeat_and_set_busy_many(any_svc: Services) -> None:
    async with any_svc.db.begin() as tx:
        org = await tx.accounts.insert_org("a", "A", T0)
        made = [
            await tx.nodes.upsert(
                org.id, f"n{i}", {"tags": [], "online": True, "busy": i % 2 == 0}, T0
            )
            for i in range(6)
        ]
    ids = [n.id for n in made]
    later = T0 + dt.timedelta(seconds=5)
    async with any_svc.db.begin() as tx:
        await tx.nodes.heartbeat(ids[:4], later)
        await tx.nodes.set_busy(ids[:3], True)
        await tx.nodes.set_busy(ids[3:5], False)
        await tx.nodes.set_busy([], True)
    async with any_svc.db.read() as tx:
        got = {n.name: n for n in await tx.nodes.all(org.id)}
    assert [got[f"n{i}"].busy for i in range(6)] == [True, True, True, False, False, False]
    assert [got[f"n{i}"].last_heartbeat == later for i in range(6)] == [True] * 4 + [False] * 2
