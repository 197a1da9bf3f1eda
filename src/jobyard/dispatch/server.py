"""The loops the server runs, in start order (they stop in reverse order): composed here,
handed to ``create_app``; nothing registers itself on import."""

from __future__ import annotations

from jobyard.dispatch.engine import engine_loop
from jobyard.dispatch.loops import LoopFactory
from jobyard.dispatch.outbox import relay_loop
from jobyard.dispatch.retention import retention_loop
from jobyard.dispatch.scheduler import scheduler_loop


def server_loops() -> tuple[LoopFactory, ...]:
    return (
        engine_loop,  # agents' reports, starting jobs, deadlines
        relay_loop,  # notification deliveries
        retention_loop,  # old jobs and files removed
        scheduler_loop,  # schedules, triggers, holds and queues
    )
