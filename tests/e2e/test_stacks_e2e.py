"""Chained stacks on a real ``jobyard serve`` and a real ``jobyard agent``: three steps (one
reading the previous step's output) from the API, the CLI and a schedule; a failing step
stops the chain; a server SIGKILLed while a step ends neither loses nor repeats a step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, run_cli, wait_until
from tests.e2e.test_schedules_e2e import SERVER_ENV, _accounts

pytestmark = pytest.mark.e2e

NODE = "chain-1"


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[tuple[Server, httpx.Client, Agent, str]]:
    yield from _yard(tmp_path, None)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_yard(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[Server, httpx.Client, Agent, str]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    yield from _yard(tmp_path, url)


def _yard(
    tmp_path: Path, database_url: str | None
) -> Iterator[tuple[Server, httpx.Client, Agent, str]]:
    server = Server(tmp_path / "server", env=SERVER_ENV, database_url=database_url)
    token, agent_token = asyncio.run(
        _accounts(database_url or f"sqlite:///{server.data_dir / 'jobyard.db'}")
    )
    server.start()
    agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node=NODE)
    try:
        agent.start()
        with server.client(token) as api:
            yield server, api, agent, token
    finally:
        agent.close()
        server.close()


def _task(api: httpx.Client, name: str, command: str, *args: str) -> int:
    r = api.post(
        "/api/v1/tasks",
        json={"name": name, "command": command, "arguments": list(args)},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _stack(api: httpx.Client, name: str, steps: list[dict[str, Any]], **kw: Any) -> int:
    r = api.post(
        "/api/v1/stacks",
        json={"name": name, "target": {"nodes": [NODE]}, "steps": steps, **kw},
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


RELEASE = [
    {"task": "build"},
    {"task": "test", "arguments": {"version": "${previous.stdout}"}},
    {"task": "ship", "arguments": {"version": "${previous.output.version}"}},
]


def _release_tasks(api: httpx.Client, build: str = "echo 1.2.3") -> None:
    _task(api, "build", build)
    _task(api, "test", """printf '{"version": "%s"}\\n'""", "version")
    _task(api, "ship", "echo shipped", "version")


def _ended(api: httpx.Client, run_id: int) -> dict[str, Any] | None:
    r = api.get(f"/api/v1/stack-runs/{run_id}")
    assert r.status_code == 200, r.text
    run: dict[str, Any] = r.json()
    return run if run["status"] != "running" else None


def _stdout(api: httpx.Client, job_id: int) -> str:
    return api.get(f"/api/v1/jobs/{job_id}/output/{NODE}/stdout").text


def test_three_steps_from_the_api_the_cli_and_a_schedule(
    yard: tuple[Server, httpx.Client, Agent, str],
) -> None:
    server, api, _, token = yard
    _release_tasks(api)
    stack_id = _stack(api, "release", RELEASE)

    # From the API.
    r = api.post(f"/api/v1/stacks/{stack_id}/runs")
    assert r.status_code == 201, r.text
    run_id = r.json()["id"]
    run = wait_until(lambda: _ended(api, run_id), timeout=60, interval=0.2, what="the chain")
    assert run["status"] == "succeeded", run
    assert [s["state"] for s in run["steps"]] == ["succeeded"] * 3
    jobs = [s["job_id"] for s in run["steps"]]
    assert _stdout(api, jobs[1]) == '{"version": "1.2.3"}\n'
    assert _stdout(api, jobs[2]) == "shipped 1.2.3\n"
    events = api.get(f"/api/v1/stack-runs/{run_id}/events").json()
    assert [e["type"] for e in events].count("stack_run.step_started") == 3

    # From the command line.
    login = ["--server", server.url, "--token", token]
    ran = run_cli("stack", "run", "release", "--wait", *login)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "succeeded" in ran.stdout

    # From a schedule (every second), then disabled.
    r = api.post("/api/v1/schedules", json={"cron": "* * * * * *"})
    assert r.status_code == 201, r.text
    r = api.post(
        "/api/v1/triggers",
        json={"name": "nightly", "schedule_id": r.json()["id"], "stack_id": stack_id},
    )
    assert r.status_code == 201, r.text
    trigger_id = r.json()["id"]

    def scheduled_done() -> dict[str, Any] | None:
        runs = api.get(f"/api/v1/stacks/{stack_id}/runs", params={"page_size": 100}).json()
        done = [
            x for x in runs["results"] if x["trigger_id"] == trigger_id and x["status"] != "running"
        ]
        return done[0] if done else None

    scheduled = wait_until(scheduled_done, timeout=60, interval=0.2, what="a scheduled chain")
    api.patch(f"/api/v1/triggers/{trigger_id}", json={"enabled": False})
    assert scheduled["status"] == "succeeded", scheduled


def test_a_failing_step_stops_the_chain(
    yard: tuple[Server, httpx.Client, Agent, str],
) -> None:
    server, api, _, token = yard
    _release_tasks(api, build="echo 1.2.3; exit 3")
    _stack(api, "release", RELEASE)
    login = ["--server", server.url, "--token", token]
    ran = run_cli("stack", "run", "release", "--wait", *login)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    runs = api.get("/api/v1/stack-runs").json()["results"]
    run = api.get(f"/api/v1/stack-runs/{runs[0]['id']}").json()
    assert run["status"] == "failed" and "step 1 failed" in run["reason"]
    assert [s["state"] for s in run["steps"]] == ["failed", "skipped", "skipped"]
    assert api.get("/api/v1/jobs").json()["count"] == 1


def test_a_server_killed_while_a_step_ends_neither_loses_nor_repeats_a_step(
    any_yard: tuple[Server, httpx.Client, Agent, str], tmp_path: Path
) -> None:
    server, api, _, _ = any_yard
    go, ended = tmp_path / "go", tmp_path / "ended"
    # Step 1 waits for a file, so that it ends while the server is down.
    _release_tasks(
        api, build=f"while [ ! -f {go} ]; do sleep 0.05; done; echo 4.5.6; touch {ended}"
    )
    stack_id = _stack(api, "release", RELEASE)
    run_id = api.post(f"/api/v1/stacks/{stack_id}/runs").json()["id"]

    def first_running() -> bool:
        run = api.get(f"/api/v1/stack-runs/{run_id}").json()
        return run["steps"][0]["job_status"] == "running"

    wait_until(first_running, timeout=30, interval=0.1, what="step 1 running")
    server.kill()  # SIGKILL
    go.touch()
    wait_until(ended.exists, timeout=30, what="step 1 ended on the agent")
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 0.5, timeout=5, what="a moment")
    server.start()
    run = wait_until(lambda: _ended(api, run_id), timeout=60, interval=0.2, what="the chain")
    assert run["status"] == "succeeded", run
    assert _stdout(api, run["steps"][2]["job_id"]) == "shipped 4.5.6\n"
    # Each step ran once: three jobs, three step starts.
    assert api.get("/api/v1/jobs").json()["count"] == 3
    events = api.get(f"/api/v1/stack-runs/{run_id}/events").json()
    assert [e["data"]["step"] for e in events if e["type"] == "stack_run.step_started"] == [0, 1, 2]


def test_a_kragle_webhook_and_exec_run_the_chain(
    yard: tuple[Server, httpx.Client, Agent, str],
) -> None:
    server, api, _, _ = yard
    _release_tasks(api)
    r = api.post(
        "/compat/kragle/blockstacks",
        json={
            "name": "release",
            "nodes": [NODE],
            "webhook": "token",
            "webhook_method": "POST",
            "blocks": [
                ["build", {}],
                ["test", {"version": "\x01\x01/stdout\x02\x02"}],
                ["ship", {"version": "\x01\x01/version\x02\x02"}],
            ],
        },
    )
    assert r.status_code == 200, r.text
    stack_id, token = r.json()["id"], r.json()["webhook_token"]
    # The webhook: no credential but its token; it answers once the chain has ended.
    with httpx.Client(base_url=server.url, timeout=60) as anonymous:
        r = anonymous.post(
            f"/compat/kragle/blockstacks/hook/{stack_id}", params={"token": token}, json={}
        )
    assert r.status_code == 200, r.text
    assert r.json() == {"status": 0, "result": "shipped 1.2.3\n"}
    # exec, signed in.
    r = api.get(f"/compat/kragle/blockstacks/exec/{stack_id}", timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["success"] == [1, 2, 3], r.json()
    runs = api.get("/api/v1/stack-runs").json()["results"]
    assert [x["status"] for x in runs] == ["succeeded", "succeeded"]
