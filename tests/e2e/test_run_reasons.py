"""Why a node did not run its part, as a person reads it: busy, offline, not allowed and
unknown each appear in `jobyard run`, `jobyard job`, the API and the dashboard's node table
(a real server and real agents)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, run_cli, start_agents, wait_until

pytestmark = pytest.mark.e2e

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery"


@dataclass
class Yard:
    server: Server
    token: str
    env: dict[str, str]
    browser: httpx.Client
    agents: dict[str, Agent]

    def job(self, job_id: int) -> dict[str, Any]:
        with self.server.client(self.token) as c:
            found: dict[str, Any] = c.get(f"/api/v1/jobs/{job_id}").json()
            return found


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    root = tmp_path_factory.mktemp("reasons")
    with Server(root / "server", env={"JOBYARD_ALLOW_UNKNOWN_NODES": "0"}) as server:
        _, email, token = bootstrap_admin(server)
        server.admin("create-user", "--org", "acme", "--email", "p@acme.test", "--role", "user")
        server.admin(
            "create-user",
            "--org",
            "acme",
            *("--email", "viewer@acme.test", "--role", "viewer", "--password", PASSWORD),
        )
        agent_token = server.admin(
            "create-token", "--org", "acme", "--email", email, "--role", "agent"
        )["token"]
        agents = {
            name: Agent(
                root / name, server_url=server.url, token=agent_token, node=name, allow=allow
            )
            for name, allow in (("busy1", ()), ("gone1", ()), ("strict1", ("echo *",)))
        }
        start_agents(list(agents.values()))
        browser = httpx.Client(base_url=server.url, timeout=30.0)
        form = _CSRF.search(browser.get("/login").text)
        assert form
        signed = browser.post(
            "/login",
            data={"email": "viewer@acme.test", "password": PASSWORD, "csrf_token": form[1]},
        )
        assert signed.status_code == 303, signed.text
        env = {"JOBYARD_URL": server.url, "JOBYARD_TOKEN": token, "COLUMNS": "200"}
        try:
            yield Yard(server, token, env, browser, agents)
        finally:
            browser.close()
            for a in agents.values():
                if a.running:
                    a.stop()


def _check_everywhere(yard: Yard, run: Any, node: str, word: str) -> None:
    """``run``: the finished `jobyard run`; the reason containing ``word`` must show in it,
    in `jobyard job`, in the API's node run and in the dashboard's node table."""
    assert run.returncode == 1, run.stdout + run.stderr
    assert word in run.stdout, run.stdout
    job_id = int(re.findall(r"job (\d+):", run.stdout)[-1])
    api_run = next(r for r in yard.job(job_id)["node_runs"] if r["node"] == node)
    assert word in (api_run["reason"] or ""), api_run
    shown = run_cli("job", str(job_id), env=yard.env)
    assert shown.returncode == 0, shown.stderr
    assert word in shown.stdout, shown.stdout
    page = yard.browser.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    row = re.search(rf'<tr data-node="{node}".*?</tr>', page.text, re.S)
    assert row, page.text[:2000]
    assert word in row[0], row[0]


def test_busy(yard: Yard, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    with yard.server.client(yard.token) as c:
        r = c.post(
            "/api/v1/jobs",
            json={"command": f"while [ ! -e {gate} ]; do sleep 0.05; done", "nodes": ["busy1"]},
        )
        assert r.status_code == 201, r.text
        first = r.json()["id"]
        wait_until(
            lambda: yard.job(first)["node_runs"][0]["status"] == "running", what="busy1 running"
        )
        try:
            run = run_cli("run", "--nodes", "busy1", "--", "echo", "hi", env=yard.env)
        finally:
            gate.touch()
    _check_everywhere(yard, run, "busy1", "busy")


def test_not_allowed(yard: Yard) -> None:
    run = run_cli("run", "--nodes", "strict1", "--", "touch", "/nonexistent/x", env=yard.env)
    _check_everywhere(yard, run, "strict1", "not allowed")


def test_offline(yard: Yard) -> None:
    yard.agents["gone1"].stop()
    with yard.server.client(yard.token) as c:
        wait_until(lambda: not c.get("/api/v1/nodes/gone1").json()["online"], what="gone1 offline")
    run = run_cli("run", "--nodes", "gone1", "--", "echo", "hi", env=yard.env)
    _check_everywhere(yard, run, "gone1", "offline")


def test_unknown(yard: Yard) -> None:
    refused = run_cli("run", "--nodes", "ghost1", "--", "echo", "hi", env=yard.env)
    assert refused.returncode == 2 and "known nodes:" in refused.stderr, refused.stderr
    run = run_cli(
        "run", "--allow-unknown-nodes", "--nodes", "ghost1", "--", "echo", "hi", env=yard.env
    )
    _check_everywhere(yard, run, "ghost1", "unknown")
    assert "offline" not in run.stdout
