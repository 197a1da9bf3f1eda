"""A server killed (SIGKILL) during a burst of concurrent submits, on SQLite and PostgreSQL:
after a restart every job answered 201 exists exactly once, and no job exists whose submit
was answered otherwise; a submit that got no answer may exist, at most once. Submits run
through the group commit and open voting on a real agent's node."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin

pytestmark = pytest.mark.e2e

TOTAL = 240
IN_FLIGHT = 32


async def _burst(server: Server, token: str) -> tuple[set[str], set[str], set[str]]:
    """Submit TOTAL jobs, IN_FLIGHT at a time; kill the server once a third are answered.
    Returns the names answered 201, answered otherwise, and not answered."""
    created: set[str] = set()
    refused: set[str] = set()
    lost: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=IN_FLIGHT)
    async with httpx.AsyncClient(
        base_url=server.url, headers=headers, timeout=30.0, limits=limits
    ) as client:
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def submit(i: int) -> None:
            name = f"crash-{i:04d}"
            async with gate:
                try:
                    r = await client.post(
                        "/api/v1/jobs", json={"name": name, "command": "true", "nodes": ["n1"]}
                    )
                except httpx.HTTPError:
                    lost.add(name)
                    return
            (created if r.status_code == 201 else refused).add(name)

        tasks = [asyncio.create_task(submit(i)) for i in range(TOTAL)]
        while len(created) < TOTAL // 3 and not all(t.done() for t in tasks):
            await asyncio.sleep(0.005)
        await asyncio.to_thread(server.kill)
        await asyncio.gather(*tasks)
    return created, refused, lost


def _stored_names(server: Server, token: str) -> Counter[str]:
    names: Counter[str] = Counter()
    with server.client(token) as c:
        page = 1
        while True:
            body = c.get("/api/v1/jobs", params={"page": page, "page_size": 100}).json()
            names.update(j["name"] for j in body["results"])
            if not body["next"]:
                return names
            page += 1


def _crash_during_burst(server: Server, tmp_path: Path) -> None:
    org, email, token = bootstrap_admin(server)
    issued = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
    agent = Agent(tmp_path / "agent", server_url=server.url, token=issued["token"], node="n1")
    with agent:
        created, refused, lost = asyncio.run(_burst(server, token))
        assert created, "no submit was answered before the kill"
        assert lost, "the kill came after the burst: nothing was in flight"
        server.restart()
        stored = _stored_names(server, token)
    assert not refused, f"submits refused before the kill: {sorted(refused)[:5]}"
    twice = [n for n, k in stored.items() if k > 1]
    assert not twice, f"jobs stored twice: {twice[:5]}"
    missing = created - set(stored)
    assert not missing, f"answered 201 but lost in the crash: {sorted(missing)[:5]}"
    unasked = set(stored) - created - lost
    assert not unasked, f"stored without being submitted: {sorted(unasked)[:5]}"


def test_sigkill_during_a_burst_of_submits_sqlite(tmp_path: Path) -> None:
    with Server(tmp_path / "server") as server:
        _crash_during_burst(server, tmp_path)


@pytest.mark.postgres
def test_sigkill_during_a_burst_of_submits_postgresql(tmp_path: Path, pg_url: str) -> None:
    with Server(tmp_path / "server", database_url=pg_url) as server:
        _crash_during_burst(server, tmp_path)
