"""Read-only aggregate queries for the Prometheus metrics (``service/metrics.py``).

Each query has one purpose, reads only, and is bounded: counts grouped by a few words, or
the events after a watermark, at most ``limit`` at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.jobs import JOB_TERMINAL, RUN_TERMINAL
from jobyard.domain.notifications import DeliveryStatus
from jobyard.domain.triggers import FireOutcome
from jobyard.store.notify_schema import outbox
from jobyard.store.schema import events, jobs, node_runs, nodes
from jobyard.store.tasks_schema import tasks, trigger_fires


@dataclass(frozen=True)
class Finished:
    """A job or node run that reached a terminal status (one event of the log)."""

    event_id: int
    status: str
    task: str
    seconds: float | None


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


_TASK_NAME = sa.func.coalesce(tasks.c.name, "")
_JOB_TERMINAL = [s.value for s in JOB_TERMINAL]
_RUN_TERMINAL = [s.value for s in RUN_TERMINAL]


class StatsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def last_event_id(self) -> int:
        """Where the metrics start counting: the newest event at start-up."""
        got = await self.conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.id), 0)))
        return int(got.scalar_one())

    async def jobs_by_status_and_task(self) -> list[tuple[str, str, int]]:
        """How many jobs there are now, by status and task name ('' for ad-hoc jobs)."""
        query = (
            sa.select(jobs.c.status, _TASK_NAME, sa.func.count())
            .select_from(jobs.outerjoin(tasks, tasks.c.id == jobs.c.task_id))
            .group_by(jobs.c.status, _TASK_NAME)
        )
        return [(str(s), str(t), int(n)) for s, t, n in (await self.conn.execute(query)).all()]

    async def nodes_by_state(self) -> list[tuple[bool, bool, int]]:
        """Registered nodes by (online, busy)."""
        query = sa.select(nodes.c.online, nodes.c.busy, sa.func.count()).group_by(
            nodes.c.online, nodes.c.busy
        )
        return [(bool(o), bool(b), int(n)) for o, b, n in (await self.conn.execute(query)).all()]

    async def outbox_backlog(self) -> list[tuple[str, int, dt.datetime | None]]:
        """Deliveries waiting to be sent, by channel, with the oldest one's creation time."""
        waiting = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
        query = (
            sa.select(outbox.c.channel, sa.func.count(), sa.func.min(outbox.c.created_at))
            .where(outbox.c.status.in_(waiting))
            .group_by(outbox.c.channel)
        )
        return [(str(c), int(n), o) for c, n, o in (await self.conn.execute(query)).all()]

    async def jobs_finished_after(self, event_id: int, limit: int) -> list[Finished]:
        """Jobs that reached a terminal status in events after ``event_id``, oldest first."""
        query = (
            sa.select(
                events.c.id,
                events.c.to_status,
                _TASK_NAME,
                jobs.c.started_at,
                jobs.c.created_at,
                events.c.created_at,
            )
            .select_from(
                events.join(jobs, jobs.c.id == events.c.job_id).outerjoin(
                    tasks, tasks.c.id == jobs.c.task_id
                )
            )
            .where(
                events.c.id > event_id,
                events.c.kind == "job",
                events.c.to_status.in_(_JOB_TERMINAL),
            )
            .order_by(events.c.id)
            .limit(limit)
        )
        rows = (await self.conn.execute(query)).all()
        return [
            Finished(int(i), str(s), str(t), _seconds(started or created, at))
            for i, s, t, started, created, at in rows
        ]

    async def runs_finished_after(self, event_id: int, limit: int) -> list[Finished]:
        """Node runs that reached a terminal status in events after ``event_id``."""
        query = (
            sa.select(
                events.c.id,
                events.c.to_status,
                _TASK_NAME,
                node_runs.c.started_at,
                events.c.created_at,
            )
            .select_from(
                events.join(
                    node_runs,
                    sa.and_(
                        node_runs.c.job_id == events.c.job_id,
                        node_runs.c.node_name == events.c.node_name,
                    ),
                )
                .join(jobs, jobs.c.id == events.c.job_id)
                .outerjoin(tasks, tasks.c.id == jobs.c.task_id)
            )
            .where(
                events.c.id > event_id,
                events.c.kind == "node_run",
                events.c.to_status.in_(_RUN_TERMINAL),
            )
            .order_by(events.c.id)
            .limit(limit)
        )
        rows = (await self.conn.execute(query)).all()
        return [
            Finished(int(i), str(s), str(t), _seconds(started, at)) for i, s, t, started, at in rows
        ]

    async def last_success_by_task(self) -> list[tuple[str, dt.datetime]]:
        """For each task, when its last job ended with every node run succeeded."""
        failed_run = (
            sa.select(node_runs.c.id)
            .where(node_runs.c.job_id == jobs.c.id, node_runs.c.status != "succeeded")
            .exists()
        )
        query = (
            sa.select(tasks.c.name, sa.func.max(jobs.c.finished_at))
            .select_from(jobs.join(tasks, tasks.c.id == jobs.c.task_id))
            .where(jobs.c.status == "complete", jobs.c.finished_at.is_not(None), ~failed_run)
            .group_by(tasks.c.name)
        )
        return [(str(n), at) for n, at in (await self.conn.execute(query)).all() if at]

    async def fires_after(self, fire_id: int, limit: int) -> list[tuple[int, float]]:
        """Trigger fires after ``fire_id``: (id, seconds between the slot and the fire)."""
        query = (
            sa.select(trigger_fires.c.id, trigger_fires.c.slot_time, trigger_fires.c.created_at)
            .where(trigger_fires.c.id > fire_id, trigger_fires.c.outcome == FireOutcome.FIRED.value)
            .order_by(trigger_fires.c.id)
            .limit(limit)
        )
        rows = (await self.conn.execute(query)).all()
        return [(int(i), _seconds(slot, at) or 0.0) for i, slot, at in rows]

    async def last_fire_id(self) -> int:
        got = await self.conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(trigger_fires.c.id), 0))
        )
        return int(got.scalar_one())
