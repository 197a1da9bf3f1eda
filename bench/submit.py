"""Submit and read a job: jobyard against an empty FastAPI app and the raw driver, side by side.

One run measures, with the same load generator (``wrk -t1`` when installed, else bench.load's
asyncio client) in its own process, over loopback:

1. the baselines: an empty FastAPI ``POST /empty`` and ``GET /empty/{id}`` served by uvicorn
   with jobyard's options (bench/empty_app.py), in one process;
2. ``jobyard serve`` on SQLite, then on PostgreSQL (one process, every background loop
   running), with three nodes online: simulated agents (bench/swarm.py ``--hold-votes``)
   that said ``hello`` and heartbeat but answer no ``commit``, so a job sent to them stays
   in ``voting``. Each job names the three nodes (known nodes only, as by default):

   - **submit**: ``POST /api/v1/jobs`` for the measured time, then the clock runs on until
     no submitted job is still ``new`` (the dispatcher's voting work drained, its commits
     sent to the agents). Submits/s = jobs stored / (load time + drain time); server CPU
     per submit = the server process's CPU (from /proc) over that whole time / jobs;
   - statements and transactions per submit, counted by the server itself
     (``JOBYARD_COUNT_STATEMENTS``, store/counting.py, read from ``/metrics``), over the
     same window (the background loops' own statements included); on PostgreSQL also
     ``pg_stat_database``'s transactions of the database, as a cross-check;
   - **reads**: ``GET /api/v1/jobs/{id}`` of one of those jobs, and the 20-job list
     ``GET /api/v1/jobs?page_size=20``, each with CPU and statements per request;
   - **the raw-driver floor**: the rows one of those submits left in the database (its job,
     node runs, events, watchers ...), copied with the bare driver (sqlite3 / asyncpg)
     into the same database, 1 and 64 jobs per transaction (bench/floor.py);
3. the baselines again (each ratio uses the mean of both baseline runs).

    python -m bench.submit [-c CONNECTIONS] [-d SECONDS] [--no-postgres] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from bench import figures, floor, load, processes
from bench.fanout import DoneBoard, SwarmProcess
from bench.figures import ms, num, table, verdict
from bench.machine import describe, machine_load, print_machine
from bench.profile import spy

NODES = [f"bench-{i:05d}" for i in range(3)]
JOB = {
    "command": "true",
    "nodes": NODES,
    "quorum": "100%",
    "run_timeout": 60,
    "name": "submit-bench",
}
# Counted statements; known nodes only (the default); jobs wait in voting for the whole run.
SERVER_ENV = {
    "JOBYARD_COUNT_STATEMENTS": "true",
    "JOBYARD_ALLOW_UNKNOWN_NODES": "0",
    "JOBYARD_VOTING_TIMEOUT": "3600",
}
TARGETS = {"submit-sqlite": 0.5, "submit-postgresql": 0.3, "get": 0.5, "list": 0.2}
JSON_TYPE = {"Content-Type": "application/json"}
COUNTERS = {
    "statements": "jobyard_db_statements_total",
    "rows": "jobyard_db_statement_rows_total",
    "begun": "jobyard_db_transactions_begun_total",
    "commits": 'jobyard_db_transactions_total{end="commit"}',
}


# -- what the server says about itself


def counters(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    out = {}
    for key, name in COUNTERS.items():
        m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
        out[key] = float(m.group(1)) if m else float("nan")
    return out


def job_count(client: httpx.Client, status: str | None = None) -> int:
    params: dict[str, Any] = {"page_size": 1}
    if status:
        params["status"] = status
    r = client.get("/api/v1/jobs", params=params)
    r.raise_for_status()
    return int(r.json()["count"])


def drain(
    client: httpx.Client, pid: int, stable: float = 1.0, timeout: float = 600
) -> tuple[float, dict[str, float]]:
    """Wait until no job is ``new`` (every submit has reached voting or later) and none is
    being added (requests the load generator left in flight finish after it stops). Returns
    when that state was first seen (``time.monotonic()``) and the CPU spent by then."""
    started = time.monotonic()
    last: tuple[int, int] | None = None
    since = (started, cpu_now(pid))
    while True:
        now = time.monotonic()
        state = (job_count(client), job_count(client, "new"))
        if state != last:
            last, since = state, (now, cpu_now(pid))
        elif state[1] == 0 and now - since[0] >= stable:
            return since
        if now - started > timeout:
            raise RuntimeError(f"jobs still new after {timeout:.0f} s: {state}")
        time.sleep(0.1)


def cpu_now(pid: int) -> dict[str, float]:
    return {"server": processes.cpu_seconds(pid), "postgres": processes.postgres_cpu()}


async def pg_transactions(admin_url: str, database: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        row = await conn.fetchrow(
            "SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1",
            database,
        )
        return int(row["n"]) if row else 0
    finally:
        await conn.close()


# -- one measured phase


def run_load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    args: argparse.Namespace,
    method: str,
    seconds: float,
) -> load.Load:
    return load.run(url, body, headers, args.connections, seconds, args.tool, method)


def measure_plain(
    label: str, url: str, args: argparse.Namespace, pid: int, method: str
) -> dict[str, Any]:
    """A load on an endpoint that leaves nothing behind: requests/s and CPU per request."""
    body = orjson.dumps(JOB) if method == "POST" else b""
    headers = JSON_TYPE if method == "POST" else {}
    run_load(url, body, headers, args, method, args.warmup)
    meter = processes.CpuMeter({"server": [pid]})
    meter.start()
    result = run_load(url, body, headers, args, method, args.duration)
    meter.stop()
    row = {"label": label, **result.as_dict(), "cpu": meter.spent}
    row["cpu_us"] = meter.spent["server"] / max(result.requests, 1) * 1e6
    row["load_average"] = machine_load()
    print(
        f"{label}: {result.rps:,.0f} req/s, p50 {ms(result.p50)}, p99 {ms(result.p99)}, "
        f"{result.requests} requests, {result.bad} bad; "
        f"server CPU {row['cpu_us']:,.0f} us/request; load average {row['load_average']}",
        flush=True,
    )
    return row


def idle_rates(jy: processes.Jobyard, seconds: float = 3.0) -> dict[str, float]:
    """Statements, transactions and CPU seconds per second of the idle server (its
    background loops, with the jobs the submit run left in voting)."""
    before = counters(jy.url)
    cpu = processes.cpu_seconds(jy.pid)
    time.sleep(seconds)
    after = counters(jy.url)
    rates = {k: (after[k] - before[k]) / seconds for k in before}
    rates["cpu"] = (processes.cpu_seconds(jy.pid) - cpu) / seconds
    return rates


def probe_counts(
    jy: processes.Jobyard, path: str, idle: dict[str, float], requests: int = 200
) -> dict[str, float]:
    with httpx.Client(
        base_url=jy.url, headers={"Authorization": f"Bearer {jy.token}"}, timeout=30
    ) as client:
        before = counters(jy.url)
        started = time.monotonic()
        for _ in range(requests):
            client.get(path).raise_for_status()
        elapsed = time.monotonic() - started
        after = counters(jy.url)
    out = {}
    for key, counter in (("statements", "statements"), ("transactions", "begun")):
        spent = after[counter] - before[counter] - idle[counter] * elapsed
        out[key] = max(spent, 0.0) / requests
    return out


def measure_read(
    label: str,
    kind: str,
    jy: processes.Jobyard,
    path: str,
    args: argparse.Namespace,
    idle: dict[str, float],
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {jy.token}"}
    url = jy.url + path
    run_load(url, b"", headers, args, "GET", args.warmup)
    meter = processes.CpuMeter({"server": [jy.pid]})
    with spy(jy.pid, f"{kind}-{label.split()[-1].lower()}", args.profile):
        meter.start()
        result = run_load(url, b"", headers, args, "GET", args.duration)
        meter.stop()
    n = max(result.requests, 1)
    row = {"label": label, "kind": kind, **result.as_dict(), "cpu": meter.spent}
    row["cpu_us"] = meter.spent["server"] / n * 1e6
    row["db_cpu_us"] = meter.spent["postgres"] / n * 1e6
    # Statements and transactions per request from a probe of sequential requests (a short
    # window: the background loops' share, subtracted at their idle rate, stays small).
    row.update(probe_counts(jy, path, idle))
    row["cpu_net_us"] = max(meter.spent["server"] - idle["cpu"] * result.seconds, 0.0) / n * 1e6
    row["load_average"] = machine_load()
    print(
        f"{label} {path}: {result.rps:,.0f} req/s, p50 {ms(result.p50)}, p99 {ms(result.p99)}, "
        f"{result.requests} requests, {result.bad} bad; "
        f"server CPU {row['cpu_us']:,.0f} us/request ({row['cpu_net_us']:,.0f} net of the idle "
        f"loops), {row['statements']:.2f} statements "
        f"and {row['transactions']:.2f} transactions per request; "
        f"load average {row['load_average']}",
        flush=True,
    )
    return row


def measure_submit(
    label: str, jy: processes.Jobyard, args: argparse.Namespace, pg: tuple[str, str] | None
) -> dict[str, Any]:
    """Submits for the measured time, then until none is left ``new``."""
    headers = {"Authorization": f"Bearer {jy.token}", **JSON_TYPE}
    url = f"{jy.url}/api/v1/jobs"
    body = orjson.dumps(JOB)
    with httpx.Client(base_url=jy.url, headers=headers, timeout=30) as client:
        run_load(url, body, headers, args, "POST", args.warmup)
        drain(client, jy.pid)
        stored_before = job_count(client)
        before = counters(jy.url)
        pg_before = asyncio.run(pg_transactions(*pg)) if pg else 0
        with spy(jy.pid, "submit-" + label.split()[-1].lower(), args.profile):
            cpu0 = cpu_now(jy.pid)
            started = time.monotonic()
            result = run_load(url, body, headers, args, "POST", args.duration)
            loaded = time.monotonic() - started
            ended, cpu1 = drain(client, jy.pid)
        elapsed = ended - started
        drained = elapsed - loaded
        spent = {k: cpu1[k] - cpu0[k] for k in cpu0}
        after = counters(jy.url)
        stored = job_count(client) - stored_before
        time.sleep(1.2)  # PostgreSQL publishes its statistics at most once a second
        pg_after = asyncio.run(pg_transactions(*pg)) if pg else 0
        statuses = {s: job_count(client, s) for s in ("new", "voting", "running")}
    n = max(stored, 1)
    row: dict[str, Any] = {"label": label, "kind": "submit", **result.as_dict()}
    row.update(
        cpu=spent,
        load_seconds=loaded,
        drain_seconds=drained,
        elapsed=elapsed,
        jobs_stored=stored,
        submits_per_s=stored / elapsed,
        cpu_us=spent["server"] / n * 1e6,
        db_cpu_us=spent["postgres"] / n * 1e6,
        statements=(after["statements"] - before["statements"]) / n,
        rows=(after["rows"] - before["rows"]) / n,
        transactions=(after["begun"] - before["begun"]) / n,
        write_transactions=(after["commits"] - before["commits"]) / n,
        pg_transactions=(pg_after - pg_before) / n if pg else None,
        statuses=statuses,
        load_average=machine_load(),
    )
    # Every answered 201 is stored (durable), and nothing is stored that was not answered
    # beyond the requests wrk cut off at its deadline (at most one per connection).
    answered = result.requests - result.bad
    ok = answered <= stored <= answered + args.connections
    row["durable_check"] = "ok" if ok else "MISMATCH"
    print(
        f"{label}: {stored} jobs in {loaded:.1f} s of load + {drained:.2f} s until none was new "
        f"= {row['submits_per_s']:,.0f} submits/s (POSTs answered at {result.rps:,.0f}/s, "
        f"p50 {ms(result.p50)}, p99 {ms(result.p99)}, {result.bad} bad); server CPU "
        f"{row['cpu_us']:,.0f} us/submit; {row['statements']:.1f} statements "
        f"({row['rows']:.1f} rows sent), {row['transactions']:.2f} transactions "
        f"({row['write_transactions']:.2f} committed) per submit"
        + (f"; PostgreSQL counted {row['pg_transactions']:.2f} transactions" if pg else "")
        + f"; after: {statuses}; stored vs 201s: {row['durable_check']}; "
        f"load average {row['load_average']}",
        flush=True,
    )
    return row


# -- the raw-driver floor


def newest_job(jy: processes.Jobyard) -> int:
    r = httpx.get(
        f"{jy.url}/api/v1/jobs",
        params={"page_size": 1},
        headers={"Authorization": f"Bearer {jy.token}"},
        timeout=30,
    )
    r.raise_for_status()
    return int(r.json()["results"][0]["id"])


def measure_floor(
    jy: processes.Jobyard, database_url: str | None, args: argparse.Namespace
) -> list[dict[str, Any]]:
    job_id = newest_job(jy)
    out = []
    if database_url is None:
        path = str(Path(jy.server.data_dir) / "jobyard.db")
        sample = floor.sample_sqlite(path, job_id)
        writes = [floor.write_sqlite(path, sample, k, args.floor_jobs) for k in (1, 64)]
    else:
        sample = asyncio.run(floor.sample_postgresql(database_url, job_id))
        writes = [floor.write_postgresql(database_url, sample, k, args.floor_jobs) for k in (1, 64)]
    rows = sample.rows_per_job()
    for w in writes:
        d = {**vars(w), "rows_per_job": rows}
        out.append(d)
        print(
            f"  raw floor, {w.driver}, {w.jobs_per_tx} job(s) per transaction: "
            f"{w.cpu_us_per_job:,.0f} us CPU/job (writing thread), {w.wall_us_per_job:,.0f} us "
            f"wall/job"
            + (f", PostgreSQL {w.db_cpu_us_per_job:,.0f} us/job" if database_url else "")
            + f"; rows per job {rows}",
            flush=True,
        )
    return out


# -- one server


@contextlib.asynccontextmanager
async def voters(jy: processes.Jobyard) -> AsyncIterator[SwarmProcess]:
    """The three nodes, online, holding their votes."""
    swarm = await SwarmProcess.start(
        jy.ws_url, jy.agent_token, "bench", DoneBoard(), "--hold-votes"
    )
    try:
        reply = await swarm.connect("bench", 0, len(NODES))
        if reply.get("ok") != len(NODES):
            raise RuntimeError(f"simulated agents did not connect: {reply}")
        yield swarm
    finally:
        await swarm.quit()


async def measure_jobyard(
    label: str, database_url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    pg = None
    if database_url:
        pg = (processes.PG_ADMIN_URL, database_url.rpartition("/")[2])
    with processes.jobyard(database_url, env=SERVER_ENV) as jy:
        async with voters(jy):
            submit = await asyncio.to_thread(measure_submit, label, jy, args, pg)
            some = await asyncio.to_thread(newest_job, jy)
            idle = await asyncio.to_thread(idle_rates, jy)
            print(
                f"  idle server: {idle['statements']:.1f} statements/s, "
                f"{idle['begun']:.1f} transactions/s, {idle['cpu'] * 100:.0f}% of a core "
                f"(subtracted from the reads' net figures)",
                flush=True,
            )
            get = await asyncio.to_thread(
                measure_read, label, "get", jy, f"/api/v1/jobs/{some}", args, idle
            )
            listed = await asyncio.to_thread(
                measure_read, label, "list", jy, "/api/v1/jobs?page_size=20", args, idle
            )
            floors = await asyncio.to_thread(measure_floor, jy, database_url, args)
        rss = processes.rss_bytes(jy.pid) / 2**20
    return {
        "label": label,
        "idle": idle,
        "submit": submit,
        "get": get,
        "list": listed,
        "floor": floors,
        "server_rss_mb": rss,
    }


def measure_baseline(args: argparse.Namespace) -> dict[str, Any]:
    with processes.empty_app() as app:
        post = measure_plain("empty FastAPI POST", f"{app.url}/empty", args, app.pid, "POST")
        get = measure_plain("empty FastAPI GET", f"{app.url}/empty/1", args, app.pid, "GET")
    return {"post": post, "get": get}


# -- the report


def report(baselines: list[dict[str, Any]], servers: list[dict[str, Any]]) -> dict[str, Any]:
    post = sum(b["post"]["rps"] for b in baselines) / len(baselines)
    get = sum(b["get"]["rps"] for b in baselines) / len(baselines)
    post_cpu = sum(b["post"]["cpu_us"] for b in baselines) / len(baselines)
    get_cpu = sum(b["get"]["cpu_us"] for b in baselines) / len(baselines)
    rows = []
    for s in servers:
        db = s["label"].split()[-1]
        sub = s["submit"]
        written = f"{sub['transactions']:.2f} ({sub['write_transactions']:.2f} write)"
        rows.append(
            _target_row(
                f"submit to voting, {db}",
                sub,
                sub["submits_per_s"] / post,
                TARGETS["submit-" + db.lower()],
                db,
                written,
            )
        )
        for kind, name in (
            ("get", "GET /api/v1/jobs/{id}"),
            ("list", "GET /api/v1/jobs?page_size=20"),
        ):
            r = s[kind]
            rows.append(
                _target_row(
                    f"{name}, {db}",
                    r,
                    r["rps"] / get,
                    TARGETS[kind],
                    db,
                    f"{r['transactions']:.2f}",
                )
            )
    figures.section("Against the targets (ratios to the mean of the empty runs)")
    print(
        table(
            [
                "operation",
                "per s",
                "ratio",
                "target",
                "server CPU us/op",
                "same, net of idle loops",
                "PostgreSQL CPU us/op",
                "statements/op",
                "transactions/op",
            ],
            rows,
        )
    )
    print(
        f"\nempty FastAPI POST: {post:,.0f} req/s, {post_cpu:,.0f} us CPU/request; "
        f"empty FastAPI GET: {get:,.0f} req/s, {get_cpu:,.0f} us CPU/request (means of "
        f"{len(baselines)} runs)"
    )
    figures.section("Per-submit cost against the raw-driver floor (same rows, same database)")
    frows = []
    for s in servers:
        sub = s["submit"]
        for f in s["floor"]:
            frows.append(
                [
                    s["label"],
                    f"{f['driver']}, {f['jobs_per_tx']} job(s)/transaction",
                    num(f["cpu_us_per_job"]),
                    num(f["wall_us_per_job"]),
                    num(f["db_cpu_us_per_job"]) if f["driver"] == "asyncpg" else "-",
                    num(sub["cpu_us"]),
                    f"{sub['cpu_us'] / max(f['cpu_us_per_job'], 1e-9):.1f}x",
                ]
            )
    print(
        table(
            [
                "server",
                "floor",
                "floor CPU us/job",
                "floor wall us/job",
                "floor PostgreSQL CPU us/job",
                "jobyard server CPU us/submit",
                "jobyard / floor",
            ],
            frows,
        )
    )
    return {"empty_post_rps": post, "empty_get_rps": get}


def _target_row(
    name: str, r: dict[str, Any], ratio: float, target: float, db: str, transactions: str
) -> list[str]:
    rate = r["submits_per_s"] if "submits_per_s" in r else r["rps"]
    return [
        name,
        num(rate),
        f"{ratio:.3f}x",
        f"≥ {target}x: {verdict(ratio >= target)}",
        num(r["cpu_us"]),
        num(r["cpu_net_us"]) if "cpu_net_us" in r else "",
        num(r["db_cpu_us"]) if db != "SQLite" else "-",
        f"{r['statements']:.2f}",
        transactions,
    ]


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    baselines = [await asyncio.to_thread(measure_baseline, args)]
    servers = [await measure_jobyard("jobyard on SQLite", None, args)]
    if args.postgres:
        async with processes.pg_database("submit") as url:
            servers.append(await measure_jobyard("jobyard on PostgreSQL", url, args))
    baselines.append(await asyncio.to_thread(measure_baseline, args))
    summary = report(baselines, servers)
    return {"settings": vars(args), "baselines": baselines, "servers": servers, **summary}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--floor-jobs", type=int, default=640, help="jobs the raw floor writes")
    parser.add_argument("--tool", choices=["wrk", "python"], default=None)
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--json", help="merge the figures into this JSON file")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the jobyard server into DIR")
    parser.add_argument("--no-machine", dest="machine", action="store_false")
    args = parser.parse_args(argv)
    if args.tool is None:
        args.tool = "wrk" if load.have_wrk() else "python"

    if args.machine:
        print_machine(describe(processes.PG_ADMIN_URL))
    figures.section("Submit and read: jobyard vs an empty FastAPI app vs the raw driver")
    print(
        f"settings: load generator {args.tool} (1 thread), {args.connections} connections, "
        f"{args.warmup:.0f} s warm-up then {args.duration:.0f} s measured per row (a submit row "
        f"runs on until no job is new); nodes {', '.join(NODES)} online (simulated agents "
        f"holding their votes); server env {SERVER_ENV}; raw floor {args.floor_jobs} jobs per "
        f"setting; job body {orjson.dumps(JOB).decode()}\n",
        flush=True,
    )
    if args.tool == "python":
        print("(wrk is not installed: `apt-get install wrk` for a lighter load generator)\n")
    out = asyncio.run(amain(args))
    figures.save(args.json, "submit", out)
    return out


if __name__ == "__main__":
    main()
