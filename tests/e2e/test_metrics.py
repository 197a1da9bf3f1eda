"""Job-level Prometheus metrics after real jobs on a real server and agent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text format, or None."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


def test_metrics_after_a_real_job(tmp_path: Path) -> None:
    with Server(tmp_path / "server") as server:
        org, email, token = bootstrap_admin(server)
        agent_token = server.admin(
            "create-token", "--org", org, "--email", email, "--role", "agent"
        )["token"]
        with (
            Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node="m1"),
            server.client(token) as api,
        ):
            made = api.post(
                "/api/v1/tasks",
                json={"name": "nightly", "command": "echo hi", "target": {"nodes": ["m1"]}},
            )
            assert made.status_code == 201, made.text
            first = api.get("/metrics")
            assert first.status_code == 200
            assert sample(first.text, "jobyard_agents_connected") == 1.0

            ran = api.post(f"/api/v1/tasks/{made.json()['id']}/run", json={})
            assert ran.status_code == 201, ran.text
            job_id = ran.json()["id"]
            wait_until(
                lambda: api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "complete",
                timeout=30,
                what="the job to complete",
            )
            failed = api.post("/api/v1/jobs", json={"command": "exit 3", "nodes": ["m1"]})
            assert failed.status_code == 201, failed.text
            wait_until(
                lambda: (
                    api.get(f"/api/v1/jobs/{failed.json()['id']}").json()["status"] == "complete"
                ),
                timeout=30,
                what="the failing job to end",
            )
            text = api.get("/metrics").text

        assert sample(text, "jobyard_jobs_total", status="complete", task="nightly") == 1.0
        assert sample(text, "jobyard_jobs_total", status="complete", task="") == 1.0
        assert sample(text, "jobyard_jobs_in_status", status="complete", task="nightly") == 1.0
        assert sample(text, "jobyard_job_duration_seconds_count", task="nightly") == 1.0
        assert sample(text, "jobyard_node_runs_total", status="succeeded", task="nightly") == 1.0
        assert sample(text, "jobyard_node_runs_total", status="failed", task="") == 1.0
        assert sample(text, "jobyard_node_run_duration_seconds_count", status="failed") == 1.0
        last = sample(text, "jobyard_task_last_success_timestamp_seconds", task="nightly")
        assert last is not None and last > 1.7e9
        assert sample(text, "jobyard_nodes", state="online") == 1.0
        assert sample(text, "jobyard_agents_connected") == 1.0
        made_jobs = sample(
            text, "jobyard_db_transaction_seconds_count", kind="write", use_case="create_job"
        )
        assert made_jobs is not None and made_jobs >= 1.0
        # HTTP metrics carry the route's template, not the path with its ids.
        assert sample(
            text,
            "jobyard_http_requests_total",
            method="GET",
            route="/api/v1/jobs/{job_id}",
            status="200",
        )
        assert f'route="/api/v1/jobs/{job_id}"' not in text
