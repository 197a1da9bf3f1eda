"""Real ``jobyard serve`` and ``jobyard agent`` processes: a trigger every second runs a real
command on a real agent, and a server killed across fire times fires each slot once."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import itertools
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, run_cli, wait_until

pytestmark = pytest.mark.e2e
PASSWORD = "correct horse battery"

SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "1",
    "JOBYARD_NODE_GRACE": "1",
    # Generous, so that a slow restart on a loaded machine still finds its slots "late"
    # (they fire) rather than "missed"; the catch-up rules have their own fake-clock tests.
    "JOBYARD_SCHEDULER_GRACE": "120",
}


async def _accounts(database_url: str) -> tuple[str, str]:
    """An organization, an admin, a user token and an agent token (in-process: fast)."""
    from jobyard.domain.accounts import Role
    from jobyard.service import accounts
    from jobyard.service.context import Services
    from jobyard.settings import Settings
    from jobyard.store import Database

    db = Database(database_url)
    try:
        await db.migrate()
        svc = Services(db=db, settings=Settings(database_url=database_url))
        await accounts.create_org(svc, "acme")
        await accounts.create_user(svc, "acme", "ops@acme.test", Role.ADMIN, password=PASSWORD)
        user = await accounts.create_token(svc, "acme", "ops@acme.test")
        agent = await accounts.create_token(svc, "acme", "ops@acme.test", role=Role.AGENT)
        return user.secret, agent.secret
    finally:
        await db.close()


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[tuple[Server, httpx.Client, Agent]]:
    server = Server(tmp_path / "server", env=SERVER_ENV)
    token, agent_token = asyncio.run(_accounts(f"sqlite:///{server.data_dir / 'jobyard.db'}"))
    server.start()
    agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node="tick-1")
    try:
        agent.start()
        with server.client(token) as api:
            yield server, api, agent
    finally:
        agent.close()
        server.close()


def _every_second(api: httpx.Client, command: str) -> int:
    r = api.post(
        "/api/v1/tasks",
        json={"name": "tick", "command": command, "target": {"nodes": ["tick-1"]}},
    )
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    r = api.post("/api/v1/schedules", json={"cron": "* * * * * *"})
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/v1/triggers",
        json={"name": "every-second", "schedule_id": r.json()["id"], "task_id": task_id},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _fires(api: httpx.Client, trigger_id: int) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/triggers/{trigger_id}/fires", params={"page_size": 100})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def _jobs(api: httpx.Client) -> list[dict[str, Any]]:
    r = api.get("/api/v1/jobs", params={"page_size": 100, "sort": "id"})
    assert r.status_code == 200, r.text
    return list(r.json()["results"])


def test_a_trigger_every_second_runs_a_real_command(
    yard: tuple[Server, httpx.Client, Agent],
) -> None:
    _, api, _ = yard
    trigger_id = _every_second(api, "echo tick $JOBYARD_ARG_NONE; date +%s")

    def three_done() -> list[dict[str, Any]] | None:
        done = [j for j in _jobs(api) if j["status"] == "complete"]
        return done if len(done) >= 3 else None

    done = wait_until(three_done, timeout=30, interval=0.2, what="three fired jobs complete")
    for job in done[:3]:
        assert job["node_states"] == {"succeeded": ["tick-1"]}, job
        out = api.get(f"/api/v1/jobs/{job['id']}/output/tick-1/stdout").text
        assert out.startswith("tick"), out
    api.patch(f"/api/v1/triggers/{trigger_id}", json={"enabled": False})
    # The same task from the command line.
    server = yard[0]
    login = ["--server", server.url, "--token", api.headers["Authorization"].split()[1]]
    listed = run_cli("tasks", *login, check=True)
    assert "tick" in listed.stdout
    ran = run_cli("task", "run", "tick", "--wait", *login)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "succeeded" in ran.stdout
    slots = [f["slot"] for f in _fires(api, trigger_id)]
    assert len(slots) == len(set(slots))  # no slot twice
    # Each slot is one second after the previous one: none skipped, none repeated.
    times = sorted(dt.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in slots)
    assert all((b - a).total_seconds() == 1 for a, b in itertools.pairwise(times))


def test_a_server_killed_across_fire_times_fires_each_slot_once(
    yard: tuple[Server, httpx.Client, Agent],
) -> None:
    server, api, _ = yard
    trigger_id = _every_second(api, "true")
    wait_until(lambda: len(_fires(api, trigger_id)) >= 2, timeout=20, what="two fires")
    server.kill()  # SIGKILL: no clean shutdown
    killed_at = time.monotonic()
    # Let three slots pass while the server is down (a deadline poll, not a bare sleep).
    wait_until(lambda: time.monotonic() - killed_at > 3, timeout=10, what="downtime")
    server.start()
    wait_until(lambda: len(_fires(api, trigger_id)) >= 8, timeout=30, what="fires after restart")
    api.patch(f"/api/v1/triggers/{trigger_id}", json={"enabled": False})
    fires = _fires(api, trigger_id)
    slots = sorted(dt.datetime.fromisoformat(f["slot"].replace("Z", "+00:00")) for f in fires)
    assert len(slots) == len(set(slots)), "a slot fired twice"
    # Slots late by less than the scheduler's grace still fire after the restart.
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(slots)]
    assert gaps and all(g == 1 for g in gaps), gaps
    fired_jobs = {f["job_id"] for f in fires if f["outcome"] == "fired"}
    assert len(fired_jobs) == len([f for f in fires if f["outcome"] == "fired"])


@pytest.mark.parametrize("mode", ["queue", "forbid"])
def test_two_triggers_at_one_moment_onto_one_node_follow_the_policy(
    yard: tuple[Server, httpx.Client, Agent], tmp_path: Path, mode: str
) -> None:
    """Two tasks' triggers fire at the same moment onto one agent that runs one job at a
    time: under ``queue`` the second job runs once the first has ended, under ``forbid``
    its slot is skipped and the fire history says which node was busy with which job."""
    server, api, _ = yard
    gate = tmp_path / "gate"
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).isoformat()
    r = api.post("/api/v1/schedules", json={"at": at})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    trigger_ids = []
    for name in ("backup", "report"):
        r = api.post(
            "/api/v1/tasks",
            json={
                "name": name,
                "command": f"while [ ! -e {gate} ]; do sleep 0.05; done; echo {name}",
                "target": {"nodes": ["tick-1"]},
                "concurrency": mode,
            },
        )
        assert r.status_code == 201, r.text
        r = api.post(
            "/api/v1/triggers",
            json={"name": name, "schedule_id": schedule_id, "task_id": r.json()["id"]},
        )
        assert r.status_code == 201, r.text
        trigger_ids.append(r.json()["id"])
    handled = wait_until(
        lambda: (f := [_fires(api, t) for t in trigger_ids]) and all(f) and f,
        timeout=30,
        interval=0.2,
        what="both triggers fired",
    )
    pairs = sorted(
        zip(trigger_ids, (f[0] for f in handled), strict=True),
        key=lambda p: p[1].get("job_id") or 1 << 62,
    )
    fires = [f for _, f in pairs]
    first, second = fires
    _shown_on_the_dashboard(server, pairs[1][0], second["reason"])
    assert first["outcome"] == "fired" and first["job_id"] and not first["reason"], fires
    busy = f"tick-1 (job {first['job_id']})"
    if mode == "forbid":
        assert second["outcome"] == "skipped" and second["job_id"] is None, fires
        assert f"nodes busy: {busy}" in second["reason"], fires
        gate.touch()
        assert len(_jobs(api)) == 1
        return
    assert second["outcome"] == "fired" and second["reason"] == (
        f"queued: waiting for busy nodes: {busy}"
    ), fires
    waiting = api.get(f"/api/v1/jobs/{second['job_id']}").json()
    assert waiting["status"] == "onhold", waiting
    gate.touch()

    def both_done() -> list[dict[str, Any]] | None:
        jobs = {j["id"]: j for j in _jobs(api)}
        done = [jobs[f["job_id"]] for f in fires]
        return done if all(j["status"] == "complete" for j in done) else None

    done = wait_until(both_done, timeout=30, interval=0.2, what="both jobs complete")
    assert [j["node_states"] for j in done] == [{"succeeded": ["tick-1"]}] * 2, done
    assert done[1]["started_at"] >= done[0]["finished_at"], done


def _shown_on_the_dashboard(server: Server, trigger_id: int, reason: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30.0) as browser:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/login").text)
        assert csrf
        signed = browser.post(
            "/login", data={"email": "ops@acme.test", "password": PASSWORD, "csrf_token": csrf[1]}
        )
        assert signed.status_code == 303, signed.text
        page = browser.get(f"/triggers/{trigger_id}")
        assert page.status_code == 200
        assert reason in html.unescape(page.text), page.text[-3000:]
