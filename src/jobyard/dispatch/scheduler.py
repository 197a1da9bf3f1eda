"""The scheduler loop: fires triggers, releases held runs, expires waits.

One ``tick`` does everything due at the clock's "now" and returns what it did; ``run``
repeats it, sleeping until the next thing is due (at most ``poll`` seconds, to see what
other servers changed) or until the hub says something changed here. Time comes from the
injected clock, so tests call ``tick`` after moving a FakeClock instead of sleeping.

Several servers may run this loop on one PostgreSQL: triggers are taken with SKIP LOCKED
and every fired slot is claimed under a UNIQUE constraint, so each slot fires once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from jobyard.domain.clock import Clock
from jobyard.service import approvals, chains, holds, triggers
from jobyard.service.context import Services
from jobyard.service.launches import SCHEDULER_TOPIC
from jobyard.service.triggers import FireReport

log = logging.getLogger("jobyard.scheduler")

FIRES_KEPT = dt.timedelta(days=1)
PRUNE_EVERY = 300.0
# Chains the event observer could not advance (see service/chains.sweep): rare, so looked
# for every few seconds, and at once when a server starts.
SWEEP_EVERY = 5.0


class Scheduler:
    def __init__(
        self,
        svc: Services,
        *,
        clock: Clock | None = None,
        batch: int = 500,
        poll: float = 1.0,
        grace: float | None = None,
        on_fired: Callable[[FireReport, float], None] | None = None,
    ) -> None:
        self.svc = svc
        self.clock = clock or svc.clock
        self.batch = batch
        self.poll = poll
        self.grace = svc.settings.scheduler_grace if grace is None else grace
        # Called after each pass that fired something, with the wall time of its commit.
        self.on_fired = on_fired
        self._last_prune = 0.0
        self._last_sweep = -SWEEP_EVERY

    async def tick(self) -> FireReport:
        """Do everything due now; returns the triggers' part of it."""
        now = self.clock.now()
        total = FireReport()
        plan = await triggers.agenda(self.svc)
        fire, release = plan.due(now)
        while fire:
            report = await triggers.fire_due(self.svc, now, limit=self.batch, grace=self.grace)
            committed = time.time()
            if report.fired and self.on_fired is not None:
                self.on_fired(report, committed)
            total.add(report)
            fire = report.triggers >= self.batch
        if release:
            await holds.release_due(self.svc, now)
            await approvals.expire_inputs(self.svc, now)
        if plan.queued:
            await holds.release_queued(self.svc)
        if time.monotonic() - self._last_sweep >= SWEEP_EVERY:
            self._last_sweep = time.monotonic()
            await chains.sweep(self.svc)
        if time.monotonic() - self._last_prune > PRUNE_EVERY:
            self._last_prune = time.monotonic()
            await triggers.prune_fires(self.svc, now - FIRES_KEPT)
        return total

    async def delay(self) -> float:
        """Seconds until the next thing is due, at most ``poll``."""
        due = (await triggers.agenda(self.svc)).next
        if due is None:
            return self.poll
        return max(0.0, min(self.poll, (due - self.clock.now()).total_seconds()))

    async def run(self) -> None:
        async with self.svc.hub.subscribe(SCHEDULER_TOPIC) as wake:
            while True:
                try:
                    await self.tick()
                    pause = await self.delay()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("scheduler pass failed; retrying")
                    pause = self.poll
                if pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wake.get(), pause)
                while not wake.empty():
                    wake.get_nowait()


@contextlib.asynccontextmanager
async def scheduler_loop(svc: Services) -> AsyncIterator[Scheduler]:
    scheduler = Scheduler(svc)
    task: asyncio.Task[Any] = asyncio.create_task(scheduler.run(), name="scheduler")
    try:
        yield scheduler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
