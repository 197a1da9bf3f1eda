"""The native jobs API through the ASGI app."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from jobyard.domain.clock import FakeClock
from jobyard.service.context import Services
from tests.api.conftest import Tenant
from tests.conftest import Account


async def test_create_get_list_stop_delete(client: httpx.AsyncClient, admin: Account) -> None:
    r = await client.post(
        "/api/v1/jobs",
        json={"command": "uptime", "nodes": ["a", "b"], "quorum": "50%"},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "new"
    assert job["node_states"] == {"new": ["a", "b"]}
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers)
    assert r.json()["quorum"] == "50%"
    r = await client.get("/api/v1/jobs", headers=admin.headers)
    assert r.json()["count"] == 1
    r = await client.post(f"/api/v1/jobs/{job['id']}/stop", headers=admin.headers)
    assert r.json()["status"] == "aborted"
    r = await client.delete(f"/api/v1/jobs/{job['id']}", headers=admin.headers)
    assert r.status_code == 204
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


# -- drafts, updates, submit, stop, delete

JOB = {"command": "uptime", "nodes": ["web1", "web2"], "quorum": "50%", "run_timeout": 60}


async def make(client: httpx.AsyncClient, who: Account, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/jobs", json={**JOB, **extra}, headers=who.headers)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/api/v1/jobs/{r.json()['id']}"
    job: dict[str, Any] = r.json()
    return job


async def test_defaults_and_shapes(client: httpx.AsyncClient, admin: Account) -> None:
    job = await make(client, admin, quorum=None, run_timeout=None, name="n")
    assert (job["quorum"], job["run_timeout"], job["env"], job["capture_output"]) == (
        "100%",
        3600,
        {},
        True,
    )
    assert job["url"] == f"http://testserver/api/v1/jobs/{job['id']}"
    assert job["created_by"] == admin.user_id and job["submitted_at"] is not None
    assert job["node_runs"][0]["status"] == "new" and job["node_runs"][0]["node"] == "web1"
    argv = await make(client, admin, command=None, argv=["echo", "a b"])
    assert argv["command"] == "echo 'a b'" and argv["argv"] == ["echo", "a b"]
    nested = await make(client, admin, nodes=None, target={"nodes": ["web3"]})
    assert nested["nodes"] == ["web3"] and nested["target"] == {"nodes": ["web3"]}


async def test_draft_put_patch_submit(client: httpx.AsyncClient, admin: Account) -> None:
    draft = await make(client, admin, draft=True, env={"A": "1"}, name="build")
    assert draft["status"] == "draft" and draft["node_runs"] == []
    assert draft["nodes"] == ["web1", "web2"] and draft["submitted_at"] is None
    url = f"/api/v1/jobs/{draft['id']}"
    # PATCH changes only what it names
    r = await client.patch(url, json={"command": "hostname", "quorum": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["command"], r.json()["quorum"], r.json()["env"], r.json()["name"]) == (
        "hostname",
        "1",
        {"A": "1"},
        "build",
    )
    # PUT replaces the definition: what it leaves out goes back to the defaults
    r = await client.put(url, json={"command": "date", "tags": ["web"]}, headers=admin.headers)
    assert r.status_code == 200, r.text
    put = r.json()
    assert (put["command"], put["target"], put["env"], put["name"], put["quorum"]) == (
        "date",
        {"tags": ["web"]},
        {},
        None,
        "100%",
    )
    assert put["status"] == "draft"
    r = await client.patch(url, json={"tags": None, "nodes": ["web1"]}, headers=admin.headers)
    assert r.json()["target"] == {"nodes": ["web1"]}
    # submit: node runs appear, the job waits for agents
    r = await client.post(f"{url}/submit", headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "new" and r.json()["node_states"] == {"new": ["web1"]}
    r = await client.post(f"{url}/submit", headers=admin.headers)
    assert r.status_code == 409 and "submitted already" in r.json()["detail"]
    # after submit: name and description change; the definition does not
    r = await client.patch(url, json={"name": "renamed", "description": "d"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    for change, field in [
        ({"command": "rm -rf /"}, "command"),
        ({"quorum": "10%"}, "quorum"),
        ({"nodes": ["web9"]}, "target"),
        ({"env": {"B": "2"}}, "env"),
        ({"run_timeout": 5}, "run_timeout"),
        ({"capture_output": False}, "capture_output"),
        ({"dir": "/tmp"}, "dir"),
    ]:
        r = await client.patch(url, json=change, headers=admin.headers)
        assert r.status_code == 409, (change, r.text)
        assert field in r.json()["detail"] and "only name and description" in r.json()["detail"]
    r = await client.put(url, json={"command": "other", "nodes": ["web1"]}, headers=admin.headers)
    assert r.status_code == 409
    # a PUT that keeps the definition and renames is fine
    same = {"command": "date", "nodes": ["web1"], "name": "again"}
    r = await client.put(url, json=same, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "again" and r.json()["command"] == "date"


async def test_stop_and_delete(client: httpx.AsyncClient, admin: Account) -> None:
    draft = await make(client, admin, draft=True)
    r = await client.post(f"/api/v1/jobs/{draft['id']}/stop", headers=admin.headers)
    assert r.status_code == 409 and "delete it instead" in r.json()["detail"]
    live = await make(client, admin)
    url = f"/api/v1/jobs/{live['id']}"
    r = await client.delete(url, headers=admin.headers)
    assert r.status_code == 409 and f"POST /api/v1/jobs/{live['id']}/stop" in r.json()["detail"]
    r = await client.post(f"{url}/stop", json={"reason": "wrong box"}, headers=admin.headers)
    assert r.status_code == 200
    stopped = r.json()
    assert stopped["status"] == "aborted" and stopped["finished_at"] is not None
    assert stopped["node_states"] == {"aborted": ["web1", "web2"]}
    assert {run["reason"] for run in stopped["node_runs"]} == {"wrong box"}
    r = await client.post(f"{url}/stop", headers=admin.headers)
    assert r.status_code == 409 and "finished already" in r.json()["detail"]
    history = (await client.get(f"{url}/history", headers=admin.headers)).json()
    assert history["results"][-1]["reason"] == "wrong box"
    assert history["results"][-1]["actor"] == admin.email
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).status_code == 404
    assert (await client.get(f"{url}/history", headers=admin.headers)).status_code == 404
    assert (
        await client.delete(f"/api/v1/jobs/{draft['id']}", headers=admin.headers)
    ).status_code == 204


async def test_history_pages_with_absolute_links(client: httpx.AsyncClient, admin: Account) -> None:
    job = await make(client, admin, draft=True)
    url = f"/api/v1/jobs/{job['id']}"
    await client.post(f"{url}/submit", headers=admin.headers)
    await client.post(f"{url}/stop", headers=admin.headers)
    full = (await client.get(f"{url}/history", headers=admin.headers)).json()
    assert full["count"] == 3 and full["next"] is None and full["previous"] is None
    steps = [(e["type"], e["from_status"], e["to_status"]) for e in full["results"]]
    assert steps == [
        ("job.created", None, "draft"),
        ("job.status", "draft", "new"),
        ("job.status", "new", "aborted"),
    ]
    for e in full["results"]:
        assert e["actor"] == admin.email and e["created_at"].endswith("Z")
        assert e["status"] == e["to_status"]
    first = (await client.get(f"{url}/history?page_size=2", headers=admin.headers)).json()
    assert [e["id"] for e in first["results"]] == [e["id"] for e in full["results"][:2]]
    assert first["previous"] is None
    assert first["next"].startswith("http://testserver/api/v1/jobs/")
    second = (await client.get(first["next"], headers=admin.headers)).json()
    assert [e["id"] for e in second["results"]] == [full["results"][2]["id"]]
    assert second["next"] is None
    back = (await client.get(second["previous"], headers=admin.headers)).json()
    assert back["results"] == first["results"]
    newest = (await client.get(f"{url}/history?order=desc", headers=admin.headers)).json()
    assert newest["results"] == full["results"][::-1]
    r = await client.get(f"{url}/history?order=sideways", headers=admin.headers)
    assert r.status_code == 422


async def test_get_by_name(client: httpx.AsyncClient, admin: Account) -> None:
    await make(client, admin, name="nightly")
    newest = await make(client, admin, name="nightly")
    await make(client, admin, name="weekly")
    r = await client.get("/api/v1/jobs/by-name/nightly", headers=admin.headers)
    assert r.status_code == 200 and r.json()["id"] == newest["id"]
    r = await client.get("/api/v1/jobs/by-name/monthly", headers=admin.headers)
    assert r.status_code == 404 and "monthly" in r.json()["detail"]


async def test_list_filters_and_sorting(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    t0 = dt.datetime(2026, 4, 1, 12, 0, tzinfo=dt.UTC)
    clock = FakeClock(t0)
    svc.clock = clock
    u, u2 = tenant.user, tenant.user2
    a = await make(client, u, name="alpha", nodes=["n1"])  # 12:00
    clock.advance(60)
    b = await make(client, u2, name="beta", nodes=["n2"], draft=True)  # 12:01
    clock.advance(60)
    c = await make(client, u, name="gamma-alpha", nodes=["n1", "n2"], quorum=1)  # 12:02
    clock.advance(60)
    await client.post(f"/api/v1/jobs/{a['id']}/stop", headers=u.headers)  # a updated 12:03

    async def ids(query: str) -> list[int]:
        r = await client.get(f"/api/v1/jobs?{query}", headers=tenant.viewer.headers)
        assert r.status_code == 200, (query, r.text)
        body = r.json()
        assert body["count"] == len(body["results"])
        return [j["id"] for j in body["results"]]

    assert await ids("") == [c["id"], b["id"], a["id"]]  # newest first
    assert await ids("sort=created_at") == [a["id"], b["id"], c["id"]]
    assert await ids("sort=name") == [a["id"], b["id"], c["id"]]
    assert await ids("sort=-name") == [c["id"], b["id"], a["id"]]
    assert await ids("sort=-updated_at") == [a["id"], c["id"], b["id"]]
    assert await ids("status=aborted") == [a["id"]]
    assert await ids("status=draft,new") == [c["id"], b["id"]]
    assert await ids("name=alpha") == [a["id"]]
    assert await ids("search=alpha") == [c["id"], a["id"]]
    assert await ids(f"owner={u.user_id}") == [c["id"], a["id"]]
    r = await client.get("/api/v1/jobs?owner=me", headers=u2.headers)
    assert [j["id"] for j in r.json()["results"]] == [b["id"]]
    assert await ids("node=n2") == [c["id"]]  # drafts have no node runs yet
    assert await ids("node=n1") == [c["id"], a["id"]]
    assert await ids("created_after=2026-04-01T12:01:00Z") == [c["id"], b["id"]]
    assert await ids("created_before=2026-04-01T12:01:00Z") == [a["id"]]
    assert await ids("created_after=2026-04-01T14:01:30%2B02:00") == [c["id"]]
    assert await ids("updated_after=2026-04-01T12:03:00") == [a["id"]]  # naive means UTC
    assert await ids("updated_before=2026-04-01T12:01:30Z") == [b["id"]]
    assert await ids("status=running") == []


async def test_list_pagination(client: httpx.AsyncClient, admin: Account) -> None:
    made = [(await make(client, admin, name=f"j{i}"))["id"] for i in range(5)]
    seen: list[int] = []
    url: str | None = "/api/v1/jobs?page_size=2&sort=created_at&status=new"
    pages = 0
    while url:
        body = (await client.get(url, headers=admin.headers)).json()
        assert body["count"] == 5
        seen += [j["id"] for j in body["results"]]
        url = body["next"]
        if url:
            assert url.startswith("http://testserver/api/v1/jobs?")
            assert "status=new" in url and "sort=created_at" in url
        pages += 1
    assert pages == 3 and seen == made


async def test_tag_targets_resolve_to_known_nodes(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    async with svc.db.begin() as tx:
        org = await tx.accounts.org_by_name(admin.org)
        assert org is not None
        for name, tags, online in [
            ("a", ["web"], True),
            ("b", ["web", "eu"], True),
            ("c", ["db"], True),
        ]:
            await tx.nodes.upsert(
                org.id, name, {"tags": tags, "online": online, "busy": False}, svc.clock.now()
            )
    job = await make(client, admin, nodes=None, tags=["web"])
    assert sorted(job["nodes"]) == ["a", "b"]
    job = await make(client, admin, nodes=None, tags=["web", "eu"], quorum=None)
    assert job["nodes"] == ["b"]
    job = await make(client, admin, nodes=None, count=2, quorum=None)
    assert len(job["nodes"]) == 2
    r = await client.post(
        "/api/v1/jobs", json={"command": "x", "tags": ["gpu"]}, headers=admin.headers
    )
    assert r.status_code == 422 and "no node matches" in r.json()["detail"]
