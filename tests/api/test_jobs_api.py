"""The native jobs API through the ASGI app."""

from __future__ import annotations

import httpx

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
