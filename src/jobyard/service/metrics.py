"""Job-level Prometheus metrics, read from the database when ``/metrics`` is scraped.

The event log is the source: at each scrape the jobs and node runs that ended since the
previous scrape (events after a watermark, the newest at start-up) are counted and their
durations observed; gauges (jobs by status, nodes by state, outbox backlog, last success
per task) are read as they are now. Nothing is added to the hot paths, and every replica
reports the same figures: scrape one replica, or aggregate with ``max``.

| metric | kind | labels |
|---|---|---|
| jobyard_jobs_total | counter: jobs that ended, since start | status, task |
| jobyard_jobs_in_status | gauge: jobs now | status, task |
| jobyard_job_duration_seconds | histogram: start (or creation) to end | status, task |
| jobyard_node_runs_total | counter: node runs that ended, since start | status, task |
| jobyard_node_run_duration_seconds | histogram: run start to end | status |
| jobyard_task_last_success_timestamp_seconds | gauge | task |
| jobyard_nodes | gauge: registered nodes | state (online, busy, offline) |
| jobyard_agents_connected | gauge: agent connections to this process | |
| jobyard_outbox_backlog | gauge: deliveries waiting | channel |
| jobyard_outbox_oldest_age_seconds | gauge: the oldest waiting delivery's age | channel |
| jobyard_scheduler_lateness_seconds | histogram: slot time to fire | |
| jobyard_db_transaction_seconds | histogram: BEGIN to COMMIT, here | kind, use_case |
| jobyard_agent_frames_total | counter: frames with agents, since start | direction |
| jobyard_agent_frames_refused_total | counter: agent frames answered with an error | reason |

The transaction times are the exception to "read at scrape time": the database handle tells
``TransactionMetrics.observe`` of each commit as it happens (``Database.observe``). So are
the agent frame counters, counted as frames pass: ``direction`` is in or out, ``reason``
malformed, unknown or unexpected (see ``wire/agent.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobyard.store.stats import StatsRepo

if TYPE_CHECKING:
    from jobyard.service.context import Services

BATCH = 10_000
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
LATENESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60)
TRANSACTION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class TransactionMetrics:
    """How long this process's database transactions take, by kind and use case."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.seconds = Histogram(
            "jobyard_db_transaction_seconds",
            "Database transaction time, BEGIN to COMMIT, by kind and the use case that opened it",
            ["kind", "use_case"],
            buckets=TRANSACTION_BUCKETS,
            registry=registry,
        )
        # Each labelled child found once: labels() takes a lock and builds a key every call.
        self._children: dict[tuple[str, str], Histogram] = {}

    def observe(self, kind: str, use_case: str, seconds: float) -> None:
        child = self._children.get((kind, use_case))
        if child is None:
            child = self._children[kind, use_case] = self.seconds.labels(kind, use_case)
        child.observe(seconds)


