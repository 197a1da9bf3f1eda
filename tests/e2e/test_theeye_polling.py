"""A real ``jobyard serve`` and a real polling agent process speaking TheEye's agent
protocol (``theeye_agent.py``): jobs made through the native API and through TheEye's
``POST /job`` from a task run on it, end to end, on SQLite and on PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import Process, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e

AGENT_SCRIPT = Path(__file__).with_name("theeye_agent.py")


class TheEyeAgent(Process):
    name = "theeye-agent"

    def __init__(self, data_dir: Path, url: str, customer: str, token: str, hostname: str):
        super().__init__(data_dir)
        self.args = [
            "--url",
            url,
            "--customer",
            customer,
            "--token",
            token,
            "--hostname",
            hostname,
            "--workdir",
            str(data_dir / "scripts"),
        ]

    def command(self) -> list[str]:
        return [sys.executable, str(AGENT_SCRIPT), *self.args]

    def ready(self) -> bool:
        return self.log_path.exists() and "polling as" in self.log_path.read_text()


@pytest.fixture(params=["sqlite", "postgresql"])
def yard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    with Server(tmp_path / "server", database_url=url) as server:
        org, email, token = bootstrap_admin(server)
        agent = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
        with TheEyeAgent(tmp_path / "agent", server.url, org, agent["token"], "eye1"):
            yield server, org, token


def _finished(api: Any, job_id: int) -> dict[str, Any] | None:
    job: dict[str, Any] = api.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] in ("complete", "quorum_failed", "timed_out", "aborted") else None


def test_a_theeye_agent_runs_jobyard_jobs(yard: tuple[Server, str, str]) -> None:
    server, org, token = yard
    with server.client(token) as api:
        # The agent's first poll registered its node.
        wait_until(
            lambda: api.get("/api/v1/nodes/eye1").status_code == 200, what="the node registered"
        )
        r = api.post(
            "/api/v1/jobs",
            json={
                "command": "echo from $JOB_WORD; echo success",
                "nodes": ["eye1"],
                "env": {"JOB_WORD": "jobyard"},
            },
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        job = wait_until(lambda: _finished(api, job_id), timeout=30, what="the job finished")
        assert job["status"] == "complete", job
        assert job["node_states"] == {"succeeded": ["eye1"]}
        out = api.get(f"/api/v1/jobs/{job_id}/output/eye1/stdout")
        assert out.text == "from jobyard\nsuccess\n"
        seen = api.get(f"/compat/theeye/{org}/job/{job_id:024x}").json()
        assert (seen["lifecycle"], seen["state"]) == ("finished", "success")

        # A task run through TheEye's own API, with an argument.
        r = api.post(
            "/api/v1/tasks",
            json={
                "name": "greet",
                "command": "echo hello",
                "target": {"nodes": ["eye1"]},
                "arguments": ["who"],
            },
        )
        assert r.status_code == 201, r.text
        task_id = r.json()["id"]
        r = api.post(
            "/compat/theeye/job",
            params={"customer": org},
            json={"task": f"{task_id:024x}", "task_arguments": ["world"]},
        )
        assert r.status_code == 200, r.text
        created = r.json()
        assert created["lifecycle"] in ("ready", "assigned", "finished")
        native = int(created["id"], 16)
        job = wait_until(lambda: _finished(api, native), timeout=30, what="the task's job")
        assert job["node_states"] == {"succeeded": ["eye1"]}
        assert api.get(f"/api/v1/jobs/{native}/output/eye1/stdout").text == "hello world\n"
        lifecycle = api.get(f"/compat/theeye/{org}/job/{created['id']}/lifecycle").json()
        assert lifecycle == "finished"
        history = api.get(f"/api/v1/jobs/{native}/history").json()["results"]
        assert [h["status"] for h in history] == ["draft", "new", "voting", "running", "complete"]
        assert history[3]["actor"] == "eye1"  # the poll that took the job started it
