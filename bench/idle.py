"""Idle agents and the server's memory, with and without a server setting, in one run.

The same measurement as ``bench.fanout``'s idle step (a fresh ``jobyard serve``, simulated
agents connecting as ``jobyard agent`` does, in processes of 2,500, heartbeating every 5 s,
RSS from ``/proc`` after ``--settle`` seconds), once with the server's defaults and once
with ``--other`` (default ``JOBYARD_TUNE_GC=false``: Python's collector untouched), side by
side.

    python -m bench.idle [--agents 2500,10000] [--db sqlite|postgresql] [--settle 10]
                         [--other JOBYARD_X=V ...]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench import figures, processes
from bench.fanout import idle_memory, ints
from bench.figures import table
from bench.machine import describe, print_machine

TARGET_MIB = 300 * 10**6 / 2**20  # 300 MB


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"settings": vars(args), "runs": {}}
    other = dict(kv.split("=", 1) for kv in args.other or ["JOBYARD_TUNE_GC=false"])
    for name, env in (("defaults", {}), (" ".join(f"{k}={v}" for k, v in other.items()), other)):
        figures.section(f"Idle agents, server {name}")
        if args.db == "postgresql":
            async with processes.pg_database("idle") as url:
                rows = await idle_memory(url, args.agents, args.settle, env)
        else:
            rows = await idle_memory(None, args.agents, args.settle, env)
        out["runs"][name] = rows
    lines = []
    for name, rows in out["runs"].items():
        for r in rows[1:]:
            verdict = "met" if r["rss_mb"] < TARGET_MIB else "MISSED"
            lines.append(
                [
                    name,
                    f"{r['agents']:,} ({r['connected']:,} connected)",
                    f"{r['rss_mb']:.1f} MiB",
                    f"+{r['delta_mb']:.1f} MiB",
                    f"{r['per_agent_kb']:.1f} KiB",
                    f"< 300 MB: {verdict}" if r["agents"] >= 10_000 else "",
                ]
            )
    print(table(["server", "agents", "RSS", "over idle", "per agent", "target"], lines))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=ints, default=[2500, 10000])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--other", action="append", metavar="JOBYARD_X=V")
    parser.add_argument("--json", help="merge the figures into this JSON file")
    parser.add_argument("--no-machine", dest="machine", action="store_false")
    args = parser.parse_args(argv)
    nofile = processes.raise_nofile(max(args.agents) * 2 + 4096)
    if args.machine:
        print_machine(describe(processes.PG_ADMIN_URL))
    print(f"settings: {vars(args)}; open-file limit {nofile}", flush=True)
    out = asyncio.run(amain(args))
    figures.save(args.json, "idle", out)
    return out


if __name__ == "__main__":
    main()
