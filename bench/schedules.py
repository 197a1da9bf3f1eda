"""Schedules: 10,000 enabled cron triggers, and how late their fires are (DESIGN.md: p99 < 1 s).

The real scheduler loop (``jobyard.dispatch.scheduler.Scheduler``, system clock, default
batch and grace) runs in this process against a real database, SQLite and PostgreSQL in
turn. Each fire makes a real job (validated target, job row, events, task run, fired-slot
row) in the same transaction as its claim. A fire's lateness is the wall time at which
that transaction committed minus the slot it fired.

Two loads, each with 10,000 enabled triggers of one task:

- ``spread``: cron with seconds, trigger i at second i mod 60 of every minute
  (``S * * * * *``): 10,000 fires a minute, about 167 each second;
- ``herd``: every trigger on ``* * * * *``: 10,000 fires at the same second, once a minute
  (the worst case: everything at once).

    python -m bench.schedules [--triggers N] [--load spread|herd|both]
                              [--db sqlite|postgresql|both] [--seconds S] [--json FILE]

No agent runs: the jobs stay ``new`` (dispatching is measured by bench.fanout). Every
event observer of the server is registered (the notification outbox reacts to each new
job, as in production) unless ``--without-notifications`` asks for the scheduler alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import figures
from bench.figures import ms, num, table, verdict
from bench.machine import describe, machine_load, print_machine
from bench.processes import PG_ADMIN_URL, pg_database
from jobyard.dispatch.scheduler import Scheduler
from jobyard.domain.accounts import Role
from jobyard.domain.policies import CatchUp, ConcurrencyPolicy
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.domain.targets import Target
from jobyard.domain.tasks import TaskSpec
from jobyard.service import accounts, schedules, tasks
from jobyard.service.context import Services
from jobyard.service.triggers import FireReport
from jobyard.settings import Settings
from jobyard.store import Database
from jobyard.store.jobs import JobFilter
from jobyard.store.tasks_schema import triggers as trigger_table

TARGET_P99 = 1.0


async def _setup(svc: Services, n: int, load: str) -> None:
    """One organization, one task, the schedules, and ``n`` enabled triggers."""
    await accounts.create_org(svc, "bench")
    await accounts.create_user(svc, "bench", "bench@example.com", Role.ADMIN)
    issued = await accounts.create_token(svc, "bench", "bench@example.com")
    who = await accounts.authenticate(svc, issued.secret)
    task = await tasks.create_task(
        svc, who, TaskSpec(name="noop", command="true", target=Target(nodes=("bench-n1",)))
    )
    exprs = [f"{s} * * * * *" for s in range(60)] if load == "spread" else ["* * * * *"]
    ids = [
        (await schedules.create_schedule(svc, who, Schedule(ScheduleKind.CRON, cron=e))).id
        for e in exprs
    ]
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        saved = await tx.schedules.many(ids)
        rows = []
        for i in range(n):
            sched = saved[ids[i % len(ids)]].schedule
            rows.append(
                {
                    "org_id": who.org_id,
                    "name": f"t{i}",
                    "task_id": task.id,
                    "stack_id": None,
                    "schedule_id": ids[i % len(ids)],
                    "enabled": True,
                    "overlap": ConcurrencyPolicy().as_json(),
                    "catch_up": CatchUp.SKIP.value,
                    "catch_up_window": 3600,
                    "arguments": {},
                    "do_del": False,
                    "next_fire_at": sched.next_after(now),
                    "last_slot": None,
                    "created_by": who.user_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        # Written in bulk, as create_trigger writes them one by one (faster to set up).
        for start in range(0, n, 1000):
            await tx.conn.execute(trigger_table.insert(), rows[start : start + 1000])


async def _measure(url: str, n: int, load: str, seconds: float) -> dict[str, Any]:
    db = Database(url)
    await db.migrate()
    svc = Services(db=db, settings=Settings(database_url=url, data_dir=Path(tempfile.mkdtemp())))
    lateness: list[float] = []
    passes: list[int] = []
    try:
        t0 = time.monotonic()
        await _setup(svc, n, load)
        setup = time.monotonic() - t0

        excluded = 0

        def on_fired(report: FireReport, committed: float) -> None:
            # Slots that came due while the triggers were being written (before the
            # scheduler started) are late by the setup time, not by the scheduler: left out.
            nonlocal excluded
            passes.append(len(report.fired))
            for _, slot, _ in report.fired:
                if slot.timestamp() >= measuring_from:
                    lateness.append(committed - slot.timestamp())
                else:
                    excluded += 1

        scheduler = Scheduler(svc, on_fired=on_fired)
        if load == "herd":
            # Start just after a minute boundary; measure the next two herds.
            wall = dt.datetime.now(dt.UTC)
            seconds = max(seconds, 120.0 - wall.second + 20)
        measuring_from = time.time()
        runner = asyncio.create_task(scheduler.run())
        started = time.monotonic()
        load_before = machine_load()
        try:
            while time.monotonic() - started < seconds:
                await asyncio.sleep(0.5)
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        elapsed = time.monotonic() - started
        async with svc.db.read() as tx:
            org = await tx.accounts.org_by_name("bench")
            assert org is not None
            made = (await tx.jobs.page(org.id, JobFilter(), limit=1)).total
    finally:
        await db.close()
    fires = len(lateness)
    return {
        "database": url.split(":", 1)[0],
        "load": load,
        "triggers": n,
        "setup_s": round(setup, 1),
        "window_s": round(elapsed, 1),
        "fires": fires,
        "fires_left_out": excluded,
        "jobs": made,
        "fires_per_s": (fires + excluded) / elapsed if elapsed else 0.0,
        "passes": len(passes),
        "largest_pass": max(passes) if passes else 0,
        "p50": figures.percentile(lateness, 50),
        "p90": figures.percentile(lateness, 90),
        "p99": figures.percentile(lateness, 99),
        "max": max(lateness) if lateness else float("nan"),
        "load_average": load_before,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--triggers", type=int, default=10_000)
    parser.add_argument("--load", choices=["spread", "herd", "both"], default="both")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=75.0, help="measuring window (spread)")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--without-notifications",
        action="store_true",
        help="leave out the server's event observers (the scheduler's own cost only)",
    )
    args = parser.parse_args()
    if not args.without_notifications:
        # Registers every event observer, as in a running server (notifications included).
        import jobyard.api.app  # noqa: F401

    pg = args.db in ("postgresql", "both")
    print_machine(describe(PG_ADMIN_URL if pg else None))
    print("## Settings\n")
    print(f"- triggers: {args.triggers:,}, loads: {args.load}, databases: {args.db}")
    print("- scheduler: batch 500 triggers per transaction, grace 10 s, poll 1 s, system clock")
    print(f"- spread window: {args.seconds:.0f} s; herd window: until two minute boundaries passed")
    observers = "none (--without-notifications)" if args.without_notifications else "all"
    print(f"- event observers: {observers}")
    print(flush=True)

    loads = ["spread", "herd"] if args.load == "both" else [args.load]
    results: list[dict[str, Any]] = []
    for load in loads:
        if args.db in ("sqlite", "both"):
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{tmp}/bench.db"
                results.append(await _measure(url, args.triggers, load, args.seconds))
                _print(results[-1])
        if pg:
            async with pg_database("schedules") as url:
                results.append(await _measure(url, args.triggers, load, args.seconds))
                _print(results[-1])

    figures.section("Lateness of fires (commit time minus slot)")
    rows = [
        [
            r["load"],
            r["database"],
            num(r["triggers"]),
            num(r["fires"]),
            num(r["fires_per_s"], 1),
            ms(r["p50"]),
            ms(r["p90"]),
            ms(r["p99"]),
            ms(r["max"]),
            verdict(r["p99"] < TARGET_P99),
        ]
        for r in results
    ]
    print(
        table(
            ["load", "db", "triggers", "fires", "fires/s", "p50", "p90", "p99", "max", "p99<1s"],
            rows,
        )
    )
    figures.save(args.json, "schedules", {"results": results})


def _print(r: dict[str, Any]) -> None:
    print(
        f"{r['load']} on {r['database']}: {r['fires']:,} fires in {r['window_s']} s "
        f"({r['passes']} passes, largest {r['largest_pass']}), jobs {r['jobs']:,}, "
        f"{r['fires_left_out']:,} fires of slots due before the scheduler started left out; "
        f"lateness p50 {ms(r['p50'])}, p99 {ms(r['p99'])}, max {ms(r['max'])}; "
        f"setup {r['setup_s']} s; load average {r['load_average']}",
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
