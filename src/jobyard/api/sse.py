"""Server-sent events: replay from the event log after ``Last-Event-ID``, then live events."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from jobyard.api.ids import is_id
from jobyard.api.responses import dumps
from jobyard.domain.jobs import JobStatus
from jobyard.domain.records import Event
from jobyard.service import revocations
from jobyard.service.events import Appended
from jobyard.service.hub import SHUTDOWN

KEEPALIVE = 15.0


def last_event_id(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id") or "0"
    return int(raw) if is_id(raw) else 0


def job_finished(event: Event) -> bool:
    """The event that ends a job's stream: the job reached a terminal status."""
    return (
        event.kind == "job"
        and event.type == "job.status"
        and event.to_status is not None
        and JobStatus(event.to_status).terminal
    )


def frame(event_id: int | None, name: str | None, data: Any) -> bytes:
    out = b""
    if event_id is not None:
        out += f"id: {event_id}\n".encode()
    if name:
        out += f"event: {name}\n".encode()
    return out + b"data: " + dumps(data) + b"\n\n"


Frames = list[tuple[str | None, Any]]


def event_stream(
    request: Request,
    topic: str,
    replay: Callable[[int], Awaitable[list[Event]]],
    render: Callable[[Event], Frames | Awaitable[Frames]],
    *,
    until: Callable[[Event], bool] | None = None,
    after: int | None = None,
    prologue: Sequence[bytes] = (),
    closed: Callable[[], Awaitable[Sequence[bytes]]] | None = None,
    also: Sequence[str] = (),
    other: Callable[[Any], Frames] | None = None,
    opening: Callable[[], Awaitable[Sequence[bytes]]] | None = None,
) -> StreamingResponse:
    """A stream of ``render(event)`` frames for every event on ``topic``, with replay.

    ``until`` ends the stream after the event it accepts (a finished job's feed ends).
    ``after`` is the id to replay from (default: ``Last-Event-ID``); ``prologue`` frames
    go first. ``closed`` is for a subject that had already finished: after the replay its
    frames end the stream, and nothing live is awaited. ``also`` are more topics whose
    messages (not events) ``other`` renders; ``opening`` frames go first once subscribed
    (what those topics said before the stream began).
    """
    svc = request.app.state.services
    who = getattr(request.state, "principal", None)
    start = last_event_id(request) if after is None else after

    async def frames(event: Event) -> AsyncIterator[bytes]:
        rendered = render(event)
        if inspect.isawaitable(rendered):
            rendered = await rendered
        for name, data in rendered:
            yield frame(event.id, name, data)

    async def body() -> AsyncIterator[bytes]:
        for chunk in prologue:
            yield chunk
        seen = start
        ended = False

        async def read_log() -> AsyncIterator[bytes]:
            # Everything after the last event sent, from the log, in batches.
            nonlocal seen, ended
            while not ended:
                batch = await replay(seen)
                for event in batch:
                    seen = event.id
                    async for chunk in frames(event):
                        yield chunk
                    if until is not None and until(event):
                        ended = True
                        break
                if len(batch) < 500:
                    break

        async with revocations.watch(svc, who, topic, *also, SHUTDOWN) as queue:
            if opening is not None:
                for chunk in await opening():
                    yield chunk
            # Replay everything the client missed, then follow the live queue, skipping
            # anything already replayed.
            async for chunk in read_log():
                yield chunk
            if closed is not None:
                for chunk in await closed():
                    yield chunk
                return
            while not ended:
                if await request.is_disconnected():
                    return
                try:
                    message = await asyncio.wait_for(queue.get(), KEEPALIVE)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if message == SHUTDOWN:
                    return  # the server is stopping: clients reconnect with Last-Event-ID
                if revocations.is_revocation(message):
                    return  # its credentials changed: a reconnect is authenticated afresh
                if isinstance(message, Appended):
                    # Events not carried (recorded before this stream listened, or on
                    # another replica): read them from the log.
                    async for chunk in read_log():
                        yield chunk
                    continue
                if not isinstance(message, Event):
                    if other is not None:
                        for name, data in other(message):
                            yield frame(None, name, data)
                    continue
                if message.id <= seen:
                    continue
                seen = message.id
                async for chunk in frames(message):
                    yield chunk
                ended = until is not None and until(message)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
