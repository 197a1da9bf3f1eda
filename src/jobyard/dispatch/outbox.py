"""The outbox relay: delivers queued notifications (in-app, email, webhooks).

Woken on the hub's ``outbox`` topic right after a transaction queues deliveries, and
every second anyway, for retries that come due and for rows other replicas queued.
Several replicas may relay at once on PostgreSQL (rows are claimed with SKIP LOCKED).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from jobyard.dispatch.loops import periodic
from jobyard.service import outbox
from jobyard.service.context import Services

log = logging.getLogger("jobyard.notify")

INTERVAL = 1.0
# One tick sends at most this many batches, so a backlog never starves a shutdown.
MAX_BATCHES = 50
PRUNE_EVERY = 3600.0
# How long a stop waits for the batch being sent to finish.
STOP_GRACE = 10.0


class Relay:
    """Two loops: in-app deliveries (local, fast) never wait behind a slow SMTP server or
    webhook receiver; email and webhooks go out in their own loop."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.channels = outbox.Channels.from_settings(svc.settings)
        self.wake_local = asyncio.Event()
        self.wake_remote = asyncio.Event()
        self._pruned = 0.0
        # Held while a batch of email or webhooks is out: a stop waits for its outcome to be
        # recorded, rather than leave the batch to be sent again when its lease runs out.
        self._sending = asyncio.Lock()
        self._stopping = False

    async def tick_local(self) -> None:
        for _ in range(MAX_BATCHES):
            if not await outbox.deliver_in_app(self.svc):
                break

    async def tick_remote(self) -> None:
        for _ in range(MAX_BATCHES):
            async with self._sending:
                if self._stopping or not await outbox.deliver_remote(self.svc, self.channels):
                    break
        if time.monotonic() - self._pruned > PRUNE_EVERY:
            self._pruned = time.monotonic()
            pruned = await outbox.prune_sent(self.svc)
            if pruned:
                log.info("forgot %d sent deliveries older than a week", pruned)

    async def _listen(self) -> None:
        async with self.svc.hub.subscribe(outbox.OUTBOX) as queue:
            while True:
                await queue.get()
                self.wake_local.set()
                self.wake_remote.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Relay]:
        listener = asyncio.create_task(self._listen(), name="outbox-listener")
        try:
            async with (
                periodic("outbox-in-app", INTERVAL, self.tick_local, self.wake_local),
                periodic("outbox-remote", INTERVAL, self.tick_remote, self.wake_remote),
            ):
                try:
                    yield self
                finally:
                    self._stopping = True
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._sending.acquire(), STOP_GRACE)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self.channels.close()


def relay_loop(svc: Services) -> contextlib.AbstractAsyncContextManager[Relay]:
    return Relay(svc).running()
