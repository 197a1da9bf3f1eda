"""What an agent sends on one connection, gathered per turn of the event loop.

Messages queued in the same turn (an ``ack_commit`` and the heartbeat that says a slot is
taken; the votes for several commits that arrived in one frame; a heartbeat and a result)
leave in one frame: a ``batch`` for a server of protocol version 2 or later, one frame
each for an older one. Frames leave in the order their messages were queued; each
message's future says whether its frame was written (False once the connection broke),
so that a result or a file is kept until it really went.
"""

from __future__ import annotations

import asyncio
import logging

import websockets
from websockets.asyncio.client import ClientConnection

from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.agent")


class Outgoing:
    def __init__(self, ws: ClientConnection, batching: bool) -> None:
        self.ws = ws
        self.batching = batching
        self.pending: list[str] = []
        self.flushed: asyncio.Future[bool] | None = None
        self.lock = asyncio.Lock()  # one frame at a time, in order
        self.tasks: set[asyncio.Task[None]] = set()

    def queue(self, message: wire.AgentMessage) -> asyncio.Future[bool]:
        """Queue a message for this turn's frame; the future says whether it was written."""
        self.pending.append(wire.encode(message))
        if self.flushed is None:
            loop = asyncio.get_running_loop()
            self.flushed = loop.create_future()
            task = loop.create_task(self._flush())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return self.flushed

    async def send(self, message: wire.AgentMessage) -> bool:
        """Queue a message and wait until its frame is written (or the connection broke)."""
        return await asyncio.shield(self.queue(message))

    async def _flush(self) -> None:
        async with self.lock:
            encoded, done = self.pending, self.flushed
            self.pending, self.flushed = [], None
            assert done is not None
            written = True
            try:
                if self.batching:
                    await self.ws.send(wire.frame_of(encoded))
                else:
                    for frame in encoded:
                        await self.ws.send(frame)
            except websockets.ConnectionClosed:
                written = False
            except Exception:  # a broken transport: the connection's loop ends it
                log.warning("a frame to the server could not be written", exc_info=True)
                written = False
            done.set_result(written)
