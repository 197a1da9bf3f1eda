"""Events of a batch are published only where someone listens, and observed by type.

Counted through the hub's own counters (``Hub.published``), never timed. Runs on SQLite
and on PostgreSQL (ids come from different paths)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Sequence
from typing import Any

from jobyard.domain.records import Event
from jobyard.service.context import Services
from jobyard.service.events import Appended, Observing, job_topic, org_topic, record_many
from jobyard.store import Tx
from tests.store.event_rows import run_moves


async def _org(svc: Services) -> int:
    async with svc.db.begin() as tx:
        org = await tx.accounts.insert_org("acme", "Acme", svc.clock.now())
    return org.id


def _rows(svc: Services, org_id: int, job_id: int, n: int) -> list[dict[str, Any]]:
    """n node-run moves of one job, then the job's end (as a round that completed it)."""
    return run_moves(org_id, job_id, n, svc.clock.now(), end="complete")


async def _record(svc: Services, rows: list[dict[str, Any]]) -> None:
    async with svc.db.begin() as tx:
        await record_many(svc, tx, rows)


async def _log(svc: Services, job_id: int) -> list[Event]:
    async with svc.db.read() as tx:
        return await tx.events.of_job(job_id, limit=5000)


async def test_a_batch_nobody_follows_is_stored_and_published_nowhere(any_svc: Services) -> None:
    svc = dataclasses.replace(any_svc, observers=())
    org = await _org(svc)
    before = svc.hub.published
    await _record(svc, _rows(svc, org, 7, 1000))
    assert svc.hub.published == before  # no topic had a listener: nothing published
    stored = await _log(svc, 7)
    assert len(stored) == 1001
    assert [e.node_name for e in stored[:3]] == ["n0", "n1", "n2"]
    assert stored[-1].type == "job.status" and stored[-1].to_status == "complete"


async def test_a_job_followed_gets_every_event_in_log_order(any_svc: Services) -> None:
    svc = dataclasses.replace(any_svc, observers=())
    org = await _org(svc)
    async with svc.hub.subscribe(job_topic(8), maxsize=0) as queue:
        before = svc.hub.published
        await _record(svc, _rows(svc, org, 8, 300))
        await _record(svc, _rows(svc, org, 9, 50))  # another job: not this topic's
        got = [queue.get_nowait() for _ in range(queue.qsize())]
    # Published once per event of the followed job, on its topic only.
    assert svc.hub.published - before == 301
    assert all(isinstance(e, Event) for e in got)
    assert got == await _log(svc, 8)
    assert [e.id for e in got] == sorted(e.id for e in got)


async def test_an_organization_followed_gets_its_events(any_svc: Services) -> None:
    svc = dataclasses.replace(any_svc, observers=())
    org = await _org(svc)
    async with svc.hub.subscribe(org_topic(org), maxsize=0) as queue:
        await _record(svc, _rows(svc, org, 10, 20))
        got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert got == await _log(svc, 10)


async def test_a_listener_that_came_after_the_insert_is_told_to_read_the_log(
    any_svc: Services,
) -> None:
    svc = dataclasses.replace(any_svc, observers=())
    org = await _org(svc)
    async with contextlib.AsyncExitStack() as stack:
        async with svc.db.begin() as tx:
            await record_many(svc, tx, _rows(svc, org, 11, 5))
            # Subscribed between the insert (nobody listened) and the commit: the stream's
            # replay ran before the commit, so it must hear that there is more to read.
            late = await stack.enter_async_context(svc.hub.subscribe(job_topic(11), maxsize=0))
        notices = [late.get_nowait() for _ in range(late.qsize())]
    assert len(notices) == 1
    notice = notices[0]
    assert isinstance(notice, Appended)
    assert notice.org == org and notice.jobs == {11} and notice.ended == {11}
    assert notice.kinds == {"node_run", "job"}


async def test_observers_get_the_events_of_their_types_in_batches(any_svc: Services) -> None:
    seen_all: list[list[Event]] = []
    seen_jobs: list[Event] = []

    async def every_many(_svc: Services, _tx: Tx, events: Sequence[Event]) -> None:
        seen_all.append(list(events))

    async def every_one(_svc: Services, _tx: Tx, event: Event) -> None:
        raise AssertionError("the batch variant is used")

    async def job_one(_svc: Services, _tx: Tx, event: Event) -> None:
        seen_jobs.append(event)

    svc = dataclasses.replace(
        any_svc,
        observers=(
            Observing(every_one, every_many),
            Observing(job_one, acts_on=lambda t: t == "job.status"),
        ),
    )
    org = await _org(svc)
    await _record(svc, _rows(svc, org, 12, 400))
    stored = await _log(svc, 12)
    assert seen_all == [stored]  # every event, once, in one batch, with its id
    assert seen_jobs == [stored[-1]]


async def test_a_stream_on_the_hub_follows_many_batches(any_svc: Services) -> None:
    """What a live stream does: subscribe, then keep reading: every event arrives once."""
    svc = dataclasses.replace(any_svc, observers=())
    org = await _org(svc)
    got: list[Event] = []
    async with svc.hub.subscribe(job_topic(13), maxsize=0) as queue:
        for _ in range(5):
            await _record(svc, _rows(svc, org, 13, 100)[:-1])
        await asyncio.sleep(0)
        while not queue.empty():
            got.append(queue.get_nowait())
    assert len(got) == 500 and got == await _log(svc, 13)


async def test_only_the_observed_stretch_is_built_and_the_log_keeps_its_order(
    any_svc: Services,
) -> None:
    """Runs' events (no observer) between two job events (observed): three stretches, each
    appended in order; the observed ones built with the ids the log gave them."""
    seen: list[Event] = []

    async def job_one(_svc: Services, _tx: Tx, event: Event) -> None:
        seen.append(event)

    svc = dataclasses.replace(
        any_svc, observers=(Observing(job_one, acts_on=lambda t: t == "job.status"),)
    )
    org = await _org(svc)
    rows = _rows(svc, org, 13, 120)
    opening = {**rows[-1], "from_status": "voting", "to_status": "running"}
    await _record(svc, [opening, *rows])
    stored = await _log(svc, 13)
    assert [e.type for e in stored] == ["job.status"] + ["node_run.status"] * 120 + ["job.status"]
    assert [e.node_name for e in stored[1:4]] == ["n0", "n1", "n2"]
    assert stored[1].data == {"exit_code": 0} and stored[1].created_at == rows[0]["created_at"]
    assert [e.id for e in stored] == sorted(e.id for e in stored)
    assert seen == [stored[0], stored[-1]]
