"""Store contract: many rows written at once come back as written, in the given order, on
SQLite (executemany and a read-back past a few rows) as on PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from jobyard.domain.jobs import NodeRunStatus
from jobyard.service.context import Services
from jobyard.store.rows import SQLITE_FEW_ROWS
from tests.store.test_events_bulk import T0


def job_values(org_id: int, status: str = "voting") -> dict[str, Any]:
    """The columns of a job written straight into the store."""
    return {
        "org_id": org_id,
        "command": "true",
        "target": {"nodes": []},
        "quorum": "100%",
        "run_timeout": 60,
        "env": {},
        "meta": {},
        "argv": [],
        "status": status,
        "attempt": 0,
        "created_at": T0,
        "updated_at": T0,
    }


@pytest.mark.parametrize("count", [3, SQLITE_FEW_ROWS + 1, 1200])
async def test_node_runs_written_at_once_come_back_in_order(any_svc: Services, count: int) -> None:
    async with any_svc.db.begin() as tx:
        org = await tx.accounts.insert_org("a", "A", T0)
        job = await tx.jobs.insert(job_values(org.id))
        rows = [
            {
                "job_id": job.id,
                "org_id": org.id,
                "node_name": f"n{i:05d}",
                "status": (NodeRunStatus.UNAVAILABLE if i % 7 == 0 else NodeRunStatus.NEW).value,
                "attempt": 0,
                "reason": "gone" if i % 7 == 0 else None,
                "created_at": T0,
                "updated_at": T0,
                "started_at": None,
                "finished_at": None,
            }
            for i in range(count)
        ]
        written = await tx.jobs.insert_runs_returning(rows)
        stored = await tx.jobs.runs(job.id)
    assert [r.node_name for r in written] == [row["node_name"] for row in rows]
    assert [r.reason for r in written] == [row["reason"] for row in rows]
    ids = [r.id for r in written]
    assert ids == sorted(ids) and len(set(ids)) == count
    assert sorted(written, key=lambda r: r.node_name) == stored
