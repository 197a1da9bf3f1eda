"""Output: the cost of storing it, and the job page of a job that printed 300,000 lines.

1. Writes. In one process, on SQLite (a file) and on PostgreSQL: a node run's stdout is
   appended in 1 KiB pieces, one transaction per piece (as the server applies an agent's
   ``output`` frames), through the real store (``tx.outputs.append``, default caps: head
   256 KiB, tail 768 KiB). Printed per total size (10 KiB ... 4 MiB): microseconds per KiB
   written. Flat means linear. Beside it, the former storage (one text value per stream,
   ``stdout = stdout || piece``, capped at 1 MB), in a scratch table of the same database.
2. The page. A real ``jobyard serve`` (SQLite) and a real ``jobyard agent`` run
   ``python3 -c`` printing 300,000 lines on stdout then one line on stderr. Then the job
   page (``GET /jobs/{id}``, signed in) is fetched N times: wall time on loopback (the
   server's time plus a loopback round trip), the server process's CPU per request, and the
   size of the HTML; the same for the raw stdout (``/api/v1/jobs/{id}/output/...``).

    python -m bench.output [--sizes 10,100,1024,4096] [--repeat 3] [--pages 20] [--no-pg]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench import figures, processes
from bench.figures import ms, table
from bench.machine import describe, print_machine
from jobyard.domain.outputs import OutputCaps
from jobyard.service.outputs import caps_of, stream_text
from jobyard.settings import Settings
from jobyard.store import Database, Tx
from jobyard.store.schema import jobs, node_runs, organizations

PIECE = 1024
PIECE_TEXT = ("x" * 63 + "\n") * (PIECE // 64)
LEGACY_CAP = 1_000_000
LINES = 300_000
FLOOD = (
    "import sys\n"
    f"sys.stdout.write(''.join(f'line {{i}} of the flood\\n' for i in range({LINES})))\n"
    "sys.stdout.flush()\n"
    "sys.stderr.write('fatal: the last error\\n')\n"
    "sys.exit(3)\n"
)
LEGACY = sa.table("bench_legacy_output", sa.column("id"), sa.column("stdout"))


async def _new_run(db: Database) -> int:
    now = dt.datetime.now(dt.UTC)
    async with db.begin() as tx:
        org = (
            await tx.conn.execute(
                organizations.insert()
                .values(name=f"o{time.monotonic_ns()}", display_name="O", created_at=now)
                .returning(organizations.c.id)
            )
        ).scalar_one()
        job = (
            await tx.conn.execute(
                jobs.insert()
                .values(
                    org_id=org, command="x", target={}, quorum="1", env={}, status="running",
                    meta={}, created_at=now, updated_at=now,
                )
                .returning(jobs.c.id)
            )
        ).scalar_one()  # fmt: skip
        run = (
            await tx.conn.execute(
                node_runs.insert()
                .values(
                    job_id=job, org_id=org, node_name="n", status="running", created_at=now,
                    updated_at=now,
                )
                .returning(node_runs.c.id)
            )
        ).scalar_one()  # fmt: skip
    return int(run)


@dataclass
class Cost:
    wall: float  # seconds
    cpu: float  # seconds: this process (SQLite runs in it) plus the PostgreSQL backend
    statements: int


async def _measure(db: Database, pieces: int, write: Callable[[Tx], Awaitable[None]]) -> Cost:
    """Run ``write`` once per piece, one transaction each."""
    count = [0]

    def counted(*_args: Any) -> None:
        count[0] += 1

    backend = None
    if not db.is_sqlite:
        async with db.read() as tx:  # the pool hands sequential transactions one connection
            backend = int((await tx.conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())
    for engine in db.write_engines():
        sa.event.listen(engine, "before_cursor_execute", counted)
    cpu0 = time.process_time() + (processes.cpu_seconds(backend) if backend else 0.0)
    start = time.perf_counter()
    try:
        for _ in range(pieces):
            async with db.begin() as tx:
                await write(tx)
    finally:
        for engine in db.write_engines():
            sa.event.remove(engine, "before_cursor_execute", counted)
    wall = time.perf_counter() - start
    cpu = time.process_time() + (processes.cpu_seconds(backend) if backend else 0.0) - cpu0
    return Cost(wall, cpu, count[0])


async def _chunked(db: Database, total: int, caps: OutputCaps) -> Cost:
    run = await _new_run(db)

    async def write(tx: Tx) -> None:
        await tx.outputs.append(run, "stdout", PIECE_TEXT, caps)

    cost = await _measure(db, total // PIECE, write)
    async with db.read() as tx:  # what a reader gets: head, marker, tail
        kept = len((await stream_text(tx, run, "stdout")).encode())
    assert kept <= caps.head + caps.tail + PIECE + 200, kept
    return cost


async def _legacy(db: Database, total: int) -> Cost:
    """The former storage: read the length, then ``stdout = stdout || piece``."""
    async with db.begin() as tx:
        row = (
            await tx.conn.execute(LEGACY.insert().values(stdout="").returning(LEGACY.c.id))
        ).scalar_one()
    col = LEGACY.c.stdout

    async def write(tx: Tx) -> None:
        length = (
            await tx.conn.execute(sa.select(sa.func.length(col)).where(LEGACY.c.id == row))
        ).scalar_one()
        room = LEGACY_CAP - length
        if room > 0:
            await tx.conn.execute(
                LEGACY.update().where(LEGACY.c.id == row).values(stdout=col + PIECE_TEXT[:room])
            )

    return await _measure(db, total // PIECE, write)


@contextlib.asynccontextmanager
async def _database(kind: str, tmp: Path) -> AsyncIterator[Database]:
    async with contextlib.AsyncExitStack() as stack:
        if kind == "sqlite":
            url = f"sqlite:///{tmp / 'bench.db'}"
        else:
            url = await stack.enter_async_context(processes.pg_database("output"))
        db = Database(url)
        stack.push_async_callback(db.close)
        await db.migrate()
        async with db.begin() as tx:
            await tx.conn.execute(
                sa.text(
                    "CREATE TABLE bench_legacy_output ("
                    + ("id INTEGER PRIMARY KEY" if kind == "sqlite" else "id BIGSERIAL PRIMARY KEY")
                    + ", stdout TEXT NOT NULL DEFAULT '')"
                )
            )
        yield db


async def writes(kinds: list[str], sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    caps = caps_of(Settings(), "stdout")
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        with tempfile.TemporaryDirectory(prefix="jobyard-bench-output-") as tmp:
            async with _database(kind, Path(tmp)) as db:
                for kib in sizes:
                    new = min(
                        [await _chunked(db, kib * 1024, caps) for _ in range(repeat)],
                        key=lambda c: c.cpu,
                    )
                    old = min(
                        [await _legacy(db, kib * 1024) for _ in range(repeat)], key=lambda c: c.cpu
                    )
                    row = {"database": kind, "kib": kib, "pieces": kib * 1024 // PIECE}
                    for name, cost in (("chunks", new), ("former", old)):
                        row[f"{name}_wall_us_per_kib"] = cost.wall / kib * 1e6
                        row[f"{name}_cpu_us_per_kib"] = cost.cpu / kib * 1e6
                        row[f"{name}_statements_per_kib"] = cost.statements / kib
                    rows.append(row)
                    print(
                        f"  {kind} {kib} KiB: chunks {row['chunks_cpu_us_per_kib']:.0f} µs CPU/KiB,"
                        f" former {row['former_cpu_us_per_kib']:.0f} µs CPU/KiB",
                        flush=True,
                    )  # fmt: skip
    return rows


def page(pages: int) -> dict[str, Any]:
    from tests.e2e.procs import wait_until
    from tests.web.dashboard import csrf_of
    from tests.web.yard import EMAIL, PASSWORD, running_yard

    with (
        tempfile.TemporaryDirectory(prefix="jobyard-bench-page-") as tmp,
        running_yard(Path(tmp), agents=("flood",)) as yard,
        yard.api() as api,
    ):
        made = api.post("/api/v1/jobs", json={"argv": ["python3", "-c", FLOOD], "nodes": ["flood"]})
        made.raise_for_status()
        job_id = made.json()["id"]
        start = time.perf_counter()
        wait_until(
            lambda: api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "complete",
            timeout=300,
            what="the flood job",
        )
        ran = time.perf_counter() - start
        with httpx.Client(base_url=yard.url, timeout=60.0) as browser:
            form = browser.get("/login")
            signed = browser.post(
                "/login",
                data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
            )
            assert signed.status_code == 303, signed.text
            out: dict[str, Any] = {"flood_job_s": ran}
            for name, client, path in (
                ("job page", browser, f"/jobs/{job_id}"),
                ("raw stdout", api, f"/api/v1/jobs/{job_id}/output/flood/stdout"),
                ("live read, from 0", browser, f"/jobs/{job_id}/output/flood/stdout"),
            ):
                out[name] = _timed(client, path, pages, yard.server.pid)
    return out


def _timed(client: httpx.Client, path: str, n: int, pid: int) -> dict[str, Any]:
    client.get(path).raise_for_status()  # warm
    walls: list[float] = []
    cpu0 = processes.cpu_seconds(pid)
    size = 0
    for _ in range(n):
        t = time.perf_counter()
        got = client.get(path)
        walls.append(time.perf_counter() - t)
        got.raise_for_status()
        size = len(got.content)
    cpu = (processes.cpu_seconds(pid) - cpu0) / n
    return {
        "median_s": statistics.median(walls),
        "p95_s": figures.percentile(walls, 95),
        "max_s": max(walls),
        "server_cpu_s": cpu,
        "bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1024,4096", help="KiB written per stream")
    parser.add_argument("--repeat", type=int, default=3, help="best of N per size")
    parser.add_argument("--pages", type=int, default=20, help="page fetches to time")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-page", action="store_true", help="only the writes")
    parser.add_argument("--json")
    args = parser.parse_args()
    kinds = ["sqlite"] + ([] if args.no_pg else ["postgresql"])
    print_machine(describe(None if args.no_pg else processes.PG_ADMIN_URL))
    settings = Settings()
    print(
        f"settings: stdout head {settings.stdout_head_cap} B, tail {settings.stdout_tail_cap} B;"
        f" pieces of {PIECE} B, one transaction each; best of {args.repeat}"
    )
    figures.section("Writes: cost per KiB as a stream grows")
    rows = asyncio.run(writes(kinds, [int(s) for s in args.sizes.split(",")], args.repeat))
    headers = ["database", "KiB written", "pieces"]
    for name in ("chunks", "former"):
        headers += [f"{name}: CPU µs/KiB", f"{name}: wall µs/KiB", f"{name}: statements/KiB"]
    cells = []
    for r in rows:
        line = [r["database"], f"{r['kib']:,}", f"{r['pieces']:,}"]
        for name in ("chunks", "former"):
            line += [
                f"{r[f'{name}_cpu_us_per_kib']:.0f}",
                f"{r[f'{name}_wall_us_per_kib']:.0f}",
                f"{r[f'{name}_statements_per_kib']:.2f}",
            ]
        cells.append(line)
    print(table(headers, cells))
    if args.no_page:
        figures.save(args.json, "output", {"writes": rows})
        return
    figures.section(f"The page of a job that printed {LINES:,} lines (SQLite)")
    timed = page(args.pages)
    print(f"the flood job ran in {timed['flood_job_s']:.1f} s (submit to complete)")
    print(
        table(
            ["request", "median", "p95", "max", "server CPU / request", "bytes"],
            [
                [
                    name,
                    ms(v["median_s"]),
                    ms(v["p95_s"]),
                    ms(v["max_s"]),
                    ms(v["server_cpu_s"]),
                    f"{v['bytes']:,}",
                ]
                for name, v in timed.items()
                if isinstance(v, dict)
            ],
        )
    )
    figures.save(args.json, "output", {"writes": rows, "page": timed})


if __name__ == "__main__":
    main()
