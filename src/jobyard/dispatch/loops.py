"""What a background loop is: a callable taking Services and returning an async context
manager that starts the loop on enter and stops it cleanly on exit. Which loops the server
runs, in start order, is composed in dispatch/server.py."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from jobyard.service.context import Services

log = logging.getLogger("jobyard.dispatch")

LoopFactory = Callable[[Services], contextlib.AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def periodic(
    name: str,
    interval: float,
    tick: Callable[[], Awaitable[Any]],
    wake: asyncio.Event | None = None,
) -> AsyncIterator[None]:
    """Run ``tick`` every ``interval`` seconds (or sooner when ``wake`` is set) until exit."""

    async def run() -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s loop failed; retrying", name)
            if wake is None:
                await asyncio.sleep(interval)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), interval)
                wake.clear()

    task = asyncio.create_task(run(), name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
