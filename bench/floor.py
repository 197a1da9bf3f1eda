"""The raw-driver floor: the rows one submit leaves in the database, written with the bare
driver (``sqlite3``, ``asyncpg``), 1 and 64 jobs per transaction.

``sample_sqlite`` / ``sample_postgresql`` read what a real submit wrote: the job's row and
every row that names it in a table with a ``job_id`` column (node runs, events, watchers
...), in their final state. ``write_sqlite`` / ``write_postgresql`` then insert copies of
those rows (new ids, the copies' ``job_id`` pointing at the new job) into the same database,
through the same indexes and foreign keys, and report the CPU time of the writing thread and
the wall time per job. That is the physical floor of a submit: the same rows, inserted once,
without a framework, an HTTP request or an update of a row written just before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench import processes
from jobyard.store.tables import metadata

# Tables whose rows belong to a job: the job itself, and those with a job_id column.
JOB_TABLES = [
    "jobs",
    *sorted(t.name for t in metadata.sorted_tables if "job_id" in t.c and t.name != "jobs"),
]


@dataclass
class Sample:
    """One submitted job's rows, by table: column names and rows (ids left out)."""

    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]]

    def rows_per_job(self) -> dict[str, int]:
        return {t: len(rows) for t, (_, rows) in self.tables.items() if rows}


@dataclass
class Floor:
    driver: str
    jobs_per_tx: int
    jobs: int
    cpu_us_per_job: float  # the writing thread's CPU
    wall_us_per_job: float
    db_cpu_us_per_job: float  # PostgreSQL's processes (0 for SQLite, in-process)


def sample_sqlite(path: str, job_id: int) -> Sample:
    conn = sqlite3.connect(path, timeout=30)
    try:
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for name in JOB_TABLES:
            key = "id" if name == "jobs" else "job_id"
            cur = conn.execute(f"SELECT * FROM {name} WHERE {key} = ?", (job_id,))
            cols = [d[0] for d in cur.description]
            tables[name] = _without_id(cols, cur.fetchall())
        return Sample(tables)
    finally:
        conn.close()


def _without_id(cols: list[str], rows: list[Any]) -> tuple[list[str], list[tuple[Any, ...]]]:
    keep = [i for i, c in enumerate(cols) if c != "id"]
    return [cols[i] for i in keep], [tuple(r[i] for i in keep) for r in rows]


def _children(sample: Sample) -> list[tuple[str, list[str], list[tuple[Any, ...]]]]:
    return [(t, cols, rows) for t, (cols, rows) in sample.tables.items() if t != "jobs" and rows]


def write_sqlite(path: str, sample: Sample, jobs_per_tx: int, total: int) -> Floor:
    """Insert ``total`` copies of the sampled job, ``jobs_per_tx`` per transaction, with
    the server's pragmas (WAL, synchronous=NORMAL, foreign keys)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    job_cols, job_rows = sample.tables["jobs"]
    job_sql = f"INSERT INTO jobs ({', '.join(job_cols)}) VALUES ({', '.join('?' * len(job_cols))})"
    children = [
        (
            f"INSERT INTO {t} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            cols.index("job_id"),
            rows,
        )
        for t, cols, rows in _children(sample)
    ]
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    done = 0
    try:
        while done < total:
            n = min(jobs_per_tx, total - done)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(job_sql, job_rows * n)
            # Under the write lock the new jobs are the n highest ids.
            last = conn.execute("SELECT max(id) FROM jobs").fetchone()[0]
            ids = range(last - n + 1, last + 1)
            for sql, at, rows in children:
                conn.executemany(sql, [_with_job(r, at, i) for i in ids for r in rows])
            conn.execute("COMMIT")
            done += n
    finally:
        conn.close()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    return Floor("sqlite3", jobs_per_tx, total, cpu / total * 1e6, wall / total * 1e6, 0.0)


def _with_job(row: tuple[Any, ...], at: int, job_id: int) -> tuple[Any, ...]:
    return (*row[:at], job_id, *row[at + 1 :])


async def sample_postgresql(url: str, job_id: int) -> Sample:
    conn = await asyncpg.connect(url)
    try:
        tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
        for name in JOB_TABLES:
            key = "id" if name == "jobs" else "job_id"
            stmt = await conn.prepare(f"SELECT * FROM {name} WHERE {key} = $1")
            cols = [a.name for a in stmt.get_attributes()]
            tables[name] = _without_id(cols, [tuple(r) for r in await stmt.fetch(job_id)])
        return Sample(tables)
    finally:
        await conn.close()


async def _write_postgresql(url: str, sample: Sample, jobs_per_tx: int, total: int) -> Floor:
    conn = await asyncpg.connect(url)
    job_cols, job_rows = sample.tables["jobs"]
    width = len(job_cols)
    children = [
        (
            f"INSERT INTO {t} ({', '.join(cols)}) "
            f"VALUES ({', '.join(f'${i + 1}' for i in range(len(cols)))})",
            cols.index("job_id"),
            rows,
        )
        for t, cols, rows in _children(sample)
    ]

    def jobs_sql(n: int) -> str:
        groups = (
            "(" + ", ".join(f"${k * width + i + 1}" for i in range(width)) + ")" for k in range(n)
        )
        return f"INSERT INTO jobs ({', '.join(job_cols)}) VALUES {', '.join(groups)} RETURNING id"

    pg0 = processes.postgres_cpu()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    done = 0
    try:
        while done < total:
            n = min(jobs_per_tx, total - done)
            async with conn.transaction():
                params = [v for _ in range(n) for v in job_rows[0]]
                ids = [r["id"] for r in await conn.fetch(jobs_sql(n), *params)]
                for sql, at, rows in children:
                    await conn.executemany(sql, [_with_job(r, at, i) for i in ids for r in rows])
            done += n
    finally:
        await conn.close()
    cpu, wall = time.thread_time() - cpu0, time.perf_counter() - wall0
    pg = processes.postgres_cpu() - pg0
    return Floor(
        "asyncpg", jobs_per_tx, total, cpu / total * 1e6, wall / total * 1e6, pg / total * 1e6
    )


def write_postgresql(url: str, sample: Sample, jobs_per_tx: int, total: int) -> Floor:
    """As ``write_sqlite``, through asyncpg on its own event loop in this thread (so that
    the thread's CPU time is the driver's): one multi-row ``INSERT ... RETURNING id`` for the
    jobs of a transaction, one pipelined ``executemany`` per child table."""
    return asyncio.run(_write_postgresql(url, sample, jobs_per_tx, total))
