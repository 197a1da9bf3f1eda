"""In-process publish/subscribe for wake-ups and live streams.

Publishing happens after a transaction commits (``tx.after_commit``). Subscribers
get a bounded queue; a slow subscriber loses messages rather than blocking the
publisher, and re-reads the event log from its last id (streams replay by id).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

# Published (locally, with itself as the message) when the server starts to stop: live
# streams end their responses rather than hold the graceful shutdown open until its timeout.
SHUTDOWN = "shutdown"


class Hub:
    def __init__(self) -> None:
        self._subs: dict[str, set[asyncio.Queue[Any]]] = defaultdict(set)
        # Set by the replica bridge (PostgreSQL): carries publications to other replicas.
        self.forward: Callable[[str, Any, bool], None] | None = None

    def publish(self, topic: str, message: Any) -> None:
        """Deliver to local subscribers and, through the bridge, to other replicas."""
        delivered = self.publish_local(topic, message)
        if self.forward is not None:
            self.forward(topic, message, delivered)

    def publish_local(self, topic: str, message: Any) -> bool:
        """Deliver to this process's subscribers only; True if anyone listened."""
        queues = list(self._subs.get(topic, ()))
        for queue in queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(message)
        return bool(queues)

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
        return len(self._subs.get(topic, ()))
