"""In-process publish/subscribe for wake-ups and live streams.

Publishing happens after a transaction commits (``tx.after_commit``). Subscribers
get a bounded queue; a slow subscriber loses messages rather than blocking the
publisher, and re-reads the event log from its last id (streams replay by id).
A listener (``listen``) is a plain function called with each message as it is
published: an agent connection writes its commands to its socket from there, with no
queue and no task of its own while it is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

log = logging.getLogger("jobyard.hub")

# Published (locally, with itself as the message) when the server starts to stop: live
# streams end their responses rather than hold the graceful shutdown open until its timeout.
SHUTDOWN = "shutdown"


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        self._calls: dict[str, list[Callable[[Any], None]]] = {}
        # Set by the replica bridge (PostgreSQL): carries publications to other replicas.
        self.forward: Callable[[str, Any, bool], None] | None = None
        # Messages published in this process, and those that reached a listener here.
        self.published = 0
        self.delivered = 0

    def publish(self, topic: str, message: Any) -> None:
        """Deliver to local subscribers and, through the bridge, to other replicas."""
        delivered = self.publish_local(topic, message)
        if self.forward is not None:
            self.forward(topic, message, delivered)

    def publish_local(self, topic: str, message: Any) -> bool:
        """Deliver to this process's subscribers only; True if anyone listened."""
        self.published += 1
        queues = self._subs.get(topic)
        calls = self._calls.get(topic)
        if queues or calls:
            self.delivered += 1
        if queues:
            for queue in list(queues):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(message)
        if calls:
            for call in list(calls):
                try:
                    call(message)
                except Exception:
                    log.exception("a listener of %s failed", topic)
        return bool(queues or calls)

    def listen(self, call: Callable[[Any], None], *topics: str) -> Listening:
        """``with hub.listen(call, *topics)``: ``call(message)`` for every message published
        on ``topics`` meanwhile."""
        return Listening(self._calls, call, topics)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, *topics: str, maxsize: int = 1000
    ) -> AsyncIterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        for t in topics:
            self._subs[t].add(queue)
        try:
            yield queue
        finally:
            for t in topics:
                self._subs[t].discard(queue)
                if not self._subs[t]:
                    del self._subs[t]

    def subscribers(self, topic: str) -> int:
        return len(self._subs.get(topic, ())) + len(self._calls.get(topic, ()))


class Listening:
    """A listener's registration (a small object: agent connections hold two each)."""

    __slots__ = ("_calls", "call", "topics")

    def __init__(
        self,
        calls: dict[str, list[Callable[[Any], None]]],
        call: Callable[[Any], None],
        topics: tuple[str, ...],
    ) -> None:
        self._calls, self.call, self.topics = calls, call, topics

    def __enter__(self) -> None:
        for t in self.topics:
            self._calls.setdefault(t, []).append(self.call)

    def __exit__(self, *_: object) -> None:
        for t in self.topics:
            calls = self._calls.get(t, [])
            with contextlib.suppress(ValueError):
                calls.remove(self.call)
            if not calls:
                self._calls.pop(t, None)
