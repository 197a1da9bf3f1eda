"""Chef Push Jobs status feeds: server-sent events replayed from the event log."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import drive

S = NodeRunStatus


def parse(stream: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    events = []
    for block in stream.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.removeprefix(" ")
        if "event" in fields:
            events.append((fields["event"], fields.get("id"), json.loads(fields["data"])))
    return events


async def finished_job(client: httpx.AsyncClient, admin: Account, svc: Services) -> str:
    r = await client.post(
        f"/compat/chef/organizations/{admin.org}/pushy/jobs",
        json={"command": "ls /etc/chef", "nodes": ["NODE1", "NODE2"], "run_timeout": 300},
        headers=admin.headers,
    )
    chef_id: str = r.json()["id"]
    job_id = int(chef_id, 16)
    await drive(svc, job_id, job=[JobStatus.VOTING])
    await drive(svc, job_id, runs={"NODE1": [S.READY], "NODE2": [S.READY]})
    await drive(svc, job_id, job=[JobStatus.RUNNING])
    await drive(
        svc, job_id, runs={"NODE1": [S.RUNNING, S.SUCCEEDED], "NODE2": [S.RUNNING, S.FAILED]}
    )
    await drive(svc, job_id, job=[JobStatus.COMPLETE])
    return chef_id


async def test_job_feed_of_a_finished_job(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    chef_id = await finished_job(client, admin, svc)
    url = f"/compat/chef/organizations/{admin.org}/pushy/jobs_status_feed/{chef_id}"
    r = await client.get(url, headers={**admin.headers, "Accept": "text/event-stream"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse(r.text)
    names = [e[0] for e in events]
    assert names == [
        "start",
        "quorum_vote",
        "quorum_vote",
        "quorum_succeeded",
        "run_start",
        "run_complete",
        "run_start",
        "run_complete",
        "job_complete",
        "summary",
    ]
    start = events[0][2]
    assert start["command"] == "ls /etc/chef" and start["run_timeout"] == 300
    assert start["quorum"] == 2 and start["node_count"] == 2 and start["user"] == admin.email
    assert "job" not in start  # not in a job feed
    assert {e[2]["node"]: e[2]["status"] for e in events if e[0] == "quorum_vote"} == {
        "NODE1": "success",
        "NODE2": "success",
    }
    assert {e[2]["node"]: e[2]["status"] for e in events if e[0] == "run_complete"} == {
        "NODE1": "success",
        "NODE2": "failure",
    }
    assert events[-2][2]["status"] == "complete"
    summary = events[-1][2]
    assert summary["id"] == chef_id and summary["nodes"] == {
        "succeeded": ["NODE1"],
        "failed": ["NODE2"],
    }
    ids = [e[1] for e in events[:-1]]
    assert len(set(ids)) == len(ids) and None not in ids
    assert events[-1][1] is None  # the summary is no event of the log: a reconnect skips it
    stamps = [e[2]["timestamp"] for e in events]
    assert all(s.endswith("Z") and s[10] == " " for s in stamps)
    # Replay after an event id the client saw.
    r = await client.get(url, headers={**admin.headers, "Last-Event-ID": str(ids[4])})
    assert [e[0] for e in parse(r.text)] == names[5:]


async def test_quorum_failed_ends_with_job_complete(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    r = await client.post(
        f"/compat/chef/organizations/{admin.org}/pushy/jobs",
        json={"command": "x", "nodes": ["NODE1", "NODE2"]},
        headers=admin.headers,
    )
    chef_id = r.json()["id"]
    job_id = int(chef_id, 16)
    await drive(svc, job_id, job=[JobStatus.VOTING])
    await drive(svc, job_id, runs={"NODE1": [S.NACKED], "NODE2": [S.READY, S.WAS_READY]})
    await drive(svc, job_id, job=[JobStatus.QUORUM_FAILED])
    r = await client.get(
        f"/compat/chef/organizations/{admin.org}/pushy/jobs_status_feed/{chef_id}",
        headers=admin.headers,
    )
    events = parse(r.text)
    assert [e[0] for e in events] == [
        "start",
        "quorum_vote",
        "quorum_vote",
        "job_complete",
        "summary",
    ]
    assert events[1][2] == {**events[1][2], "node": "NODE1", "status": "failure"}
    assert events[3][2]["status"] == "quorum_failed"


async def test_live_feeds_over_http(live_url: str, admin: Account, svc: Services) -> None:
    """A job feed follows a running job to its end; the org feed sees start and job_complete."""
    base = f"{live_url}/compat/chef/organizations/{admin.org}/pushy"
    async with (
        httpx.AsyncClient(headers=admin.headers, timeout=10) as http,
        http.stream("GET", f"{base}/jobs_status_feed") as org_feed,
    ):
        assert org_feed.status_code == 200
        r = await http.post(f"{base}/jobs", json={"command": "x", "nodes": ["NODE1"]})
        chef_id = r.json()["id"]
        job_id = int(chef_id, 16)
        async with http.stream("GET", f"{base}/jobs_status_feed/{chef_id}") as job_feed:
            await drive(svc, job_id, job=[JobStatus.VOTING])
            await drive(svc, job_id, runs={"NODE1": [S.READY]})
            await drive(svc, job_id, job=[JobStatus.RUNNING])
            await drive(svc, job_id, runs={"NODE1": [S.RUNNING, S.SUCCEEDED]})
            await drive(svc, job_id, job=[JobStatus.COMPLETE])
            text = await asyncio.wait_for(job_feed.aread(), 10)
        names = [e[0] for e in parse(text.decode())]
        assert names == [
            "start",
            "quorum_vote",
            "quorum_succeeded",
            "run_start",
            "run_complete",
            "job_complete",
        ]
        seen: list[tuple[str, str, dict[str, Any]]] = []
        buffer = ""

        async def read_two() -> None:
            nonlocal buffer
            async for chunk in org_feed.aiter_text():
                buffer += chunk
                seen[:] = parse(buffer)
                if len(seen) >= 2:
                    return

        await asyncio.wait_for(read_two(), 10)
    assert [(e[0], e[2]["job"]) for e in seen] == [("start", chef_id), ("job_complete", chef_id)]
    assert seen[1][2]["status"] == "complete"


async def test_org_feed_unknown_last_event_id_starts_history(
    live_url: str, admin: Account, svc: Services
) -> None:
    base = f"{live_url}/compat/chef/organizations/{admin.org}/pushy"
    async with httpx.AsyncClient(headers=admin.headers, timeout=10) as http:
        r = await http.post(f"{base}/jobs", json={"command": "x", "nodes": ["NODE1"]})
        chef_id = r.json()["id"]
        headers = {"Last-Event-ID": "not-an-id-of-ours"}
        async with http.stream("GET", f"{base}/jobs_status_feed", headers=headers) as feed:
            buffer = ""
            events: list[tuple[str, str, dict[str, Any]]] = []

            async def read_two() -> None:
                nonlocal buffer, events
                async for chunk in feed.aiter_text():
                    buffer += chunk
                    events = parse(buffer)
                    if len(events) >= 2:
                        return

            await asyncio.wait_for(read_two(), 10)
    assert events[0][0] == "start_of_history"
    assert events[1][0] == "start" and events[1][2]["job"] == chef_id
