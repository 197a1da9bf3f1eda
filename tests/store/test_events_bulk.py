"""Store contract: appending many events at once returns them with their ids, in order.

Runs on SQLite and on PostgreSQL (the two take different paths)."""

from __future__ import annotations

import datetime as dt

from jobyard.service.context import Services
from jobyard.service.events import event_row

T0 = dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.UTC)


async def test_append_many_returning_keeps_order_and_ids(any_svc: Services) -> None:
    async with any_svc.db.begin() as tx:
        org = await tx.accounts.insert_org("a", "A", T0)
        first = await tx.events.append(
            event_row(org_id=org.id, kind="job", subject_id=1, type="job.created", now=T0)
        )
        rows = [
            event_row(
                org_id=org.id,
                kind="node_run",
                subject_id=i,
                job_id=1,
                node_name=f"n{i}",
                type="node_run.status",
                from_status="new",
                to_status="ready",
                data={"i": i} if i % 2 else None,
                now=T0,
            )
            for i in range(1200)
        ]
        added = await tx.events.append_many_returning(rows)
        assert await tx.events.append_many_returning([]) == []
    assert [e.subject_id for e in added] == list(range(1200))
    assert [e.node_name for e in added] == [f"n{i}" for i in range(1200)]
    ids = [e.id for e in added]
    assert ids == sorted(ids) and len(set(ids)) == 1200 and ids[0] > first.id
    assert added[1].data == {"i": 1} and added[2].data is None
    assert added[0].created_at == T0

    async with any_svc.db.begin() as tx:
        again = await tx.events.append_many_returning(rows[:3])
    assert [e.subject_id for e in again] == [0, 1, 2] and again[0].id > ids[-1]
