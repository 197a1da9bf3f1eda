"""The job page's live stream: one server-sent-events connection per open job page.

It carries wake-ups, not data: ``change`` when the job or a node run moved (the page
re-reads its live part), ``output`` when a node printed something (the page reads the
new characters from its last offset), ``inbox`` when the user's notifications changed
(the header re-reads the unread count), ``end`` once the job has finished. Every
(re)connection starts with ``hello`` and the page re-reads everything then, so nothing
is lost between rendering the page and following the stream, nor across reconnects.

The lists (jobs, nodes, clusters) follow ``/live/org``: one ``change`` frame per burst of
the organization's events, with the kinds that changed and the newest event id as the
frame id, so a reconnecting browser (``Last-Event-ID``) or a page rendered at event
``after`` first catches up from the event log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response, StreamingResponse

from jobyard.domain.jobs import JobStatus
from jobyard.domain.outputs import Printed
from jobyard.domain.records import Event
from jobyard.service import feeds, notifications
from jobyard.service import jobs as uc
from jobyard.service.events import Appended
from jobyard.service.hub import SHUTDOWN
from jobyard.service.outputs import output_topic
from jobyard.web.jobs import job_id_of
from jobyard.web.page import PageRoute, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

KEEPALIVE = 15.0


def frame(name: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _change(events: list[Event], newest: int) -> bytes:
    kinds = sorted({e.kind for e in events})
    jobs = sorted({e.job_id for e in events if e.job_id is not None})[:100]
    return frame("change", {"kinds": kinds, "jobs": jobs}, newest)


@router.get("/live/org")
async def org_stream(page: Viewer, after: int = 0) -> Response:
    who = page.user
    svc = page.svc
    raw = page.request.headers.get("last-event-id", "")
    after = int(raw) if raw.isascii() and raw.isdigit() else max(0, after)

    async def body() -> AsyncIterator[bytes]:
        nonlocal after
        inbox = notifications.inbox_topic(who)
        async with svc.hub.subscribe(f"org:{who.org_id}", inbox, SHUTDOWN) as queue:
            yield b"retry: 3000\n\n"
            if after:
                missed = await feeds.org_events(svc, who, after)
                if missed:
                    # One batch is enough to know what changed; the page re-reads anyway.
                    newest = await feeds.last_event_id(svc) if len(missed) >= 500 else missed[-1].id
                    after = newest
                    yield _change(missed, newest)
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                batch = [first]
                while not queue.empty():
                    batch.append(queue.get_nowait())
                if SHUTDOWN in batch:
                    return  # the server is stopping; the browser reconnects to the next one
                fresh = [m for m in batch if isinstance(m, Event) and m.id > after]
                told = [m for m in batch if isinstance(m, Appended)]
                if any(isinstance(m, str) for m in batch):  # the inbox says "new" or "read"
                    yield frame("inbox", {})
                if fresh:
                    after = max(e.id for e in fresh)
                    yield _change(fresh, after)
                if told:  # events not carried here: what changed is all the page needs
                    kinds = sorted({k for m in told for k in m.kinds})
                    jobs = sorted({j for m in told for j in m.jobs})[:100]
                    yield frame("change", {"kinds": kinds, "jobs": jobs})

    return _stream(body())


def _finished(event: Event) -> bool:
    return (
        event.kind == "job"
        and event.type == "job.status"
        and event.to_status is not None
        and JobStatus(event.to_status).terminal
    )


@router.get("/jobs/{job_id}/live")
async def job_stream(page: Viewer, job_id: str) -> Response:
    jid = job_id_of(job_id)
    view = await uc.get_job(page.svc, page.user, jid)  # 404 before the stream starts
    hub = page.svc.hub

    async def body() -> AsyncIterator[bytes]:
        inbox = notifications.inbox_topic(page.user)
        topics = (f"job:{jid}", output_topic(jid), inbox, SHUTDOWN)
        async with hub.subscribe(*topics) as queue:
            yield frame("hello", {"job": jid})
            if view.job.status.terminal:
                yield frame("end", {})
                return
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                batch = [first]
                while not queue.empty():  # a burst becomes one wake-up per kind
                    batch.append(queue.get_nowait())
                if SHUTDOWN in batch:
                    return
                events = [m for m in batch if isinstance(m, Event)]
                told = [m for m in batch if isinstance(m, Appended)]
                if any(isinstance(m, str) for m in batch):
                    yield frame("inbox", {})
                printed = sorted({(m.node, m.stream) for m in batch if isinstance(m, Printed)})
                for node, stream in printed:
                    yield frame("output", {"node": node, "stream": stream})
                if events:
                    yield frame("change", {"last": events[-1].id})
                elif told:
                    yield frame("change", {})
                if any(_finished(e) for e in events) or any(jid in m.ended for m in told):
                    yield frame("end", {})
                    return

    return _stream(body())
