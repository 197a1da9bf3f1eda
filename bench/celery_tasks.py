"""The Celery side of bench.queues: one no-op task that counts itself in Redis.

The worker runs as ``celery -A bench.celery_tasks worker``; the count (one ``INCR``) is how
the benchmark learns that a task has completed, since a no-op leaves no other trace.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

BROKER = os.environ.get("JOBYARD_BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/13")
QUEUE = "jobyard-bench"
COUNTER = "jobyard-bench:done"

app = Celery("jobyard_bench", broker=BROKER)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_redis: Any = None


@app.task(name="noop")
def noop() -> None:
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(BROKER)
    _redis.incr(COUNTER)
