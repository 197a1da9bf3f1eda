"""The dispatch engine: everything that moves jobs without a person asking.

- a report batcher: agent reports (votes, run acks, results, output) queue up and are
  applied many at a time in one transaction (group commit), then results are acked;
- a starter: opens voting on ``new`` jobs as soon as they are submitted;
- a deadline loop: voting timeouts and run_timeouts;
- a heartbeat flusher and a silence detector: nodes that stop heartbeating go offline.
  Heartbeats are kept in memory; a node's last-seen time is written (one batched UPDATE
  per tick for every node due) once ``last_seen_refresh`` has passed since it was last
  written, and its busy flag only when it changes: an idle fleet costs one statement per
  tick, not one row per heartbeat. A node that falls quiet (a heartbeat missed) gets its
  last heartbeat written as it was heard, so that silence counts from it exactly;
- the cluster lifecycle.

Agent connections register here so that a second connection for the same node
replaces the first.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from jobyard.dispatch.loops import periodic
from jobyard.domain.nodes import last_seen_refresh
from jobyard.service import clusters, dispatch, nodes
from jobyard.service.context import Services
from jobyard.service.rounds import Report, Rounds, apply_reports, node_topic
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.dispatch")
BATCH = 1000


class Engine:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.replica = uuid.uuid4().hex[:12]
        self.reports: asyncio.Queue[Report] = asyncio.Queue()
        # Active jobs' rounds, written by _apply_batches (the starter hands over those it opens)
        self.rounds = Rounds()
        self.heartbeats: dict[int, bool] = {}  # heard since the last flush: busy flag
        self._flag: dict[int, bool] = {}  # each node's busy flag as last written
        self._seen_at: dict[int, dt.datetime] = {}  # when each node's last-seen was written
        self._unwritten: dict[int, dt.datetime] = {}  # heard since that write: when
        self.heartbeat_wake = asyncio.Event()
        self.sessions: dict[tuple[int, str], Any] = {}
        self.start_wake = asyncio.Event()
        self.cluster_wake = asyncio.Event()
        self._queued = 0  # reports ever queued, and ever applied (or failed to apply)
        self._applied = 0
        self._progress = asyncio.Condition()

    @classmethod
    def of(cls, svc: Services) -> Engine:
        engine = svc.runtime.engine
        if engine is None:
            engine = svc.runtime.engine = cls(svc)
        assert isinstance(engine, Engine)
        return engine

    def connected(self) -> int:
        return len(self.sessions)

    # -- used by agent connections
    def report(self, report: Report) -> None:
        self._queued += 1
        self.reports.put_nowait(report)

    async def caught_up(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until every report queued so far has been applied.

        A goodbye is handled after what the agent reported before it: else a result sent
        just before ``bye`` would reach a run that the goodbye had already crashed.
        """
        mark = self._queued
        async with self._progress:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._progress.wait_for(lambda: self._applied >= mark), timeout
                )

    def said_hello(self, node_id: int, busy: bool) -> None:
        """A node said hello (its last-seen time and busy flag were written with it)."""
        self._flag[node_id] = busy
        self._seen_at[node_id] = self.svc.clock.now()
        self._unwritten.pop(node_id, None)

    def went_away(self, node_id: int) -> None:
        """Its connection ended (a last heartbeat not yet written still will be)."""
        self.heartbeats.pop(node_id, None)
        self._flag.pop(node_id, None)
        self._seen_at.pop(node_id, None)

    def heartbeat(self, node_id: int, busy: bool) -> None:
        self.heartbeats[node_id] = busy
        self._unwritten[node_id] = self.svc.clock.now()
        if self._flag.get(node_id) is not busy:
            # Written at once, not at the next tick: node listings show the slot taken
            # (or freed) as soon as the agent says so.
            self.heartbeat_wake.set()

    # -- loops
    async def _apply_batches(self) -> None:
        while True:
            first = await self.reports.get()
            batch = [first]
            while len(batch) < BATCH and not self.reports.empty():
                batch.append(self.reports.get_nowait())
            try:
                await apply_reports(self.svc, batch, self.rounds)
            except Exception:
                # Unacked results are re-sent by the agents; state reports are re-derived
                # from the agents' next hello. Log and keep serving.
                log.exception("applying %d agent reports failed", len(batch))
                continue
            finally:
                self._applied += len(batch)
                async with self._progress:
                    self._progress.notify_all()
            for r in batch:
                if r.kind == "result":
                    self.svc.hub.publish(
                        node_topic(r.org_id, r.node),
                        wire.encode(wire.Ack(job=r.job_id, attempt=r.attempt)),
                    )

    async def _start(self) -> None:
        while await dispatch.start_jobs(self.svc, rounds=self.rounds) > 0:
            pass

    async def flush_heartbeats(self) -> None:
        """Write what changed: busy flags at once, last-seen times when due, and the last
        heartbeat of nodes gone quiet."""
        if not self._unwritten:
            return
        s = self.svc.settings
        refresh = dt.timedelta(seconds=last_seen_refresh(s.node_ttl, s.node_grace))
        now = self.svc.clock.now()
        seen, self.heartbeats = self.heartbeats, {}
        due = [n for n in seen if n not in self._seen_at or now - self._seen_at[n] >= refresh]
        flags = {n: b for n, b in seen.items() if self._flag.get(n) is not b}
        quiet_before = now - dt.timedelta(seconds=2 * s.heartbeat_interval)
        quiet = {n: t for n, t in self._unwritten.items() if t < quiet_before and n not in seen}
        if not due and not flags and not quiet:
            return
        revenants = set(await nodes.record_heartbeats(self.svc, due, flags, quiet))
        for n in due:
            self._seen_at[n] = now
            self._unwritten.pop(n, None)
        for n in quiet:
            self._unwritten.pop(n, None)
        self._flag.update(flags)
        for session in list(self.sessions.values()) if revenants else []:
            if session.node_id in revenants:
                # Declared offline (its runs crashed) yet still talking on the same
                # connection: close it, so the agent says hello again and is reconciled.
                await session.close("this node was declared offline; reconnect")

    async def _expire(self) -> None:
        # The last heartbeats of nodes gone quiet first: silence counts from them, not from
        # an earlier write (this replica's nodes; others' are written by their replica).
        await self.flush_heartbeats()
        await nodes.expire_silent_nodes(self.svc)

    async def _deadlines(self) -> None:
        await dispatch.fire_deadlines(self.svc)

    async def _clusters(self) -> None:
        await clusters.advance_clusters(self.svc)

    async def _wake_on(self, topic: str, wake: asyncio.Event) -> None:
        """Set ``wake`` whenever ``topic`` is published (one wake-up serves a burst)."""
        async with self.svc.hub.subscribe(topic, maxsize=0) as queue:
            while True:
                await queue.get()
                while not queue.empty():
                    queue.get_nowait()
                wake.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Engine]:
        await nodes.grant_reconnect_grace(self.svc)
        s = self.svc.settings
        tick = max(0.05, min(1.0, s.heartbeat_interval / 2))
        batcher = asyncio.create_task(self._apply_batches(), name="reports")
        wakers = [
            asyncio.create_task(self._wake_on("dispatch", self.start_wake), name="wake-start"),
            asyncio.create_task(self._wake_on("clusters", self.cluster_wake), name="wake-clusters"),
        ]
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(periodic("starter", 1.0, self._start, self.start_wake))
            await stack.enter_async_context(periodic("deadlines", tick, self._deadlines))
            await stack.enter_async_context(
                periodic("heartbeats", tick, self.flush_heartbeats, self.heartbeat_wake)
            )
            await stack.enter_async_context(periodic("expiry", tick, self._expire))
            await stack.enter_async_context(
                periodic("clusters", tick * 2, self._clusters, self.cluster_wake)
            )
            if not self.svc.db.is_sqlite:
                from jobyard.dispatch.bridge import Bridge

                bridge = Bridge(
                    self.svc, self.replica, lambda org, name: (org, name) in self.sessions
                )
                await stack.enter_async_context(bridge.running())
            self.svc.runtime.dispatching = True
            try:
                yield self
            finally:
                self.svc.runtime.dispatching = False
                for task in (*wakers, batcher):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await self._drain()

    async def _drain(self) -> None:
        """Apply what is still queued before shutdown, so accepted results are kept."""
        batch: list[Report] = []
        while not self.reports.empty():
            batch.append(self.reports.get_nowait())
        if batch:
            with contextlib.suppress(Exception):
                await apply_reports(self.svc, batch)


def engine_loop(svc: Services) -> contextlib.AbstractAsyncContextManager[Engine]:
    return Engine.of(svc).running()
