"""Notification fan-out: one event, 1,000 watchers.

In one process on SQLite (a file) and on PostgreSQL: an organization with N users who all
watch one job. For each repetition a new job (same watchers) is driven to ``complete``;
measured are

1. outbox: the transaction that records the completion (node-run results, the job's
   ``complete`` event, the observer's recipients query and its N outbox rows), from
   ``BEGIN`` to ``COMMIT`` — when it returns, every delivery is durably queued;
2. in-app: from that commit until all N notifications are in the inboxes, delivered by the
   real relay loop (``dispatch/outbox.Relay``, woken by the commit): observed through the
   wake-ups the relay publishes to each inbox's live stream after its transactions commit,
   and checked afterwards by counting the inbox rows;
3. email (``--email``): from the commit until an SMTP server (aiosmtpd, in a thread of this
   process, so it shares the CPU) has received all N emails.

    python -m bench.notify_fanout [--watchers 1000] [--repeat 5] [--email] [--no-pg] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tests.e2e.procs import free_port

from bench import figures, processes
from bench.figures import ms, table
from bench.machine import describe, print_machine
from jobyard.dispatch.outbox import Relay
from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts, jobs
from jobyard.service.context import Services
from jobyard.service.outbox import inbox_topic
from jobyard.service.transitions import move_job, move_run
from jobyard.settings import Settings
from jobyard.store import Database
from jobyard.store.notify_schema import notifications, outbox, watchers
from jobyard.store.schema import memberships, users


class Mailbox:
    """Counts the messages an aiosmtpd server receives (in its own thread)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.count += 1
        return "250 OK"


async def setup(svc: Services, n: int) -> tuple[Principal, list[int]]:
    """An organization, its admin, and ``n`` users (written in bulk)."""
    await accounts.create_org(svc, "fanout")
    await accounts.create_user(svc, "fanout", "admin@fanout.test", Role.ADMIN)
    token = await accounts.create_token(svc, "fanout", "admin@fanout.test")
    admin = await accounts.authenticate(svc, token.secret)
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        await tx.conn.execute(
            users.insert(),
            [
                {"email": f"w{i}@fanout.test", "display_name": f"w{i}", "created_at": now}
                for i in range(n)
            ],
        )
        ids = list(
            (
                await tx.conn.execute(
                    sa.select(users.c.id).where(users.c.email.like("w%@fanout.test"))
                )
            ).scalars()
        )
        await tx.conn.execute(
            memberships.insert(),
            [
                {"org_id": admin.org_id, "user_id": u, "role": "user", "created_at": now}
                for u in ids
            ],
        )
    return admin, ids


async def one_event(svc: Services, admin: Principal, people: list[int]) -> tuple[int, float]:
    """A job watched by ``people``, up to running; then the timed completion. Returns the
    event's job id and the seconds the completing transaction took."""
    view = await jobs.create_job(
        svc, admin, JobSpec(target=Target(nodes=("n1",)), command="true", name="fanout")
    )
    job_id = view.job.id
    now = svc.clock.now()
    async with svc.db.begin() as tx:
        await tx.conn.execute(
            watchers.insert(),
            [
                {"org_id": admin.org_id, "job_id": job_id, "user_id": u, "created_at": now}
                for u in people
            ],
        )
        job = await tx.jobs.get_any(job_id)
        assert job is not None
        job = await move_job(svc, tx, job, JobStatus.VOTING, actor=None)
        assert job is not None
        [run] = await tx.jobs.runs(job_id)
        await move_run(svc, tx, run, NodeRunStatus.READY, actor=None)
        job = await move_job(svc, tx, job, JobStatus.RUNNING, actor=None)
        assert job is not None
    started = time.perf_counter()
    async with svc.db.begin() as tx:
        [run] = await tx.jobs.runs(job_id)
        await move_run(svc, tx, run, NodeRunStatus.SUCCEEDED, actor=None)
        await move_job(svc, tx, job, JobStatus.COMPLETE, actor=None)
    return job_id, time.perf_counter() - started


async def count_inbox(svc: Services, job_id: int) -> int:
    async with svc.db.read() as tx:
        q = sa.select(sa.func.count()).where(notifications.c.job_id == job_id)
        return int((await tx.conn.execute(q)).scalar_one())


async def count_outbox(svc: Services) -> dict[str, int]:
    async with svc.db.read() as tx:
        q = sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status)
        return {s: int(c) for s, c in (await tx.conn.execute(q)).all()}


