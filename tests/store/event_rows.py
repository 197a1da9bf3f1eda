"""Rows of events as a round writes them (``service.events.event_row``), for store tests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobyard.service.events import event_row


def run_moves(
    org_id: int, job_id: int, n: int, now: dt.datetime, *, end: str | None = None
) -> list[dict[str, Any]]:
    """n node runs of one job succeeding, then (with ``end``) the job moving there."""
    rows = [
        event_row(
            org_id=org_id,
            kind="node_run",
            subject_id=1000 + i,
            job_id=job_id,
            node_name=f"n{i}",
            type="node_run.status",
            from_status="running",
            to_status="succeeded",
            data={"exit_code": 0},
            now=now,
        )
        for i in range(n)
    ]
    if end is not None:
        common = {"org_id": org_id, "kind": "job", "subject_id": job_id, "job_id": job_id}
        rows.append(
            event_row(**common, type="job.status", from_status="running", to_status=end, now=now)
        )
    return rows
