"""Watchers, shares, the inbox, notification settings and webhooks through the native API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from jobyard.api.app import create_app
from jobyard.notify import webhooks as signing
from jobyard.service.context import Services
from jobyard.service.hub import SHUTDOWN
from tests.api.conftest import Tenant
from tests.conftest import Account
from tests.notify.conftest import configure, drain, eventually, finish_job
from tests.notify.receivers import WebhookReceiver, free_port


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    r = WebhookReceiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def new_job(client: httpx.AsyncClient, who: Account) -> int:
    r = await client.post(
        "/api/v1/jobs",
        json={"command": "true", "nodes": ["n1"], "name": "nightly"},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def test_watchers(client: httpx.AsyncClient, tenant: Tenant) -> None:
    job = await new_job(client, tenant.user)
    url = f"/api/v1/jobs/{job}/watchers"
    r = await client.get(url, headers=tenant.viewer.headers)
    assert r.status_code == 200
    assert [(w["id"], w["display_name"]) for w in r.json()["results"]] == [
        (tenant.user.user_id, "user")
    ]

    r = await client.post(url, headers=tenant.viewer.headers)
    assert r.status_code == 201, r.text
    assert r.json()["job_url"] == f"http://testserver/api/v1/jobs/{job}"
    assert r.json()["created_at"].endswith("Z")
    assert (await client.post(url, headers=tenant.viewer.headers)).status_code == 200
    assert (await client.delete(url, headers=tenant.viewer.headers)).status_code == 204

    other = {"user_id": tenant.user2.user_id}
    r = await client.post(url, json=other, headers=tenant.user.headers)
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    assert (await client.post(url, json=other, headers=tenant.admin.headers)).status_code == 201
    ids = [w["id"] for w in (await client.get(url, headers=tenant.user.headers)).json()["results"]]
    assert ids == [tenant.user.user_id, tenant.user2.user_id]
    r = await client.delete(f"{url}/{tenant.user2.user_id}", headers=tenant.admin.headers)
    assert r.status_code == 204

    assert (await client.get(url, headers=tenant.outsider.headers)).status_code == 404
    assert (await client.post(url, headers=tenant.agent.headers)).status_code == 403
    assert (await client.get(url)).status_code == 401
    assert (
        await client.get("/api/v1/jobs/0/watchers", headers=tenant.user.headers)
    ).status_code == 422
    r = await client.post(url, json={"user_id": "me"}, headers=tenant.admin.headers)
    assert r.status_code == 422


async def test_cluster_watchers(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(
        "/api/v1/clusters", json={"name": "etl", "nodes": 1}, headers=tenant.user.headers
    )
    assert r.status_code == 201, r.text
    url = f"/api/v1/clusters/{r.json()['id']}/watchers"
    r = await client.get(url, headers=tenant.viewer.headers)
    assert [w["id"] for w in r.json()["results"]] == [tenant.user.user_id]
    r = await client.post(url, headers=tenant.viewer.headers)
    assert r.status_code == 201 and "cluster_url" in r.json()
    assert (await client.delete(url, headers=tenant.viewer.headers)).status_code == 204
    assert (await client.get(url, headers=tenant.outsider.headers)).status_code == 404


async def test_shares(client: httpx.AsyncClient, tenant: Tenant) -> None:
    job = await new_job(client, tenant.user)
    url = f"/api/v1/jobs/{job}/shares"
    outsider = tenant.outsider
    assert (await client.get(f"/api/v1/jobs/{job}", headers=outsider.headers)).status_code == 404

    r = await client.post(
        url, json={"email": outsider.email, "message": "for review"}, headers=tenant.user.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["email"] == outsider.email and r.json()["message"] == "for review"
    assert (await client.get(f"/api/v1/jobs/{job}", headers=outsider.headers)).status_code == 200
    listed = (await client.get("/api/v1/jobs", headers=outsider.headers)).json()
    assert [j["id"] for j in listed["results"]] == [job]
    r = await client.get(url, headers=tenant.viewer.headers)
    assert [s["email"] for s in r.json()] == [outsider.email]
    r = await client.post(f"/api/v1/jobs/{job}/stop", headers=outsider.headers)
    assert r.status_code == 404

    r = await client.post(url, json={"email": "ghost@nowhere.test"}, headers=tenant.user.headers)
    assert r.status_code == 404 and "no user with email" in r.json()["detail"]
    r = await client.post(url, json={"mail": "x"}, headers=tenant.user.headers)
    assert r.status_code == 422
    r = await client.post(url, json={"email": outsider.email}, headers=tenant.user2.headers)
    assert r.status_code == 404

    r = await client.delete(f"{url}/{outsider.email}", headers=tenant.user.headers)
    assert r.status_code == 204
    assert (await client.get(f"/api/v1/jobs/{job}", headers=outsider.headers)).status_code == 404


async def test_inbox_and_settings(client: httpx.AsyncClient, tenant: Tenant, svc: Services) -> None:
    configure(svc)
    # An SMTP server that does not answer: the emails wait, visibly.
    svc.settings = svc.settings.replace(smtp_host="127.0.0.1", smtp_port=free_port())
    jobs = [await new_job(client, tenant.user) for _ in range(2)]
    for job in jobs:
        await finish_job(svc, job)
    await drain(svc)
    h = tenant.user.headers

    r = await client.get("/api/v1/notifications", params={"order": "time"}, headers=h)
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 2
    first = page["results"][0]
    assert set(first) >= {"id", "title", "message", "last_read_at", "created_at", "updated_at"}
    assert first["title"] == f"Job 'nightly' (#{jobs[1]}) completed"
    assert first["url"] == f"http://testserver/jobs/{jobs[1]}"
    assert first["read"] is False and first["last_read_at"] is None
    assert (await client.get("/api/v1/notifications/unread-count", headers=h)).json() == {
        "unread": 2
    }

    r = await client.post(f"/api/v1/notifications/{first['id']}/read", headers=h)
    assert r.status_code == 200 and r.json()["last_read_at"] is not None
    r = await client.get("/api/v1/notifications", params={"unread": "true"}, headers=h)
    assert [n["subject"]["id"] for n in r.json()["results"]] == [jobs[0]]
    r = await client.get(f"/api/v1/notifications/{first['id']}", headers=tenant.user2.headers)
    assert r.status_code == 404
    assert (await client.post("/api/v1/notifications/read-all", headers=h)).json() == {"marked": 1}
    r = await client.get("/api/v1/notifications", params={"order": "sideways"}, headers=h)
    assert r.status_code == 422

    r = await client.get("/api/v1/notifications/settings", headers=h)
    assert r.json()["channels"] == ["in_app", "email"]
    assert r.json()["kinds"]["job.failed"] == {"in_app": True, "email": True}
    r = await client.put(
        "/api/v1/notifications/settings",
        json={"kinds": {"job.failed": {"email": False}}},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["kinds"]["job.failed"] == {"in_app": True, "email": False}
    r = await client.put(
        "/api/v1/notifications/settings", json={"kinds": {"job.melted": {}}}, headers=h
    )
    assert r.status_code == 422 and "unknown notification kind" in r.json()["detail"]
    r = await client.put(
        "/api/v1/notifications/settings",
        json={"kinds": {"job.failed": {"pager": True}}},
        headers=h,
    )
    assert r.status_code == 422

    r = await client.get("/api/v1/notifications/deliveries", headers=h)
    assert r.json()["count"] == 2
    waiting = r.json()["results"][0]
    # Tried at least once (the relay may already have tried again on a slow machine).
    assert (waiting["channel"], waiting["status"]) == ("email", "pending")
    assert waiting["attempts"] >= 1
    assert "cannot reach the SMTP server" in waiting["last_error"]
    assert waiting["next_attempt_at"] is not None
    r = await client.post(f"/api/v1/notifications/deliveries/{waiting['id']}/retry", headers=h)
    assert r.status_code == 409  # only failed deliveries are sent again by hand
    r = await client.get("/api/v1/notifications/deliveries?all=true", headers=h)
    assert r.status_code == 403
    r = await client.get("/api/v1/notifications/deliveries?all=true", headers=tenant.admin.headers)
    assert r.json()["count"] == 2
    r = await client.get("/api/v1/notifications/deliveries?status=lost", headers=h)
    assert r.status_code == 422
    r = await client.get("/api/v1/notifications", headers=tenant.agent.headers)
    assert r.status_code == 403


async def test_webhook_subscriptions(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services, receiver: WebhookReceiver
) -> None:
    configure(svc)
    admin = tenant.admin.headers
    r = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "event_types": ["*"]}, headers=admin
    )
    assert r.status_code == 201, r.text
    sub = r.json()
    assert sub["secret"].startswith("whsec_") and sub["enabled"] is True
    assert r.headers["location"] == f"/api/v1/webhooks/{sub['id']}"

    r = await client.post(
        "/api/v1/webhooks",
        json={"url": receiver.url, "event_types": ["*"]},
        headers=tenant.user.headers,
    )
    assert r.status_code == 403
    r = await client.post(
        "/api/v1/webhooks", json={"url": "gopher://x", "event_types": ["*"]}, headers=admin
    )
    assert r.status_code == 422 and "https://" in r.json()["detail"]
    r = await client.post(
        "/api/v1/webhooks", json={"url": receiver.url, "event_types": ["job.boom"]}, headers=admin
    )
    assert r.status_code == 422
    assert (
        "job.failed"
        in (await client.get("/api/v1/webhooks/event-types", headers=admin)).json()["event_types"]
    )

    job = await new_job(client, tenant.user)
    await finish_job(svc, job)
    await drain(svc)
    kinds = [json.loads(got.body)["type"] for got in receiver.received]
    assert kinds == ["job.submitted", "job.started", "job.completed"]
    assert all(signing.verify(sub["secret"], got.headers, got.body) for got in receiver.received)
    r = await client.get(f"/api/v1/webhooks/{sub['id']}/deliveries", headers=admin)
    assert r.json()["count"] == 3

    r = await client.patch(f"/api/v1/webhooks/{sub['id']}", json={"enabled": False}, headers=admin)
    assert r.json()["enabled"] is False and r.json()["disabled_reason"].startswith("disabled by")
    r = await client.patch(
        f"/api/v1/webhooks/{sub['id']}",
        json={"event_types": ["job.failed"], "enabled": True},
        headers=admin,
    )
    assert r.json()["event_types"] == ["job.failed"] and r.json()["disabled_reason"] is None
    assert (
        await client.get(f"/api/v1/webhooks/{sub['id']}", headers=tenant.outsider.headers)
    ).status_code == 404
    assert (await client.delete(f"/api/v1/webhooks/{sub['id']}", headers=admin)).status_code == 204
    assert (await client.get("/api/v1/webhooks", headers=admin)).json() == []


@contextlib.asynccontextmanager
async def serving(svc: Services) -> AsyncIterator[str]:
    """The jobyard app under uvicorn on loopback (streams need a real server)."""
    port = free_port()
    app = create_app(services=svc, migrate=False, run_loops=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            return bool(server.started)

        await eventually(started, what="uvicorn to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def read_events(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in lines:
        if not line:
            if current:
                events.append(current)
                current = {}
            if len(events) == count:
                return events
            continue
        field, _, value = line.partition(": ")
        if field in ("id", "event"):
            current[field] = value
        elif field == "data":
            current["data"] = json.loads(value)
    return events


async def test_the_inbox_stream_is_live(svc: Services, tenant: Tenant) -> None:
    configure(svc)
    async with serving(svc) as base, httpx.AsyncClient(base_url=base, timeout=10) as http:
        job = await new_job(http, tenant.user)
        async with http.stream(
            "GET", "/api/v1/notifications/stream", headers=tenant.user.headers
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            lines = r.aiter_lines()
            [hello] = await read_events(lines, 1)
            assert hello == {"event": "unread", "data": {"unread": 0}}

            await finish_job(svc, job)
            await drain(svc)
            note, count = await asyncio.wait_for(read_events(lines, 2), 10)
            assert note["event"] == "notification"
            assert note["data"]["title"] == f"Job 'nightly' (#{job}) completed"
            assert count == {"event": "unread", "data": {"unread": 1}}

            await http.post("/api/v1/notifications/read-all", headers=tenant.user.headers)
            [read] = await asyncio.wait_for(read_events(lines, 1), 10)
            assert read == {"event": "unread", "data": {"unread": 0}}
            last = note["id"]

        # Reconnecting with Last-Event-ID replays what came after it, and nothing before.
        job2 = await new_job(http, tenant.user)
        await finish_job(svc, job2)
        await drain(svc)
        headers = {**tenant.user.headers, "Last-Event-ID": last}
        async with http.stream("GET", "/api/v1/notifications/stream", headers=headers) as r:
            lines = r.aiter_lines()
            [replayed, _] = await asyncio.wait_for(read_events(lines, 2), 10)
            assert replayed["data"]["subject"]["id"] == job2

            # A server that starts to stop ends the stream rather than wait for the client.
            svc.hub.publish_local(SHUTDOWN, SHUTDOWN)
            assert await asyncio.wait_for(read_events(lines, 1), 10) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://[2002:a00:1::]/",  # 6to4 embedding 10.0.0.1
        "http://[::ffff:10.0.0.1]/",  # IPv4-mapped
        "http://[64:ff9b::a00:1]/",  # NAT64
        "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",  # Teredo client 10.0.0.1
        "http://[::10.0.0.1]/",  # IPv4-compatible
    ],
)
async def test_webhook_urls_embedding_a_private_ipv4_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services, url: str
) -> None:
    assert svc.settings.webhook_allow_private is False
    admin = tenant.admin.headers
    r = await client.post(
        "/api/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=admin
    )
    assert r.status_code == 422, r.text
    assert "10.0.0.1" in r.json()["detail"] and "private" in r.json()["detail"]
    assert (await client.get("/api/v1/webhooks", headers=admin)).json() == []


async def test_webhook_urls_embedding_a_public_ipv4_pass_the_address_rule(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    assert svc.settings.webhook_allow_private is False
    r = await client.post(
        "/api/v1/webhooks",
        json={"url": "http://[2002:808:808::]/hook", "event_types": ["*"]},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201, r.text
