"""Fan-out, sustained throughput and idle-agent memory, with simulated agents on real sockets.

Against a real ``jobyard serve`` (SQLite, then PostgreSQL), with ``bench.swarm`` processes
holding many real WebSocket agents each:

1. latency: a job on 10, 100 and 1,000 connected agents, several repetitions each: time
   from just before ``POST /api/v1/jobs`` to the moment the last agent receives the ``ack``
   of its result (the server publishes acks after the transaction that applied the results,
   and completed the job, has committed); each job's status is then read back and must be
   ``complete`` with every run succeeded;
2. sustained: several jobs in flight at once, back to back, for a fixed time: node runs
   completed per second, with the CPU each process spent;
3. memory: RSS of a fresh server with 0, 1,000, 5,000 and 10,000 idle agents connected
   (heartbeating at the server's interval);
4. beside it, in the same run: pgqueuer and Celery (Redis) draining no-op jobs (bench.queues).

    python -m bench.fanout [--db sqlite|postgresql|both] [--sizes 10,100,1000] [--reps 10]
                           [--idle 1000,5000,10000] [--no-queues] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import figures, processes, queues
from bench.figures import ms, num, percentile, table, verdict
from bench.machine import describe, print_machine
from bench.profile import spy

PER_PROCESS = 2500
TARGET_P99 = 0.5  # seconds, for a job on 1,000 agents
TARGET_CPU_PER_RUN = 0.25e-3  # seconds of server CPU per node run
TARGET_IDLE_MB = 300  # for 10,000 idle agents


# -- swarm processes


class SwarmProcess:
    """One ``python -m bench.swarm`` child, driven over its stdin/stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, done: DoneBoard) -> None:
        self.proc = proc
        self.done = done
        self.replies: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())
        self.names: list[str] = []

    @classmethod
    async def start(
        cls, url: str, token: str, prefix: str, done: DoneBoard, *flags: str
    ) -> SwarmProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.swarm",
            "--url",
            url,
            "--token",
            token,
            "--prefix",
            prefix,
            *flags,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        swarm = cls(proc, done)
        started = await swarm.reply()
        assert started["event"] == "started", started
        return swarm

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            msg = json.loads(line)
            if msg["event"] == "done":
                self.done.add(msg["job"], msg["n"], msg["t"])
            else:
                await self.replies.put(msg)

    async def send(self, **cmd: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await self.proc.stdin.drain()

    async def reply(self, timeout: float = 600) -> dict[str, Any]:
        return await asyncio.wait_for(self.replies.get(), timeout)

    async def connect(self, prefix: str, first: int, count: int) -> dict[str, Any]:
        await self.send(cmd="connect", first=first, count=count)
        self.names += [f"{prefix}-{i:05d}" for i in range(first, first + count)]
        return await self.reply()

    async def stats(self) -> dict[str, Any]:
        await self.send(cmd="stats")
        return await self.reply()

    async def quit(self) -> None:
        with contextlib.suppress(Exception):
            await self.send(cmd="quit")
            await asyncio.wait_for(self.proc.wait(), 60)
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class DoneBoard:
    """Per job, how many agents have seen their result acked, and when the last one did."""

    count: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[int, float] = field(default_factory=dict)
    waiters: dict[int, tuple[int, asyncio.Future[float]]] = field(default_factory=dict)

    def add(self, job: int, n: int, t: float) -> None:
        self.count[job] += n
        self.last[job] = max(t, self.last.get(job, 0.0))
        self._check(job)

    def _check(self, job: int) -> None:
        waiter = self.waiters.get(job)
        if waiter and self.count[job] >= waiter[0] and not waiter[1].done():
            waiter[1].set_result(self.last[job])
            del self.waiters[job]

    async def wait(self, job: int, nodes: int, timeout: float) -> float:
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[job] = (nodes, fut)
        self._check(job)
        return await asyncio.wait_for(fut, timeout)


@contextlib.asynccontextmanager
async def swarms() -> AsyncIterator[list[SwarmProcess]]:
    """A list of swarm processes (``grow`` adds them), all stopped on exit."""
    procs: list[SwarmProcess] = []
    try:
        yield procs
    finally:
        await asyncio.gather(*(p.quit() for p in procs))


async def grow(
    jy: processes.Jobyard,
    procs: list[SwarmProcess],
    board: DoneBoard,
    total: int,
    prefix: str = "sim",
    per_process: int = PER_PROCESS,
    slots: int = 1,
) -> dict[str, Any]:
    """Connect more agents (of ``slots`` slots each) until ``total`` are connected; returns
    connect figures."""
    have = sum(len(p.names) for p in procs)
    started = time.monotonic()
    failed = 0
    errors: list[str] = []
    while have < total:
        if not procs or len(procs[-1].names) >= per_process:
            procs.append(
                await SwarmProcess.start(
                    jy.ws_url, jy.agent_token, prefix, board, "--slots", str(slots)
                )
            )
        proc = procs[-1]
        count = min(per_process - len(proc.names), total - have)
        reply = await proc.connect(prefix, have, count)
        failed += reply["failed"]
        errors += reply["errors"]
        have += count
    return {"seconds": time.monotonic() - started, "failed": failed, "errors": errors[-3:]}


# -- measurements


def job_body(nodes: list[str]) -> dict[str, Any]:
    return {"command": "true", "nodes": nodes, "quorum": "100%", "run_timeout": 120}


async def run_job(
    client: httpx.AsyncClient, board: DoneBoard, nodes: list[str], timeout: float = 120
) -> tuple[int, float, float]:
    """Submit a job on ``nodes`` and wait for every result's ack: (job id, total s, POST s)."""
    t0 = time.monotonic()
    r = await client.post("/api/v1/jobs", json=job_body(nodes))
    t1 = time.monotonic()
    if r.status_code != 201:
        raise RuntimeError(f"submit failed: {r.status_code} {r.text[:300]}")
    job = int(r.json()["id"])
    last = await board.wait(job, len(nodes), timeout)
    return job, last - t0, t1 - t0


async def check_complete(client: httpx.AsyncClient, job: int, nodes: int) -> str:
    r = await client.get(f"/api/v1/jobs/{job}")
    data = r.json()
    statuses: dict[str, int] = defaultdict(int)
    for run in data["node_runs"]:
        statuses[run["status"]] += 1
    ok = data["status"] == "complete" and statuses.get("succeeded", 0) == nodes
    return "ok" if ok else f"{data['status']} {dict(statuses)}"


async def agent_frames(client: httpx.AsyncClient) -> float:
    """WebSocket frames the server exchanged with agents so far, both ways (``/metrics``)."""
    text = (await client.get("/metrics")).text
    found = re.findall(r'^jobyard_agent_frames_total\{direction="(?:in|out)"\} (\S+)$', text, re.M)
    return sum(float(v) for v in found) if found else float("nan")


async def latency(
    client: httpx.AsyncClient,
    board: DoneBoard,
    names: list[str],
    sizes: list[int],
    reps: int,
    server_pid: int,
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        nodes = names[:size]
        await run_job(client, board, nodes)  # warm-up
        totals, posts, checks = [], [], []
        frames_before = await agent_frames(client)
        cpu = 0.0  # the server's, from submit to the last ack (read-backs left out)
        for _ in range(reps):
            cpu_before = processes.total_cpu([server_pid])
            job, total, post = await run_job(client, board, nodes)
            cpu += processes.total_cpu([server_pid]) - cpu_before
            totals.append(total)
            posts.append(post)
            checks.append(await check_complete(client, job, size))
        frames = await agent_frames(client) - frames_before
        bad = [c for c in checks if c != "ok"]
        row = {
            # Heartbeats included (one an agent per heartbeat interval, over the reps).
            "frames_per_run": frames / (reps * size),
            "cpu_per_run": cpu / (reps * size),
            "nodes": size,
            "reps": reps,
            "p50": percentile(totals, 50),
            "p99": percentile(totals, 99),
            "max": max(totals),
            "post_p50": percentile(posts, 50),
            "raw": [round(t, 4) for t in totals],
            "checked": "ok" if not bad else f"{len(bad)} not complete: {bad[:2]}",
        }
        print(
            f"  {size:>5} nodes: p50 {ms(row['p50'])}, p99 {ms(row['p99'])}, "
            f"POST p50 {ms(row['post_p50'])}; {row['frames_per_run']:.2f} frames/node run; "
            f"server CPU {row['cpu_per_run'] * 1e3:.3f} ms/node run; "
            f"read back: {row['checked']}; "
            f"raw s: {row['raw']}",
            flush=True,
        )
        rows.append(row)
    return rows


async def sustained(
    client: httpx.AsyncClient,
    board: DoneBoard,
    names: list[str],
    job_size: int,
    in_flight: int,
    seconds: float,
    meter: processes.CpuMeter,
) -> dict[str, Any]:
    windows = [names[i : i + job_size] for i in range(0, len(names) - job_size + 1, job_size)]
    completed_runs = 0
    completed_jobs = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def submitter(k: int) -> None:
        nonlocal completed_runs, completed_jobs
        i = k
        while time.monotonic() < stop_at:
            nodes = windows[i % len(windows)]
            i += in_flight
            _, total, _ = await run_job(client, board, nodes)
            completed_runs += len(nodes)
            completed_jobs += 1
            latencies.append(total)

    frames_before = await agent_frames(client)
    meter.start()
    started = time.monotonic()
    await asyncio.gather(*(submitter(k) for k in range(in_flight)))
    elapsed = time.monotonic() - started
    meter.stop()
    frames = await agent_frames(client) - frames_before
    out = {
        "frames_per_run": frames / max(1, completed_runs),
        "job_size": job_size,
        "in_flight": in_flight,
        "seconds": elapsed,
        "jobs": completed_jobs,
        "node_runs": completed_runs,
        "runs_per_s": completed_runs / elapsed,
        "job_p50": percentile(latencies, 50),
        "job_p99": percentile(latencies, 99),
        "cpu": meter.spent,
    }
    print(
        f"  {completed_runs:,} node runs in {completed_jobs} jobs of {job_size} nodes "
        f"({in_flight} in flight) in {elapsed:.1f} s = {out['runs_per_s']:,.0f} node runs/s; "
        f"job p50 {ms(out['job_p50'])}, p99 {ms(out['job_p99'])}; "
        f"{out['frames_per_run']:.2f} frames/node run",
        flush=True,
    )
    print(f"  CPU: {meter.describe(elapsed)}", flush=True)
    return out


async def idle_memory(
    database_url: str | None,
    steps: list[int],
    settle: float,
    env: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    rows = []
    with processes.jobyard(database_url, env=env) as jy:
        board = DoneBoard()
        async with swarms() as procs:
            await asyncio.sleep(settle)
            base = processes.rss_bytes(jy.pid)
            rows.append({"agents": 0, "rss_mb": base / 2**20, "per_agent_kb": None})
            print(f"  0 agents: server RSS {base / 2**20:.1f} MiB", flush=True)
            for n in steps:
                info = await grow(jy, procs, board, n, prefix="idle")
                await asyncio.sleep(settle)
                stats = await asyncio.gather(*(p.stats() for p in procs))
                connected = sum(s["connected"] for s in stats)
                rss = processes.rss_bytes(jy.pid)
                row = {
                    "agents": n,
                    "connected": connected,
                    "connect_seconds": info["seconds"],
                    "failed": info["failed"],
                    "rss_mb": rss / 2**20,
                    "delta_mb": (rss - base) / 2**20,
                    "per_agent_kb": (rss - base) / max(connected, 1) / 1024,
                    "errors": info["errors"],
                }
                rows.append(row)
                print(
                    f"  {n:,} agents ({connected:,} connected, {info['failed']} failed, "
                    f"connected in {info['seconds']:.1f} s): server RSS {row['rss_mb']:.1f} MiB, "
                    f"+{row['delta_mb']:.1f} MiB over idle = {row['per_agent_kb']:.1f} KiB/agent"
                    + (f"; errors: {info['errors']}" if info["errors"] else ""),
                    flush=True,
                )
    return rows


async def measure_db(
    label: str, database_url: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    figures.section(f"Fan-out on {label}")
    agents = max(max(args.sizes), args.tp_agents)
    out: dict[str, Any] = {"db": label}
    env = dict(kv.split("=", 1) for kv in args.server_env)
    with processes.jobyard(database_url, env=env) as jy:
        board = DoneBoard()
        headers = {"Authorization": f"Bearer {jy.token}"}
        async with (
            swarms() as procs,
            httpx.AsyncClient(base_url=jy.url, headers=headers, timeout=120) as client,
        ):
            info = await grow(
                jy, procs, board, agents, per_process=-(-agents // args.processes), slots=args.slots
            )
            print(
                f"{agents} simulated agents in {len(procs)} processes connected in "
                f"{info['seconds']:.1f} s ({info['failed']} failed)",
                flush=True,
            )
            names = [n for p in procs for n in p.names]
            print("latency, submit to the last result acked:", flush=True)
            with spy(jy.pid, f"latency-{label.lower()}", args.profile):
                out["latency"] = await latency(client, board, names, args.sizes, args.reps, jy.pid)
            print("sustained:", flush=True)
            meter = processes.CpuMeter({"server": [jy.pid], "agents": [p.pid for p in procs]})
            with spy(jy.pid, f"sustained-{label.lower()}", args.profile):
                out["sustained"] = await sustained(
                    client,
                    board,
                    names[: args.tp_agents],
                    args.tp_job_size,
                    args.tp_in_flight,
                    args.tp_seconds,
                    meter,
                )
    if args.idle and args.idle_on in (label.lower(), "both"):
        print("idle agents, server memory:", flush=True)
        out["idle"] = await idle_memory(database_url, args.idle, args.settle, env)
    return out


def summarize(results: list[dict[str, Any]], queue_rows: list[dict[str, Any]]) -> None:
    figures.section("Fan-out summary")
    rows = []
    for res in results:
        for r in res["latency"]:
            target = ""
            if r["nodes"] == 1000:
                target = (
                    f"p99 < {TARGET_P99 * 1e3:.0f} ms: {verdict(r['p99'] < TARGET_P99)}; "
                    f"CPU <= 0.25 ms: {verdict(r['cpu_per_run'] <= TARGET_CPU_PER_RUN)}"
                )
            frames = f"{r['frames_per_run']:.2f}"
            cpu = f"{r['cpu_per_run'] * 1e3:.3f} ms"
            rows.append(
                [res["db"], r["nodes"], r["reps"], ms(r["p50"]), ms(r["p99"]), cpu, frames, target]
            )
    headers = ["database", "nodes", "reps", "p50", "p99", "server CPU/run", "frames/run"]
    print(table([*headers, "target"], rows))

    figures.section("Sustained node runs/s beside the queues (same machine, same run)")
    rows = []
    for res in results:
        s = res["sustained"]
        rows.append(
            [
                f"jobyard on {res['db']}",
                num(s["runs_per_s"]),
                f"{s['node_runs']:,} node runs, jobs of {s['job_size']}, "
                f"{s['in_flight']} in flight, {s['frames_per_run']:.2f} frames/run",
            ]
        )
    for q in queue_rows:
        rows.append([q["name"], num(q["rate"]) if q.get("rate") else "-", q["detail"]])
    print(table(["system", "completed/s", "how"], rows))
    pgq = next(
        (q["rate"] for q in queue_rows if q["name"].startswith("pgqueuer") and q.get("rate")), None
    )
    cel = next(
        (q["rate"] for q in queue_rows if q["name"].startswith("celery") and q.get("rate")), None
    )
    for res in results:
        rate = res["sustained"]["runs_per_s"]
        if pgq:
            ok = verdict(rate >= pgq)
            print(f"jobyard on {res['db']} / pgqueuer = {rate / pgq:.2f}x (target >= 1x: {ok})")
        if cel:
            ok = verdict(rate >= 8 * cel)
            print(f"jobyard on {res['db']} / celery = {rate / cel:.2f}x (target >= 8x: {ok})")

    idle_rows = []
    for res in results:
        for r in res.get("idle", []):
            if r["agents"]:
                target = ""
                if r["agents"] == 10000:
                    ok = verdict(r["rss_mb"] < TARGET_IDLE_MB)
                    target = f"server RSS < {TARGET_IDLE_MB} MB: {ok}"
                idle_rows.append(
                    [
                        res["db"],
                        num(r["agents"]),
                        num(r["connected"]),
                        f"{r['rss_mb']:.1f} MiB",
                        f"{r['delta_mb']:.1f} MiB",
                        f"{r['per_agent_kb']:.1f} KiB",
                        target,
                    ]
                )
    if idle_rows:
        figures.section("Idle agents: server memory")
        print(
            table(
                [
                    "database",
                    "agents",
                    "connected",
                    "server RSS",
                    "over idle",
                    "per agent",
                    "target",
                ],
                idle_rows,
            )
        )


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    results = []
    if args.db in ("sqlite", "both"):
        results.append(await measure_db("SQLite", None, args))
    if args.db in ("postgresql", "both"):
        async with processes.pg_database("fanout") as url:
            results.append(await measure_db("PostgreSQL", url, args))
    queue_rows: list[dict[str, Any]] = []
    if args.queues:
        figures.section("Queues draining no-op jobs")
        queue_rows = await queues.measure_all(args.queue_jobs)
    summarize(results, queue_rows)
    return {"settings": vars(args), "results": results, "queues": queue_rows}


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", type=ints, default=[10, 100, 1000])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--processes", type=int, default=2, help="swarm processes for latency")
    parser.add_argument("--tp-agents", type=int, default=1000)
    parser.add_argument("--tp-job-size", type=int, default=100)
    parser.add_argument("--tp-in-flight", type=int, default=8)
    parser.add_argument("--tp-seconds", type=float, default=20.0)
    parser.add_argument(
        "--slots",
        type=int,
        default=1,
        help="slots of each simulated agent (`jobyard agent --slots N`): with --tp-agents equal "
        "to --tp-job-size, every job in flight runs on the same agents at once",
    )
    parser.add_argument("--idle", type=ints, default=[1000, 5000, 10000])
    parser.add_argument(
        "--idle-on",
        choices=["sqlite", "postgresql", "both"],
        default="sqlite",
        help="the database(s) of the idle-memory measurement",
    )
    parser.add_argument("--settle", type=float, default=6.0, help="seconds before reading RSS")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="JOBYARD_X=V",
        help="a setting for the measured server (e.g. JOBYARD_TUNE_GC=false)",
    )
    parser.add_argument("--no-queues", dest="queues", action="store_false")
    parser.add_argument("--queue-jobs", type=int, default=20000)
    parser.add_argument("--json", help="merge the figures into this JSON file")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the jobyard server into DIR")
    parser.add_argument("--no-machine", dest="machine", action="store_false")
    args = parser.parse_args(argv)
    nofile = processes.raise_nofile(max(args.idle or [0]) * 2 + 4096)
    if args.machine:
        print_machine(describe(processes.PG_ADMIN_URL))
    print(
        f"settings: job sizes {args.sizes} x {args.reps} reps; sustained: {args.tp_agents} agents, "
        f"jobs of {args.tp_job_size}, {args.tp_in_flight} in flight, {args.tp_seconds:.0f} s, "
        f"{args.slots} slot(s) per agent; "
        f"idle steps {args.idle}, {PER_PROCESS} agents per swarm process, settle {args.settle} s; "
        f"open-file limit {nofile}; server settings: defaults (heartbeat 5 s)",
        flush=True,
    )
    try:
        import uvloop

        out = uvloop.run(amain(args))
    except ImportError:
        out = asyncio.run(amain(args))
    figures.save(args.json, "fanout", out)
    return out


if __name__ == "__main__":
    main()