class JobMetrics:
    """The job-level metrics of one process, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.jobs_total = Counter(
            "jobyard_jobs_total",
            "Jobs that ended since start",
            ["status", "task"],
            registry=registry,
        )
        self.jobs = Gauge(
            "jobyard_jobs_in_status",
            "Jobs now, by status and task",
            ["status", "task"],
            registry=registry,
        )
        self.job_duration = Histogram(
            "jobyard_job_duration_seconds",
            "Job duration, start to end",
            ["status", "task"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.runs_total = Counter(
            "jobyard_node_runs_total",
            "Node runs that ended since start",
            ["status", "task"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "jobyard_node_run_duration_seconds",
            "Node run duration, start to end",
            ["status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.last_success = Gauge(
            "jobyard_task_last_success_timestamp_seconds",
            "When a job of the task last ended with every node run succeeded",
            ["task"],
            registry=registry,
        )
        self.nodes = Gauge(
            "jobyard_nodes", "Registered nodes by state", ["state"], registry=registry
        )
        self.agents = Gauge(
            "jobyard_agents_connected", "Agent connections to this process", registry=registry
        )
        self.backlog = Gauge(
            "jobyard_outbox_backlog",
            "Deliveries waiting to be sent",
            ["channel"],
            registry=registry,
        )
        self.backlog_age = Gauge(
            "jobyard_outbox_oldest_age_seconds",
            "Age of the oldest waiting delivery",
            ["channel"],
            registry=registry,
        )
        self.lateness = Histogram(
            "jobyard_scheduler_lateness_seconds",
            "Seconds from a schedule slot to its fire",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self._event_mark: int | None = None
        self._fire_mark: int | None = None
        self._lock = asyncio.Lock()

    async def start(self, svc: Services) -> None:
        """Count what ends from now on (called as the server starts)."""
        async with self._lock, svc.db.read() as tx:
            await self._mark(StatsRepo(tx.conn))

    async def _mark(self, stats: StatsRepo) -> None:
        if self._event_mark is None:
            self._event_mark = await stats.last_event_id()
            self._fire_mark = await stats.last_fire_id()

    async def refresh(self, svc: Services, *, agents_connected: int) -> None:
        """Bring every metric up to date from the database (one read transaction)."""
        async with self._lock, svc.db.read() as tx:
            stats = StatsRepo(tx.conn)
            await self._mark(stats)
            await self._count_ended(stats)
            await self._read_gauges(stats, svc)
        self.agents.set(agents_connected)

    async def _count_ended(self, stats: StatsRepo) -> None:
        assert self._event_mark is not None and self._fire_mark is not None
        mark = self._event_mark
        for job in await stats.jobs_finished_after(mark, BATCH):
            self.jobs_total.labels(job.status, job.task).inc()
            if job.seconds is not None:
                self.job_duration.labels(job.status, job.task).observe(job.seconds)
            self._event_mark = max(self._event_mark, job.event_id)
        for run in await stats.runs_finished_after(mark, BATCH):
            self.runs_total.labels(run.status, run.task).inc()
            if run.seconds is not None:
                self.run_duration.labels(run.status).observe(run.seconds)
            self._event_mark = max(self._event_mark, run.event_id)
        for fire_id, late in await stats.fires_after(self._fire_mark, BATCH):
            self.lateness.observe(late)
            self._fire_mark = fire_id

    async def _read_gauges(self, stats: StatsRepo, svc: Services) -> None:
        self.jobs.clear()
        for status, task, n in await stats.jobs_by_status_and_task():
            self.jobs.labels(status, task).set(n)
        counts = {"online": 0, "busy": 0, "offline": 0}
        for online, busy, n in await stats.nodes_by_state():
            counts["offline" if not online else "busy" if busy else "online"] += n
        for state, n in counts.items():
            self.nodes.labels(state).set(n)
        self.backlog.clear()
        self.backlog_age.clear()
        now = svc.clock.now()
        for channel, n, oldest in await stats.outbox_backlog():
            self.backlog.labels(channel).set(n)
            age = (now - _aware(oldest, now)).total_seconds() if oldest is not None else 0.0
            self.backlog_age.labels(channel).set(max(0.0, age))
        for task, at in await stats.last_success_by_task():
            self.last_success.labels(task).set(_aware(at, now).timestamp())


class AgentFrames:
    """Frames on the agents' connections of one process, and those refused."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.frames = Counter(
            "jobyard_agent_frames_total",
            "WebSocket frames exchanged with agents",
            ["direction"],
            registry=registry,
        )
        self.frames_in = self.frames.labels("in")
        self.frames_out = self.frames.labels("out")
        self.refused = Counter(
            "jobyard_agent_frames_refused_total",
            "Agent frames that were not a valid message, answered with an error frame",
            ["reason"],
            registry=registry,
        )


def _aware(value: dt.datetime, like: dt.datetime) -> dt.datetime:
    """SQLite hands back naive UTC times; compare them with aware ones."""
    if value.tzinfo is None and like.tzinfo is not None:
        return value.replace(tzinfo=dt.UTC)
    return value