async def wait_for(check: Any, timeout: float = 300.0) -> float:
    """Poll ``check()`` every 5 ms until true; returns when it became true."""
    deadline = time.perf_counter() + timeout
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the fan-out did not finish in time")
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def all_woken(queue: asyncio.Queue[Any], n: int, timeout: float = 120.0) -> float:
    """Wait until ``n`` inbox wake-ups arrived (one per person; each is published after the
    relay's transaction committed); returns when the last one came."""
    seen = 0
    async with asyncio.timeout(timeout):
        while seen < n:
            await queue.get()
            seen += 1
    return time.perf_counter()


@contextlib.asynccontextmanager
async def services(url: str, settings: Settings) -> AsyncIterator[Services]:
    db = Database(url)
    await db.migrate()
    try:
        yield Services(db=db, settings=settings.replace(database_url=url))
    finally:
        await db.close()


async def measure(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    mailbox = Mailbox() if args.email else None
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="jobyard-fanout-")))
    if mailbox is not None:
        mailbox.controller.start()
        settings = settings.replace(
            smtp_host="127.0.0.1", smtp_port=mailbox.controller.port, smtp_from="j@fanout.test"
        )
    rows: list[dict[str, Any]] = []
    try:
        async with services(url, settings) as svc:
            admin, people = await setup(svc, args.watchers)
            # The N watchers and the job's creator, who watches by default.
            everyone = [*people, admin.user_id]
            topics = [inbox_topic(u) for u in everyone]
            async with Relay(svc).running():
                for i in range(args.repeat):
                    before = mailbox.count if mailbox else 0
                    async with svc.hub.subscribe(*topics, maxsize=len(topics) * 4) as woken:
                        job_id, queued = await one_event(svc, admin, people)
                        committed = time.perf_counter()
                        done = await all_woken(woken, len(everyone))
                    assert await count_inbox(svc, job_id) == len(everyone)
                    row: dict[str, Any] = {
                        "run": i + 1,
                        "outbox": queued,
                        "in_app": done - committed,
                    }
                    if mailbox is not None:

                        async def mails(start: int = before, n: int = len(everyone)) -> bool:
                            return mailbox.count - start >= n

                        row["email"] = await wait_for(mails) - committed
                    rows.append(row)
            row_counts = await count_outbox(svc)
    finally:
        if mailbox is not None:
            mailbox.controller.stop()
    return {"label": label, "runs": rows, "outbox_rows": row_counts}


def report(result: dict[str, Any], email: bool) -> None:
    figures.section(f"{result['label']}: one event, {result['watchers']} watchers + the creator")
    headers = ["run", "outbox (commit)", "in-app (after commit)"]
    if email:
        headers.append("email (after commit)")
    rows = []
    for r in result["runs"]:
        row = [r["run"], ms(r["outbox"]), ms(r["in_app"])]
        if email:
            row.append(ms(r["email"]))
        rows.append(row)
    keys = ["outbox", "in_app"] + (["email"] if email else [])
    rows.append(["median", *(ms(statistics.median(r[k] for r in result["runs"])) for k in keys)])
    print(table(headers, rows))
    print(f"\noutbox rows by status at the end: {result['outbox_rows']}", flush=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="jobyard-fanout-") as tmp:
        results["sqlite"] = await measure("SQLite", f"sqlite:///{tmp}/fanout.db", args)
    if args.pg:
        async with processes.pg_database("fanout") as url:
            results["postgresql"] = await measure("PostgreSQL", url, args)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--email", action="store_true", help="also deliver N emails over SMTP")
    parser.add_argument("--no-pg", dest="pg", action="store_false")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    info = describe(processes.PG_ADMIN_URL if args.pg else None)
    print("# Notification fan-out\n")
    print_machine(info)
    print("## Settings\n")
    print(f"- watchers: {args.watchers}; repetitions: {args.repeat}; email: {args.email}")
    print("- relay: in-app batches of 1,000 rows per transaction, in a loop of their own;")
    print("  email and webhook batches of 200 rows, emails spread over 4 SMTP connections at")
    print("  once, in another loop (in-app rows never wait behind them); both loops are woken")
    print("  by the committing transaction (hub) and otherwise tick every second")
    print("- in-app: timed to the relay's wake-ups of the N+1 inboxes (published after commit);")
    print("  email: the SMTP server's message count is polled every 5 ms\n")
    results = asyncio.run(run(args))
    for result in results.values():
        result["watchers"] = args.watchers
        report(result, args.email)
    figures.save(args.json, "notify_fanout", {"machine": info, "results": results})
    return results


if __name__ == "__main__":
    main()
