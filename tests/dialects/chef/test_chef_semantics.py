"""What the real Push Jobs server does beyond the seed: the job resources echo the options a
job was started with, output exists only when captured, bodies are checked key by key, and
the feed is served at the server's own path (job_status_feed) as well as the documented one."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from jobyard.domain.dialects import chef
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.domain.rounds import VOTING_TIMEOUT
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.chef.test_chef_feeds import parse
from tests.dialects.conftest import drive

S = NodeRunStatus


def base(account: Account) -> str:
    return f"/compat/chef/organizations/{account.org}/pushy"


async def start(client: httpx.AsyncClient, admin: Account, body: dict[str, Any]) -> str:
    r = await client.post(f"{base(admin)}/jobs", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    chef_id: str = r.json()["id"]
    return chef_id


async def test_the_named_job_and_the_list_echo_the_start_options(
    client: httpx.AsyncClient, admin: Account
) -> None:
    chef_id = await start(
        client,
        admin,
        {
            "command": "deploy",
            "nodes": ["n1"],
            "user": "deployer",
            "dir": "/srv/app",
            "env": {"STAGE": "blue"},
            "file": "raw:#!/bin/sh\necho hi\n",
            "capture_output": True,
        },
    )
    r = await client.get(f"{base(admin)}/jobs/{chef_id}", headers=admin.headers)
    job = r.json()
    assert {k: job[k] for k in ("user", "dir", "env", "capture_output", "file_specified")} == {
        "user": "deployer",
        "dir": "/srv/app",
        "env": {"STAGE": "blue"},
        "capture_output": True,
        "file_specified": True,
    }
    assert "file" not in job
    r = await client.get(f"{base(admin)}/jobs/{chef_id}?include_file=true", headers=admin.headers)
    assert r.json()["file"] == "raw:#!/bin/sh\necho hi\n" and "file_specified" not in r.json()
    listed = (await client.get(f"{base(admin)}/jobs", headers=admin.headers)).json()
    assert listed[0]["user"] == "deployer" and listed[0]["file_specified"] is True


async def test_a_plain_job_echoes_no_options_and_knifes_defaults_echo_as_sent(
    client: httpx.AsyncClient, admin: Account
) -> None:
    plain = await start(client, admin, {"command": "uptime", "nodes": ["n1"]})
    job = (await client.get(f"{base(admin)}/jobs/{plain}", headers=admin.headers)).json()
    assert set(job) == {
        "id",
        "command",
        "run_timeout",
        "status",
        "created_at",
        "updated_at",
        "nodes",
    }
    # knife job start always sends env (maybe {}) and capture_output (false by default).
    knife = await start(
        client,
        admin,
        {"command": "uptime", "nodes": ["n1"], "quorum": 1, "capture_output": False, "env": {}},
    )
    job = (await client.get(f"{base(admin)}/jobs/{knife}", headers=admin.headers)).json()
    assert job["env"] == {} and "capture_output" not in job


async def test_output_of_a_job_started_without_capture_output_is_404(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    chef_id = await start(client, admin, {"command": "echo hi", "nodes": ["n1"]})
    await drive(svc, int(chef_id, 16), output={"n1": ("hi\n", "")})
    for channel in ("stdout", "stderr"):
        r = await client.get(
            f"{base(admin)}/jobs/{chef_id}/output/n1/{channel}", headers=admin.headers
        )
        assert r.status_code == 404, r.text
        assert "capture_output" in r.json()["error"][0]
    r = await client.get(f"/api/v1/jobs/{int(chef_id, 16)}", headers=admin.headers)
    assert r.json()["capture_output"] is False


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"command": "x", "nodes": ["a"], "colour": "red"}, "invalid key supplied"),
        ({"command": "x", "nodes": ["a"], "file": "hello"}, "expected 'base64:...' or 'raw:...'"),
        ({"command": "x", "nodes": ["a"], "file": "base64:!!"}, "couldn't decode base64"),
        ({"command": 5, "nodes": ["a"]}, "invalid command supplied"),
        ({"command": "", "nodes": ["a"]}, "invalid command supplied"),
        ({"nodes": ["a"]}, "invalid command supplied"),
        ({"command": "x", "nodes": []}, "at least one node must be supplied"),
        ({"command": "x", "nodes": ["a", 1]}, "at least one node must be supplied"),
        ({"command": "x", "nodes": "a"}, "at least one node must be supplied"),
        ({"command": "x", "nodes": ["a"], "quorum": True}, "quorum (expected a number)"),
        ({"command": "x", "nodes": ["a"], "quorum": [1]}, "quorum (expected a number)"),
        ({"command": "x", "nodes": ["a"], "run_timeout": "10"}, "run_timeout (expected a"),
        ({"command": "x", "nodes": ["a"], "capture_output": "yes"}, "(expected a boolean)"),
        ({"command": "x", "nodes": ["a"], "env": {"A": 1}}, "env"),
        ({"command": "x", "nodes": ["a"], "env": ["A=1"]}, "env"),
        ({"command": "x", "nodes": ["a"], "user": 5}, "user"),
        ({"command": "x", "nodes": ["a"], "dir": ["/"]}, "dir"),
        ({"command": "x", "nodes": ["a"], "quorum": 2}, "quorum"),
        ({"command": "x", "nodes": ["a"], "run_timeout": 0}, "run_timeout"),
    ],
)
async def test_a_bad_body_is_400_in_chefs_shape_and_creates_nothing(
    client: httpx.AsyncClient, admin: Account, body: dict[str, Any], message: str
) -> None:
    r = await client.post(f"{base(admin)}/jobs", json=body, headers=admin.headers)
    assert r.status_code == 400, r.text
    assert list(r.json()) == ["error"] and message in r.json()["error"][0]
    assert (await client.get(f"{base(admin)}/jobs", headers=admin.headers)).json() == []


async def test_a_base64_file_is_accepted(client: httpx.AsyncClient, admin: Account) -> None:
    data = "base64:" + base64.b64encode(b"\x00\x01binary").decode()
    chef_id = await start(client, admin, {"command": "x", "nodes": ["a"], "file": data})
    r = await client.get(f"{base(admin)}/jobs/{chef_id}?include_file=true", headers=admin.headers)
    assert r.json()["file"] == data


async def test_the_feed_at_the_real_servers_path_and_the_documented_one(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    chef_id = await start(
        client,
        admin,
        {"command": "ls", "nodes": ["n1"], "dir": "/tmp", "user": "ops", "file": "raw:x"},
    )
    job_id = int(chef_id, 16)
    await drive(svc, job_id, job=[JobStatus.VOTING])
    await drive(svc, job_id, runs={"n1": [S.READY]})
    await drive(svc, job_id, job=[JobStatus.RUNNING])
    await drive(svc, job_id, runs={"n1": [S.RUNNING, S.SUCCEEDED]})
    await drive(svc, job_id, job=[JobStatus.COMPLETE])
    seen = []
    for path in ("job_status_feed", "jobs_status_feed"):
        r = await client.get(f"{base(admin)}/{path}/{chef_id}", headers=admin.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        seen.append([(name, data) for name, _, data in parse(r.text)])
    assert seen[0] == seen[1]
    names = [name for name, _ in seen[0]]
    assert names == [
        "start",
        "quorum_vote",
        "quorum_succeeded",
        "run_start",
        "run_complete",
        "job_complete",
        "summary",
    ]
    started = seen[0][0][1]
    assert started["job_user"] == "ops" and started["dir"] == "/tmp"
    assert started["file_specified"] is True and "capture" not in started
    r = await client.get(f"{base(admin)}/job_status_feed/{'0' * 31}9", headers=admin.headers)
    assert r.status_code == 404 and "error" in r.json()


def test_feed_words_for_votes_that_never_came() -> None:
    vote = chef.feed_event(
        "node_run", "node_run.status", "new", "unavailable", "n1", VOTING_TIMEOUT
    )
    assert vote == ("quorum_vote", {"node": "n1", "status": "voting_timeout"})
    vote = chef.feed_event("node_run", "node_run.status", "new", "unavailable", "n1", "offline")
    assert vote == ("quorum_vote", {"node": "n1", "status": "down"})
    lost = chef.feed_event("node_run", "node_run.status", "ready", "unavailable", "n1", "gone")
    assert lost == ("quorum_vote", {"node": "n1", "status": "down"})
    # Ready nodes turned was_ready by a failed quorum get no event of their own.
    assert chef.feed_event("node_run", "node_run.status", "ready", "was_ready", "n1") is None
