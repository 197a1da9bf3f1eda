"""A running command asks a person for input (``jobyard ask``) and gets the answer."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, wait_until

pytestmark = pytest.mark.e2e
ASK = f"{shlex.quote(sys.executable)} -m jobyard ask"


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[httpx.Client]:
    env = {"JOBYARD_HEARTBEAT_INTERVAL": "0.5"}
    with Server(tmp_path / "server", env=env) as server:
        org, email, token = bootstrap_admin(server)
        agent_token = server.admin(
            "create-token", "--org", org, "--email", email, "--role", "agent"
        )
        with (
            Agent(tmp_path / "agent", server_url=server.url, token=agent_token["token"], node="n1"),
            server.client(token) as api,
        ):
            yield api


def _run(api: httpx.Client, command: str) -> int:
    r = api.post("/api/v1/jobs", json={"command": command, "nodes": ["n1"]})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _finished(api: httpx.Client, job_id: int) -> dict | None:
    job = api.get(f"/api/v1/jobs/{job_id}").json()
    return job if job["status"] in ("complete", "quorum_failed", "timed_out", "aborted") else None


def test_a_command_asks_and_a_person_answers(yard: httpx.Client) -> None:
    api = yard
    job_id = _run(api, f"v=$({ASK} --field version --prompt 'Which version?') && echo got $v")
    asked = wait_until(
        lambda: api.get(f"/api/v1/jobs/{job_id}/input").json(), timeout=30, what="the question"
    )
    assert asked[0]["prompt"] == "Which version?" and asked[0]["fields"][0]["name"] == "version"
    r = api.post(f"/api/v1/jobs/{job_id}/input", json={"arguments": {"version": "1.2.3"}})
    assert r.status_code == 200, r.text
    job = wait_until(lambda: _finished(api, job_id), timeout=30, what="the job to finish")
    assert job["node_states"] == {"succeeded": ["n1"]}
    assert api.get(f"/api/v1/jobs/{job_id}/output/n1/stdout").text == "got 1.2.3\n"
    history = api.get(f"/api/v1/jobs/{job_id}/events").text
    assert "input.requested" in history and "input.given" in history


def test_an_unanswered_question_expires(yard: httpx.Client) -> None:
    api = yard
    job_id = _run(api, f"{ASK} --field version --timeout 1 || echo expired >&2; exit 3")
    job = wait_until(lambda: _finished(api, job_id), timeout=40, what="the job to finish")
    assert job["node_states"] == {"failed": ["n1"]}
    assert "no input: expired" in api.get(f"/api/v1/jobs/{job_id}/output/n1/stderr").text
