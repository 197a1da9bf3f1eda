"""Job submit requests/s against an empty FastAPI POST endpoint, side by side.

Measures, with the same load generator (``wrk -t1`` when installed, else bench.load's asyncio
client) in its own process, over loopback:

1. the baseline: ``POST /empty`` of an empty FastAPI app served by uvicorn (one process);
2. ``POST /api/v1/jobs`` with a bearer token on a real ``jobyard serve`` (uvicorn, one
   process, all background loops running) on SQLite;
3. the same on PostgreSQL;
4. the baseline again (the figure used is the mean of both baseline runs).

Each job targets three explicit nodes that no agent serves: it is validated, written with
its node runs and its first events in one transaction and answered 201; the dispatcher then
moves it to voting, finds its nodes offline, marks the runs unavailable and the job
quorum_failed, inside the same server process while the load runs (that work is part of
what is measured). The job count before and after each run is checked against the 201s.

    python -m bench.submit [-c CONNECTIONS] [-d SECONDS] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import orjson

from bench import figures, load, processes
from bench.figures import ms, num, table, verdict
from bench.machine import describe, machine_load, print_machine
from bench.profile import spy

JOB = {
    "command": "true",
    "nodes": ["bench-a", "bench-b", "bench-c"],
    "quorum": "100%",
    "run_timeout": 60,
    "name": "submit-bench",
}
TARGET_RATIO = 0.5
JSON_TYPE = {"Content-Type": "application/json"}


def job_count(url: str, token: str) -> int:
    r = httpx.get(
        f"{url}/api/v1/jobs",
        params={"page_size": 1},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    r.raise_for_status()
    return int(r.json()["count"])


def measure(
    label: str,
    url: str,
    headers: dict[str, str],
    args: argparse.Namespace,
    pid: int,
) -> dict[str, Any]:
    body = orjson.dumps(JOB)
    load.run(url, body, headers, args.connections, args.warmup, args.tool)
    meter = processes.CpuMeter({"server": [pid]})
    profiled = args.profile if label.startswith("jobyard") else None
    with spy(pid, "submit-" + label.split()[-1].lower(), profiled):
        meter.start()
        result = load.run(url, body, headers, args.connections, args.duration, args.tool)
        meter.stop()
    row = {"label": label, **result.as_dict(), "cpu": meter.spent}
    row["cpu_us_per_request"] = meter.spent["server"] / max(result.requests, 1) * 1e6
    print(
        f"{label}: {result.rps:,.0f} req/s, p50 {ms(result.p50)}, p99 {ms(result.p99)}, "
        f"{result.requests} requests in {result.seconds:.1f} s, {result.bad} bad; "
        f"server CPU {row['cpu_us_per_request']:,.0f} us/request; "
        f"CPU {meter.describe(result.seconds)}; load average {machine_load()}",
        flush=True,
    )
    return row


def measure_baseline(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with processes.empty_app() as app:
        rows.append(measure("empty FastAPI POST", f"{app.url}/empty", JSON_TYPE, args, app.pid))
        if args.parsed:
            rows.append(
                measure(
                    "FastAPI POST parsing a pydantic body",
                    f"{app.url}/parsed",
                    JSON_TYPE,
                    args,
                    app.pid,
                )
            )
    return rows


def measure_jobyard(
    label: str, database_url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    with processes.jobyard(database_url) as jy:
        headers = {"Authorization": f"Bearer {jy.token}", "Content-Type": "application/json"}
        url = f"{jy.url}/api/v1/jobs"
        before = job_count(jy.url, jy.token)
        row = measure(label, url, headers, args, jy.pid)
        # In-flight requests finish after wrk stops; then count what was stored.
        time.sleep(1.0)
        after = job_count(jy.url, jy.token)
        row["jobs_stored"] = after - before
        row["server_rss_mb"] = processes.rss_bytes(jy.pid) / 2**20
        ok = after - before >= row["requests"] - row["bad"]
        row["durable_check"] = "ok" if ok else "MISMATCH"
        print(
            f"  jobs stored during warm-up + run: {after - before} "
            f"(201s counted by the load generator in the run: {row['requests'] - row['bad']}) "
            f"-> {row['durable_check']}",
            flush=True,
        )
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--tool", choices=["wrk", "python"], default=None)
    parser.add_argument("--no-parsed", dest="parsed", action="store_false")
    parser.add_argument("--no-postgres", dest="postgres", action="store_false")
    parser.add_argument("--json", help="merge the figures into this JSON file")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the jobyard server into DIR")
    parser.add_argument("--no-machine", dest="machine", action="store_false")
    args = parser.parse_args(argv)
    if args.tool is None:
        args.tool = "wrk" if load.have_wrk() else "python"

    if args.machine:
        print_machine(describe(processes.PG_ADMIN_URL))
    figures.section("Submit: POST /api/v1/jobs vs an empty FastAPI POST")
    print(
        f"settings: load generator {args.tool} (1 thread), {args.connections} connections, "
        f"{args.warmup:.0f} s warm-up then {args.duration:.0f} s measured per row; "
        f"job body {orjson.dumps(JOB).decode()}\n",
        flush=True,
    )
    if args.tool == "python":
        print("(wrk is not installed: `apt-get install wrk` for a lighter load generator)\n")

    rows = measure_baseline(args)
    rows.append(measure_jobyard("jobyard on SQLite", None, args))
    if args.postgres:

        async def with_pg() -> dict[str, Any]:
            async with processes.pg_database("submit") as url:
                return await asyncio.to_thread(measure_jobyard, "jobyard on PostgreSQL", url, args)

        rows.append(asyncio.run(with_pg()))
    again = measure_baseline(args)[0]
    again["label"] = "empty FastAPI POST (again)"
    rows.insert(len(rows), again)

    empty = [r for r in rows if r["label"].startswith("empty FastAPI")]
    base = sum(r["rps"] for r in empty) / len(empty)
    print(
        "\n"
        + table(
            [
                "endpoint",
                "req/s",
                "p50",
                "p99",
                "requests",
                "bad",
                "ratio to empty",
                "target ≥ 0.5x",
            ],
            [
                [
                    r["label"],
                    num(r["rps"]),
                    ms(r["p50"]),
                    ms(r["p99"]),
                    r["requests"],
                    r["bad"],
                    f"{r['rps'] / base:.2f}x",
                    verdict(r["rps"] / base >= TARGET_RATIO)
                    if r["label"].startswith("jobyard")
                    else "",
                ]
                for r in rows
            ],
        )
    )
    print(f"\nbaseline = mean of the empty runs = {base:,.0f} req/s", flush=True)
    out = {"settings": vars(args), "rows": rows, "baseline_rps": base}
    figures.save(args.json, "submit", out)
    return out


if __name__ == "__main__":
    main()
