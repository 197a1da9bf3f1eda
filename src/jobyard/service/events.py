"""Recording transitions: every state change writes an event in the same transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobyard.domain.records import Event
from jobyard.store import Tx


def event_row(
    *,
    org_id: int,
    kind: str,
    subject_id: int,
    type: str,
    now: dt.datetime,
    job_id: int | None = None,
    node_name: str | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "org_id": org_id,
        "kind": kind,
        "subject_id": subject_id,
        "job_id": job_id,
        "node_name": node_name,
        "type": type,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "data": data,
        "created_at": now,
    }


async def record(tx: Tx, publish: Any = None, **fields: Any) -> Event:
    """Append an event; after commit, publish it on the org's and the job's topics."""
    event = await tx.events.append(event_row(**fields))
    if publish is not None:
        tx.after_commit(lambda: publish(event))
    return event
