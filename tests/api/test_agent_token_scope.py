"""Token scopes: an agent token is only an agent.

Every route of the app (native, the five dialects, the dashboard's pages and forms) is
called with an agent token of the *same* organization, its path parameters filled with
that organization's real objects: anything but a refusal (401, 403, 404, 405, 422) fails,
except on the short list of routes an agent uses. The agent token belongs to the
organization's admin (as the README issues them), so a route that let it through would
act with the admin's powers.
"""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest

from tests.api.asgi import asgi_request, kragle_fault
from tests.api.test_tenant_isolation import (
    ROUTES,
    RouteSpec,
    World,
    attack_body,
    dialect_of,
    fingerprint,
    form_body,
    victim_url,
    world,
)

__all__ = ["world"]  # the module's world: two organizations with one object of each kind

# What an agent does: its WebSocket (not an HTTP route), its jobs' input files, who it is,
# and what theeye-agent calls (token, register, config, poll, keep-alive, finish, script).
AGENT_ROUTES = {
    ("GET", "/api/v1/me"),
    ("GET", "/api/v1/files/{file_id}/contents"),
    ("POST", "/compat/theeye/token"),
    ("POST", "/compat/theeye/host/{hostname}"),
    ("POST", "/compat/theeye/{customer}/host/{hostname}"),
    ("GET", "/compat/theeye/{customer}/agent/{hostname}/config"),
    ("PUT", "/compat/theeye/{customer}/agent/{hostname}"),
    ("GET", "/compat/theeye/job"),
    ("GET", "/compat/theeye/{customer}/job"),
    ("PUT", "/compat/theeye/{customer}/job/{job}"),
    ("GET", "/compat/theeye/{customer}/script/{script}/download"),
}
REFUSED = {401, 403, 404, 405, 422}


async def as_agent(world: World, route: RouteSpec) -> httpx.Response:
    tenant = world.tenants["acme"]
    url = victim_url(tenant, route)
    headers = tenant.accounts["agent"].headers
    if dialect_of(route.path) == "web" and route.method != "GET":
        return await asgi_request(
            world.app,
            route.method,
            url,
            headers,
            urlencode(form_body(tenant, route)).encode(),
            content_type="application/x-www-form-urlencoded",
        )
    return await asgi_request(world.app, route.method, url, headers, attack_body(tenant, route))


async def anonymous(world: World, route: RouteSpec) -> int:
    url = victim_url(world.tenants["acme"], route)
    r = await asgi_request(world.app, route.method, url, {}, None)
    return r.status_code


def test_the_agent_routes_exist() -> None:
    known = {(r.method, r.path) for r in ROUTES}
    assert known >= AGENT_ROUTES, sorted(AGENT_ROUTES - known)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_agent_token_reaches_only_agent_routes(world: World) -> None:
    tenant = world.tenants["acme"]
    baseline = await fingerprint(world.svc, tenant)
    problems: list[str] = []
    walked = 0
    for route in ROUTES:
        key = (route.method, route.path)
        r = await as_agent(world, route)
        walked += 1
        where = f"{route.method} {route.path}"
        if kragle_fault(route.path, r):
            continue  # Kragle answers every refusal 500 with {code, msg}, as Kragle does
        if r.status_code >= 500:
            problems.append(f"{where}: {r.status_code} {r.text[:160]}")
            continue
        if key in AGENT_ROUTES or r.status_code in REFUSED:
            continue
        # A public route (health, the sign-in page, a redirect to it) answers the agent
        # as it answers anyone: the token added nothing.
        if r.status_code == await anonymous(world, route):
            continue
        problems.append(f"{where}: answered an agent token {r.status_code} {r.text[:160]}")
        after = await fingerprint(world.svc, tenant)
        if after != baseline:
            changed = sorted(k for k in after if after[k] != baseline.get(k))
            problems.append(f"{where}: and changed {changed}")
            baseline = after
    assert walked > 100, walked
    assert not problems, "an agent token went beyond its scope:\n" + "\n".join(problems)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_agent_token_cannot_touch_its_owners_tokens(world: World) -> None:
    tenant = world.tenants["acme"]
    agent = tenant.accounts["agent"]
    admin = tenant.accounts["admin"]
    # The agent token is the admin's (as the README issues it): the admin's own token is
    # one the admin may revoke, so only the scope stands in the way.
    mine = await asgi_request(world.app, "GET", "/api/v1/tokens", admin.headers, None)
    assert mine.status_code == 200, mine.text
    ids = [t["id"] for t in mine.json() if t["user_id"] == admin.user_id]
    assert ids
    listed = await asgi_request(world.app, "GET", "/api/v1/tokens", agent.headers, None)
    assert listed.status_code == 403, listed.text
    assert "agent" in listed.json()["detail"]
    for token_id in ids:
        r = await asgi_request(
            world.app, "DELETE", f"/api/v1/tokens/{token_id}", agent.headers, None
        )
        assert r.status_code == 403, r.text
    minted = await asgi_request(
        world.app, "POST", "/api/v1/tokens", agent.headers, {"name": "escalate"}
    )
    assert minted.status_code == 403, minted.text
    still = await asgi_request(world.app, "GET", "/api/v1/tokens", admin.headers, None)
    assert still.status_code == 200
    assert all(t["revoked_at"] is None for t in still.json() if t["id"] in ids)
    # It still is an agent: it may say who it is.
    me = await asgi_request(world.app, "GET", "/api/v1/me", agent.headers, None)
    assert me.status_code == 200 and me.json()["role"] == "agent", me.text
