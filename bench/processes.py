"""The processes a benchmark runs and watches: servers, databases, /proc figures.

The jobyard server is the real ``python -m jobyard serve`` (uvicorn, one process), started
with the end-to-end tests' process helpers; the baseline is an empty FastAPI app served by
uvicorn with the same options. CPU and memory are read from /proc, so each figure says
which process spent it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from tests.e2e.procs import Listening, Server, bootstrap_admin

PG_ADMIN_URL = os.environ.get("JOBYARD_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("JOBYARD_BENCH_REDIS", "redis://127.0.0.1:6379/0")
TICKS = os.sysconf("SC_CLK_TCK")


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _stat(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return []


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time a process has used so far (plus its reaped children's)."""
    fields = _stat(pid)
    if not fields:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / TICKS


def pids_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (e.g. postgres, redis-server)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as fh:
            if fh.read().strip() == name:
                found.append(int(entry))
    return found


def postgres_cpu() -> float:
    """CPU time of the whole PostgreSQL server: live backends plus the ones that exited
    (the postmaster reaps them, so their time is in its children's counters)."""
    pids = pids_named("postgres")
    live = set(pids)
    total = 0.0
    for pid in pids:
        fields = _stat(pid)
        parent = int(fields[1]) if fields else 0
        total += cpu_seconds(pid, children=parent not in live)
    return total


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


class CpuMeter:
    """CPU seconds spent by groups of processes between ``start()`` and ``stop()``.

    PostgreSQL is always included, as one group; it is the whole server, so it also counts
    whatever else uses that server at the time.
    """

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.before: dict[str, float] = {}
        self.spent: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        now = {k: total_cpu(v) for k, v in self.groups.items()}
        now["postgres"] = postgres_cpu()
        return now

    def start(self) -> None:
        self.before = self._now()

    def stop(self) -> dict[str, float]:
        now = self._now()
        self.spent = {k: now[k] - self.before[k] for k in now}
        return self.spent

    def describe(self, elapsed: float) -> str:
        return ", ".join(
            f"{k} {v:.1f} s ({v / elapsed * 100:.0f}% of a core)" for k, v in self.spent.items()
        )


@contextlib.asynccontextmanager
async def pg_database(purpose: str, admin_url: str = PG_ADMIN_URL) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one measurement, dropped afterwards."""
    name = f"jobyard_bench_{purpose}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_url.rpartition("/")[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@dataclass
class Jobyard:
    """A running ``jobyard serve`` with an organization, an admin token and an agent token."""

    server: Server
    token: str
    agent_token: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return "ws://" + self.url.removeprefix("http://") + "/api/v1/agent/ws"

    @property
    def pid(self) -> int:
        return self.server.pid


@contextlib.contextmanager
def jobyard(database_url: str | None, env: dict[str, str] | None = None) -> Iterator[Jobyard]:
    """Start ``jobyard serve`` on SQLite (``None``) or the given PostgreSQL URL."""
    with tempfile.TemporaryDirectory(prefix="jobyard-bench-") as tmp:
        server = Server(Path(tmp) / "server", database_url=database_url, env=env)
        with server:
            org, email, token = bootstrap_admin(server, org="bench", email="bench@bench.test")
            agent = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
            yield Jobyard(server, token, str(agent["token"]))


class EmptyApp(Listening):
    """``python -m bench.empty_app``: an empty FastAPI POST endpoint under uvicorn."""

    name = "empty-app"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "bench.empty_app", "--port", str(self.port)]

    def ready(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False


@contextlib.contextmanager
def empty_app() -> Iterator[EmptyApp]:
    with tempfile.TemporaryDirectory(prefix="jobyard-bench-") as tmp, EmptyApp(tmp) as app:
        yield app
