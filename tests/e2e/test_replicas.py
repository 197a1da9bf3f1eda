"""Two ``jobyard serve`` replicas on one PostgreSQL database hand work to each other."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e


def _finished(client: httpx.Client, job_id: int) -> dict | None:
    job = client.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] in ("complete", "quorum_failed", "timed_out", "aborted") else None


def test_job_submitted_to_one_replica_runs_on_an_agent_of_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    env = {"JOBYARD_HEARTBEAT_INTERVAL": "0.5", "JOBYARD_VOTING_TIMEOUT": "20"}
    with (
        Server(tmp_path / "a", database_url=pg_url, env=env) as a,
        Server(tmp_path / "b", database_url=pg_url, env=env) as b,
    ):
        org, email, token = bootstrap_admin(a)
        agent_token = a.admin("create-token", "--org", org, "--email", email, "--role", "agent")
        with (
            Agent(tmp_path / "agent", server_url=a.url, token=agent_token["token"], node="n1"),
            b.client(token) as client,
        ):
            # A command carries its text through the bridge; a long one (over the
            # NOTIFY payload limit) is re-derived from the database by replica A.
            for command in ("echo via b", "echo " + "x" * 9000):
                r = client.post("/api/v1/jobs", json={"command": command, "nodes": ["n1"]})
                assert r.status_code == 201, r.text
                job = wait_until(
                    lambda jid=r.json()["id"]: _finished(client, jid),
                    timeout=20,
                    what="the job to finish",
                )
                assert job["status"] == "complete", job
                assert job["node_states"] == {"succeeded": ["n1"]}
                out = client.get(f"/api/v1/jobs/{job['id']}/output/n1/stdout").text
                assert out.strip() == command[5:]
            # Replica B's event stream sees what replica A recorded (the votes, the result).
            with client.stream("GET", f"/api/v1/jobs/{job['id']}/events", timeout=10) as stream:
                body = stream.read().decode()
            assert "node_run.status" in body and '"to_status":"succeeded"' in body
