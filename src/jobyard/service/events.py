"""Recording transitions: every state change writes an event in the same transaction.

Observers run inside that transaction, so what they write (notification outbox rows,
retry bookkeeping, queued trigger runs) commits or rolls back with the event itself.
After commit, the event is published on the hub for streams and wake-ups.

Events of a batch (``record_many``: a round's node runs, a scheduler pass's jobs) are
appended in one statement and published only to the topics someone listens to: an
observer is handed the events of the types it acts on (``Observing.acts_on``), a topic
with local listeners gets the events themselves, and the other replicas are told which
topics had news (``Appended``; streams read what they missed from the log by id). A batch
nobody observes and nobody follows is inserted without RETURNING and never read back.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobyard.domain.jobs import JobStatus
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
    # The event types it acts on (None: every type); events of other types are not even
    # built for it when a batch is recorded.
    acts_on: Callable[[str], bool] | None = None


# Hub topics of events: an organization's, a job's (with its node runs'), and "events",
# which only the replica bridge hears (it tells the other replicas).
EVENTS = "events"


def org_topic(org_id: int) -> str:
    return f"org:{org_id}"


def job_topic(job_id: int) -> str:
    return f"job:{job_id}"


@dataclass(frozen=True)
class Appended:
    """Events of one organization were appended that are not carried here: a stream reads
    them from the log (after the last id it has), a page knows from this what to refresh.
    Published on an event topic with listeners, and on ``EVENTS`` for the replica bridge."""

    org: int
    jobs: frozenset[int]
    kinds: frozenset[str]  # the events' kinds (job, node_run, node, cluster, ...)
    ended: frozenset[int]  # jobs that reached a terminal status among them

    def topics(self) -> list[str]:
        return [org_topic(self.org), *map(job_topic, sorted(self.jobs))]


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
    svc.hub.publish(org_topic(event.org_id), event)
    if event.job_id is not None:
        svc.hub.publish(job_topic(event.job_id), event)
    svc.hub.publish(EVENTS, event)


async def record(svc: Services, tx: Tx, **fields: Any) -> Event:
    """Append an event, let observers act in the same transaction, publish after commit."""
    event = await tx.events.append(event_row(**fields))
    for observer in svc.observers:
        await observer.one(svc, tx, event)
    tx.after_commit(lambda: publish(svc, event))
    return event


async def record_many(svc: Services, tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """Append many events (rows from ``event_row``) in log order, one statement per stretch
    of rows; observers act on the events of the types they act on, in the same transaction
    (each observer's batch variant when it has one); after commit, publish where someone
    listens.

    Ids are asked for (RETURNING, or the numbering under SQLite's write lock) and events
    built only for the rows an observer or a local listener needs."""
    if not rows:
        return
    hub = svc.hub
    types = {r["type"] for r in rows}
    wanted = [
        (o, frozenset(t for t in types if o.acts_on(t)) if o.acts_on is not None else None)
        for o in svc.observers
    ]
    observed = frozenset().union(*(t if t is not None else types for _, t in wanted))
    notices = _notices(rows)
    heard = {t for n in notices for t in n.topics() if hub.subscribers(t)}
    built: list[Event] = []
    if observed or heard:
        wants = [
            row["type"] in observed
            or (bool(heard) and (org_topic(row["org_id"]) in heard or _job_heard(row, heard)))
            for row in rows
        ]
        built = await _append(tx, rows, wants)
    else:
        await tx.events.append_many(rows)
    for observer, acts in wanted:
        mine = built if acts is None else [e for e in built if e.type in acts]
        if not mine:
            continue
        if observer.many is not None:
            await observer.many(svc, tx, mine)
            continue
        for event in mine:
            await observer.one(svc, tx, event)
    tx.after_commit(lambda: announce(svc, notices, built, heard))


async def _append(tx: Tx, rows: Sequence[dict[str, Any]], wants: Sequence[bool]) -> list[Event]:
    """Append ``rows`` in order; the wanted ones are built as events (with their ids).

    A stretch of rows nobody wants goes in by the store's plainest statement, with no ids
    asked for; a stretch of wanted ones with them. A 1,000-node round whose last event
    completes the job asks ids for that one event only."""
    built: list[Event] = []
    start = 0
    while start < len(rows):
        wanted = wants[start]
        end = start + 1
        while end < len(rows) and wants[end] is wanted:
            end += 1
        part = rows[start:end]
        if wanted:
            ids = await tx.events.append_many_ids(part)
            built += [Event(id=i, **row) for i, row in zip(ids, part, strict=True)]
        else:
            await tx.events.append_many(part)
        start = end
    return built


def _notices(rows: Sequence[dict[str, Any]]) -> list[Appended]:
    """What each organization's listeners are told of these rows."""
    jobs: dict[int, set[int]] = defaultdict(set)
    kinds: dict[int, set[str]] = defaultdict(set)
    ended: dict[int, set[int]] = defaultdict(set)
    for r in rows:
        org = r["org_id"]
        kinds[org].add(r["kind"])
        if r["job_id"] is not None:
            jobs[org].add(r["job_id"])
        if r["kind"] == "job" and r["type"] == "job.status" and JobStatus(r["to_status"]).terminal:
            ended[org].add(r["subject_id"])
    return [
        Appended(org, frozenset(jobs[org]), frozenset(k), frozenset(ended[org]))
        for org, k in kinds.items()
    ]


def _job_heard(row: dict[str, Any], heard: set[str]) -> bool:
    job = row["job_id"]
    return job is not None and job_topic(job) in heard


def announce(
    svc: Services, notices: Sequence[Appended], built: Sequence[Event], heard: set[str]
) -> None:
    """After commit: each topic with listeners gets its events (when they were built for
    it) or the notice that there are new ones; the replica bridge, if any, the notices."""
    hub = svc.hub
    by_topic: dict[str, list[Event]] = defaultdict(list)
    for event in built:
        topic = org_topic(event.org_id)
        if topic in heard:
            by_topic[topic].append(event)
        if event.job_id is not None and job_topic(event.job_id) in heard:
            by_topic[job_topic(event.job_id)].append(event)
    for notice in notices:
        for topic in notice.topics():
            if not hub.subscribers(topic):
                continue
            events = by_topic.get(topic)
            if events:
                for event in events:
                    hub.publish_local(topic, event)
            else:  # a listener that came after the events were recorded
                hub.publish_local(topic, notice)
        if hub.forward is not None:
            hub.forward(EVENTS, notice, False)
