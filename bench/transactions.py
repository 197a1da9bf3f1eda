"""What timing every transaction for ``jobyard_db_transaction_seconds`` costs.

One process, SQLite in a temporary file: rounds of N write transactions (an UPDATE of one
row), alternately with ``Database.observe`` unset and set to the server's histogram, then the
hook alone (frame lookup, two clock reads, one labelled observation) timed without the
database. The difference per transaction is what the metric adds to every use case.

    python -m bench.transactions [-n 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
from prometheus_client import CollectorRegistry

from jobyard.service.metrics import TransactionMetrics
from jobyard.store import Database


async def _writes(db: Database, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        async with db.begin() as tx:
            await tx.conn.execute(sa.text("UPDATE t SET v = :v WHERE id = 1"), {"v": i})
    return (time.perf_counter() - started) / n


def _hook_alone(n: int) -> float:
    metrics = TransactionMetrics(CollectorRegistry())
    started = time.perf_counter()
    for _ in range(n):
        begun = time.perf_counter()
        metrics.observe("write", "bench_writes", time.perf_counter() - begun)
    return (time.perf_counter() - started) / n


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        async with db.begin() as tx:
            await tx.conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER)"))
            await tx.conn.execute(sa.text("INSERT INTO t VALUES (1, 0)"))
        metrics = TransactionMetrics(CollectorRegistry())
        off: list[float] = []
        on: list[float] = []
        await _writes(db, n // 10)  # warm-up
        for _ in range(rounds):
            db.observe = None
            off.append(await _writes(db, n))
            db.observe = metrics.observe
            on.append(await _writes(db, n))
        await db.close()
    hook = _hook_alone(n * 10)
    median_off = statistics.median(off) * 1e6
    print(f"write transaction, metric off: {median_off:8.1f} µs (median of {rounds})")
    print(f"write transaction, metric on:  {statistics.median(on) * 1e6:8.1f} µs")
    print(f"the hook alone:                {hook * 1e6:8.2f} µs per transaction")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="transactions per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
