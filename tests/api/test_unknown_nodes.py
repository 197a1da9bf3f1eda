"""A node name no agent has ever registered is refused (native API, dashboard), naming
the known ones; ``allow_unknown_nodes`` pre-declares it; Chef's dialect keeps its
documented ``unavailable``."""

from __future__ import annotations

import httpx
import pytest

from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_node
from tests.web.dashboard import sign_in


@pytest.fixture
def strict(svc: Services) -> Services:
    svc.settings = svc.settings.replace(allow_unknown_nodes=False)
    return svc


async def _count(client: httpx.AsyncClient, admin: Account) -> int:
    return int((await client.get("/api/v1/jobs", headers=admin.headers)).json()["count"])


async def test_api_refuses_unknown_names(
    client: httpx.AsyncClient, strict: Services, admin: Account
) -> None:
    await add_node(strict, admin.org, "web1")
    await add_node(strict, admin.org, "db1", online=False)
    r = await client.post(
        "/api/v1/jobs",
        json={"command": "uptime", "nodes": ["web1", "nosuch"]},
        headers=admin.headers,
    )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "'nosuch'" in detail and "known nodes: db1, web1" in detail
    assert "allow_unknown_nodes" in detail
    assert await _count(client, admin) == 0  # nothing written
    ok = await client.post(
        "/api/v1/jobs", json={"command": "uptime", "nodes": ["web1", "db1"]}, headers=admin.headers
    )
    assert ok.status_code == 201, ok.text  # offline but known: accepted
    declared = await client.post(
        "/api/v1/jobs",
        json={"command": "uptime", "nodes": ["later1"], "allow_unknown_nodes": True},
        headers=admin.headers,
    )
    assert declared.status_code == 201, declared.text
    assert declared.json()["node_states"] == {"new": ["later1"]}


async def test_dashboard_refuses_unknown_names(
    client: httpx.AsyncClient, strict: Services, admin: Account
) -> None:
    await add_node(strict, admin.org, "web1")
    csrf = await sign_in(client, admin.email)
    form = {"csrf_token": csrf, "command": "uptime", "target_kind": "nodes", "nodes": "nosuch"}
    r = await client.post("/jobs", data=form)
    assert r.status_code == 422
    assert "no agent has ever registered as &#39;nosuch&#39;" in r.text
    assert "known nodes: web1" in r.text
    assert 'name="allow_unknown_nodes"' in r.text
    allowed = await client.post("/jobs", data={**form, "allow_unknown_nodes": "1"})
    assert allowed.status_code == 303


async def test_chef_keeps_unavailable(
    client: httpx.AsyncClient, strict: Services, admin: Account
) -> None:
    r = await client.post(
        f"/compat/chef/organizations/{admin.org}/pushy/jobs",
        json={"command": "chef-client", "nodes": ["nosuch"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    job = await client.get(r.json()["uri"], headers=admin.headers)
    # Accepted as Chef documents; the dispatcher then marks the node run unavailable.
    assert job.json()["nodes"] == {"new": ["nosuch"]}
