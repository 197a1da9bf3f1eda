"""Recording transitions: every state change writes an event in the same transaction.

Observers run inside that transaction, so what they write (notification outbox rows,
retry bookkeeping, queued trigger runs) commits or rolls back with the event itself.
After commit, the event is published on the hub for streams and wake-ups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobyard.domain.records import Event, Job
from jobyard.store import Tx

if TYPE_CHECKING:
    from jobyard.service.context import Services

Observer = Callable[["Services", Tx, Event], Awaitable[None]]
ManyObserver = Callable[["Services", Tx, Sequence[Event]], Awaitable[None]]


@dataclass(frozen=True)
class Observing:
    """An observer of recorded events, with its batch variant when it has one: ``many``
    does for the events of one ``record_many`` what ``one`` does for each of them.

    Which observers run is composed in one place (service/observers.py) and handed to
    ``Services``; nothing registers itself on import."""

    one: Observer
    many: ManyObserver | None = None


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


async def record_job_event(
    svc: Services,
    tx: Tx,
    job: Job,
    type: str,
    *,
    actor: str | None,
    now: dt.datetime | None = None,
    **fields: Any,
) -> Event:
    """Record an event about a job (its subject and its job are the job itself)."""
    return await record(
        svc,
        tx,
        org_id=job.org_id,
        kind="job",
        subject_id=job.id,
        job_id=job.id,
        type=type,
        actor=actor,
        now=now or svc.clock.now(),
        **fields,
    )


def publish(svc: Services, event: Event) -> None:
    svc.hub.publish(f"org:{event.org_id}", event)
    if event.job_id is not None:
        svc.hub.publish(f"job:{event.job_id}", event)
    svc.hub.publish("events", event)


async def record(svc: Services, tx: Tx, **fields: Any) -> Event:
    """Append an event, let observers act in the same transaction, publish after commit."""
    event = await tx.events.append(event_row(**fields))
    for observer in svc.observers:
        await observer.one(svc, tx, event)
    tx.after_commit(lambda: publish(svc, event))
    return event


async def record_many(svc: Services, tx: Tx, rows: Sequence[dict[str, Any]]) -> list[Event]:
    """Append many events in one statement (rows from ``event_row``); observers act on them
    in the same transaction (each observer's batch variant when it has one); publish after
    commit."""
    events = await tx.events.append_many_returning(rows)
    for observer in svc.observers:
        if observer.many is not None:
            await observer.many(svc, tx, events)
            continue
        for event in events:
            await observer.one(svc, tx, event)

    def publish_all() -> None:
        for event in events:
            publish(svc, event)

    tx.after_commit(publish_all)
    return events
