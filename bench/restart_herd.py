"""The restart herd: do jobs submitted right after a server restart fail more often?

Against a real ``jobyard serve`` (SQLite, then PostgreSQL) with real ``jobyard agent``
processes (default settings: heartbeat 5 s, TTL 15 s, grace 10 s, voting timeout 60 s):

1. steady: jobs are submitted for ``--window`` seconds at ``--rate`` per second, each on
   ``--nodes-per-job`` agents picked at random, to a server that has been up a while;
2. restart: the server is killed (SIGKILL) and started again at once; as soon as it answers
   ``/readyz``, jobs are submitted the same way for ``--window`` seconds, while the agents
   reconnect.

Each job is followed to its end; the figure is the share of jobs that end
``quorum_failed`` in each phase, printed side by side (with every final status).

    python -m bench.restart_herd [--db sqlite|postgresql|both] [--agents 10] [--window 60]
                                 [--rate 2] [--nodes-per-job 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.procs import Agent, Server, bootstrap_admin, start_agents, wait_until

from bench.machine import describe, machine_load, print_machine
from bench.processes import PG_ADMIN_URL, pg_database

TERMINAL = ("complete", "quorum_failed", "timed_out", "aborted")


def submit_for(
    client: httpx.Client, nodes: list[str], window: float, rate: float, per_job: int, seed: int
) -> list[int]:
    """Submit jobs at ``rate`` per second for ``window`` seconds; returns their ids."""
    rng = random.Random(seed)
    ids: list[int] = []
    lock = threading.Lock()
    start = time.monotonic()
    threads = []

    def one(picked: list[str]) -> None:
        r = client.post(
            "/api/v1/jobs", json={"command": "sleep 0.1", "nodes": picked, "run_timeout": 60}
        )
        r.raise_for_status()
        with lock:
            ids.append(int(r.json()["id"]))

    n = 0
    while (due := start + n / rate) < start + window:
        time.sleep(max(0.0, due - time.monotonic()))
        t = threading.Thread(target=one, args=(rng.sample(nodes, per_job),))
        t.start()
        threads.append(t)
        n += 1
    for t in threads:
        t.join()
    return ids


def outcomes(client: httpx.Client, ids: list[int], timeout: float = 180.0) -> Counter[str]:
    """Wait until every job has ended; count their final statuses."""
    final: dict[int, str] = {}

    def done() -> bool:
        for job_id in ids:
            if job_id not in final:
                status = client.get(f"/api/v1/jobs/{job_id}").json()["status"]
                if status in TERMINAL:
                    final[job_id] = status
        return len(final) == len(ids)

    wait_until(done, timeout=timeout, interval=0.5, what="every job to end")
    return Counter(final.values())


@contextlib.contextmanager
def yard(
    root: Path, database_url: str | None, agents: int
) -> Iterator[tuple[Server, str, list[Agent]]]:
    server = Server(root / "server", database_url=database_url)
    procs: list[Agent] = []
    with server:
        org, email, token = bootstrap_admin(server, org="herd", email="herd@bench.test")
        agent_token = server.admin(
            "create-token", "--org", org, "--email", email, "--role", "agent"
        )
        procs = [
            Agent(
                root / f"agent-{i}", server_url=server.url, token=agent_token["token"], node=f"h{i}"
            )
            for i in range(agents)
        ]
        try:
            start_agents(procs)
            yield server, token, procs
        finally:
            for a in procs:
                a.close()


def measure(database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="jobyard-herd-") as tmp,
        yard(Path(tmp), database_url, args.agents) as (server, token, agents),
    ):
        nodes = [a.node for a in agents]
        figures: dict[str, Any] = {}
        for phase in ("steady", "restart"):
            if phase == "restart":
                server.kill()
                server.start()
            with server.client(token) as client:
                ids = submit_for(
                    client, nodes, args.window, args.rate, args.nodes_per_job, len(figures)
                )
                counts = outcomes(client, ids)
            failed = counts.get("quorum_failed", 0)
            figures[phase] = {
                "jobs": len(ids),
                "quorum_failed": failed,
                "share": failed / len(ids) if ids else 0.0,
                "statuses": dict(counts),
            }
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--window", type=float, default=60.0, help="seconds of submissions")
    parser.add_argument("--rate", type=float, default=2.0, help="jobs per second")
    parser.add_argument("--nodes-per-job", type=int, default=3)
    parser.add_argument("--json", help="append the figures to this JSON file")
    parser.add_argument("--no-machine", action="store_true")
    args = parser.parse_args()
    if not args.no_machine:
        print_machine(describe(PG_ADMIN_URL))
    results: dict[str, Any] = {}
    for db in ("sqlite", "postgresql") if args.db == "both" else (args.db,):
        print(
            f"\n{db}: {args.agents} agents, {args.rate:g} jobs/s on {args.nodes_per_job} "
            f"random nodes each, {args.window:g} s per phase; load {machine_load()}"
        )
        if db == "sqlite":
            results[db] = measure(None, args)
        else:

            async def pg() -> dict[str, Any]:
                async with pg_database("herd") as url:
                    return await asyncio.to_thread(measure, url, args)

            results[db] = asyncio.run(pg())
        steady, restart = results[db]["steady"], results[db]["restart"]
        print(f"  {'':28} {'steady':>16} {'after SIGKILL + restart':>24}")
        print(f"  {'jobs submitted':28} {steady['jobs']:>16} {restart['jobs']:>24}")
        print(
            f"  {'quorum_failed':28} "
            f"{steady['quorum_failed']:>8} ({steady['share']:5.1%}) "
            f"{restart['quorum_failed']:>16} ({restart['share']:5.1%})"
        )
        print(f"  {'final statuses':28} {steady['statuses']} | {restart['statuses']}")
    if args.json:
        path = Path(args.json)
        data = json.loads(path.read_text()) if path.exists() else {}
        data["restart_herd"] = results
        path.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
