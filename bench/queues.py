"""Python job queues draining no-op jobs on this machine, to compare jobyard's sustained rate.

- pgqueuer (PostgreSQL): N no-op jobs are enqueued in batches into a fresh database, then
  one process runs C ``PgQueuer`` consumers (one connection each, dequeue batch B, drain
  mode: they stop once the queue is empty), as pgqueuer's own drain benchmark does. The
  rate is N over the time from the consumers' start until they have all returned (their
  completion logs flushed).
- Celery 5 with Redis as broker: N ``noop`` tasks are sent, then a worker starts
  (``--pool prefork --concurrency 2``, one per core); each task ``INCR``s a Redis counter,
  which the benchmark polls; the rate is tasks counted over the time from the first to the
  last count.

If a queue's package is not installed or its server does not answer, its row says so.

    python -m bench.queues [--jobs N]
    python -m bench.queues --pgqueuer-child DSN N C B   (used internally: one drain, JSON out)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from typing import Any

from bench import figures, processes
from bench.figures import num, table

PGQ_CONSUMERS = 5
PGQ_BATCH = 10
CELERY_CONCURRENCY = 2


# -- pgqueuer


async def _pgqueuer_child(dsn: str, jobs: int, consumers: int, batch: int) -> dict[str, Any]:
    import asyncpg
    from pgqueuer import AsyncpgDriver, PgQueuer, Queries
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()
    enqueue_started = time.monotonic()
    for start in range(0, jobs, 1000):
        n = min(1000, jobs - start)
        await queries.enqueue(["noop"] * n, [None] * n, [0] * n)
    enqueue_seconds = time.monotonic() - enqueue_started

    done = 0
    first = last = 0.0
    pgqs = []
    for _ in range(consumers):
        pgq = PgQueuer(AsyncpgDriver(await asyncpg.connect(dsn)))

        @pgq.entrypoint("noop")
        async def noop(job: Any) -> None:
            nonlocal done, first, last
            last = time.monotonic()
            if not done:
                first = last
            done += 1

        pgqs.append(pgq)
    started = time.monotonic()
    await asyncio.gather(*(p.run(batch_size=batch, mode=QueueExecutionMode.drain) for p in pgqs))
    elapsed = time.monotonic() - started
    left = sum(s.count for s in await queries.queue_size() if s.status == "queued")
    return {
        "jobs": jobs,
        "done": done,
        "left": left,
        "seconds": elapsed,
        "rate": done / elapsed,
        "first_to_last_rate": done / (last - first) if last > first else None,
        "enqueue_rate": jobs / enqueue_seconds,
    }


async def measure_pgqueuer(jobs: int) -> dict[str, Any]:
    name = f"pgqueuer {_version('pgqueuer')}"
    if importlib.util.find_spec("pgqueuer") is None:
        return {"name": name, "rate": None, "detail": "not installed (pip install '.[bench]')"}
    async with processes.pg_database("pgqueuer") as dsn:
        meter = processes.CpuMeter({})
        meter.start()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.queues",
            "--pgqueuer-child",
            dsn,
            str(jobs),
            str(PGQ_CONSUMERS),
            str(PGQ_BATCH),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        meter.stop()
    if proc.returncode != 0:
        return {"name": name, "rate": None, "detail": f"failed: {err.decode()[-500:]}"}
    res = json.loads(out.decode().strip().splitlines()[-1])
    res.update(
        name=name,
        detail=(
            f"{res['done']:,} no-op jobs drained in {res['seconds']:.2f} s by "
            f"{PGQ_CONSUMERS} consumers (batch {PGQ_BATCH}), {res['left']} left; "
            f"enqueued beforehand at {res['enqueue_rate']:,.0f}/s"
        ),
        cpu=meter.spent,
    )
    print(f"  {name}: {res['rate']:,.0f} jobs/s; {res['detail']}", flush=True)
    return res


# -- Celery


def _celery(jobs: int) -> dict[str, Any]:
    import redis

    from bench import celery_tasks

    r = redis.Redis.from_url(celery_tasks.BROKER)
    r.delete(celery_tasks.QUEUE, celery_tasks.COUNTER)
    sent_started = time.monotonic()
    with celery_tasks.app.producer_or_acquire() as producer:
        for _ in range(jobs):
            celery_tasks.noop.apply_async(producer=producer)
    send_rate = jobs / (time.monotonic() - sent_started)
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.celery_tasks",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(CELERY_CONCURRENCY),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            celery_tasks.QUEUE,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        first_t = 0.0
        first_n = 0
        count = 0
        while count < jobs and time.monotonic() < deadline:
            count = int(r.get(celery_tasks.COUNTER) or 0)
            if count and not first_t:
                first_t, first_n = time.monotonic(), count
            time.sleep(0.005)
        last_t = time.monotonic()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        r.delete(celery_tasks.QUEUE, celery_tasks.COUNTER)
    rate = (count - first_n) / (last_t - first_t) if last_t > first_t else 0.0
    return {
        "done": count,
        "jobs": jobs,
        "seconds": last_t - first_t,
        "rate": rate,
        "send_rate": send_rate,
    }


async def measure_celery(jobs: int) -> dict[str, Any]:
    name = f"celery {_version('celery')} + Redis"
    if importlib.util.find_spec("celery") is None or importlib.util.find_spec("redis") is None:
        return {"name": name, "rate": None, "detail": "not installed (pip install '.[bench]')"}
    try:
        res = await asyncio.to_thread(_celery, jobs)
    except Exception as exc:  # a broker that does not answer is a result to report
        return {"name": name, "rate": None, "detail": f"failed: {type(exc).__name__}: {exc}"}
    res.update(
        name=name,
        detail=(
            f"{res['done']:,} of {res['jobs']:,} no-op tasks in {res['seconds']:.2f} s, prefork "
            f"pool of {CELERY_CONCURRENCY}; sent beforehand at {res['send_rate']:,.0f}/s"
        ),
    )
    print(f"  {name}: {res['rate']:,.0f} tasks/s; {res['detail']}", flush=True)
    return res


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


async def measure_all(jobs: int) -> list[dict[str, Any]]:
    return [await measure_pgqueuer(jobs), await measure_celery(jobs // 2)]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--pgqueuer-child", nargs=4, metavar=("DSN", "N", "C", "B"))
    parser.add_argument("--json", help="merge the figures into this JSON file")
    args = parser.parse_args(argv)
    if args.pgqueuer_child:
        dsn, n, c, b = args.pgqueuer_child
        res = asyncio.run(_pgqueuer_child(dsn, int(n), int(c), int(b)))
        print(json.dumps(res))
        return [res]
    figures.section("Queues draining no-op jobs")
    rows = asyncio.run(measure_all(args.jobs))
    print()
    print(
        table(
            ["queue", "completed/s", "how"],
            [[r["name"], num(r["rate"] or float("nan")), r["detail"]] for r in rows],
        )
    )
    figures.save(args.json, "queues", {"rows": rows})
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
