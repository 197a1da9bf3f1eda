"""The hot reads (api/hot.py) answer exactly as the FastAPI routes they go ahead of."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from jobyard.api import hot
from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service.context import Services
from tests.api.conftest import Tenant, snapshot
from tests.conftest import Factory


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


async def test_hot_reads_answer_as_fastapi_does(
    any_svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = Factory(any_svc)
    org, other = await factory.org("acme"), await factory.org("rival")
    tenant = Tenant(
        org=org,
        viewer=await factory.account(org, Role.VIEWER),
        user=await factory.account(org, Role.USER),
        user2=await factory.account(org, Role.USER),
        admin=await factory.account(org, Role.ADMIN),
        agent=await factory.account(org, Role.AGENT),
        outsider=await factory.account(other, Role.ADMIN),
    )
    taken: list[str] = []
    for name in ("_job", "_list"):
        original = getattr(hot, name)

        def spy(*args: Any, _name: str = name, _original: Any = original) -> Any:
            taken.append(_name)
            return _original(*args)

        monkeypatch.setattr(hot, name, spy)
    fast = create_app(services=any_svc, migrate=False, run_loops=False, hot_reads=True)
    slow = create_app(services=any_svc, migrate=False, run_loops=False, hot_reads=False)
    admin, agent, outsider = tenant.admin.headers, tenant.agent.headers, tenant.outsider.headers
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=fast), base_url="http://t") as f,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=slow), base_url="http://t") as s,
    ):
        ids = []
        for n in range(5):
            made = await s.post(
                "/api/v1/jobs",
                json={"command": "true", "nodes": ["a", "b"], "name": f"j{n}"},
                headers=admin,
            )
            assert made.status_code == 201, made.text
            ids.append(made.json()["id"])
        job = f"/api/v1/jobs/{ids[2]}"
        token = tenant.admin.token
        cases: list[tuple[str, dict[str, str]]] = [
            (job, admin),
            (job, {"Authorization": f"Token {token}"}),
            (job, {"Authorization": _basic(f"{token}:")}),
            (f"{job}?access_token={token}", {}),
            (job, outsider),  # another organization's job: 404
            (job, agent),  # an agent credential: 403
            (job, {"Authorization": "Bearer nope"}),  # 401
            (job, {"Authorization": "Basic %%%"}),  # not base64: 401
            (job, {"Authorization": "Digest x"}),  # unsupported scheme: 401
            (job, {}),  # no token: FastAPI's way, 401
            ("/api/v1/jobs/999999", admin),
            ("/api/v1/jobs/99999999999999999999", admin),  # over 64 bits
            ("/api/v1/jobs/0012", admin),
            ("/api/v1/jobs", admin),
            ("/api/v1/jobs?page=2&page_size=2", admin),
            ("/api/v1/jobs?page_size=2&sort=name&status=voting,new", admin),
            ("/api/v1/jobs?page_size=2&unknown=1", admin),
            ("/api/v1/jobs?page=0", admin),
            ("/api/v1/jobs?page=abc", admin),  # FastAPI judges: 422
            ("/api/v1/jobs?page=1&page=2", admin),  # given twice: FastAPI's way
            ("/api/v1/jobs?status=bogus", admin),
            ("/api/v1/jobs?sort=-nope", admin),
            ("/api/v1/jobs?owner=me&name=j1", admin),
            ("/api/v1/jobs?created_after=yesterday", admin),
            ("/api/v1/jobs?name=%00&search=%00", admin),  # the database refuses: 4xx
            ("/api/v1/jobs?page_size=100000", admin),
            ("/api/v1/jobs", outsider),
            ("/api/v1/jobs", agent),
        ]
        before = await snapshot(any_svc)
        for url, headers in cases:
            a = await f.get(url, headers=headers)
            b = await s.get(url, headers=headers)
            assert a.status_code < 500, (url, a.status_code, a.text)
            assert (a.status_code, a.headers.get("content-type")) == (
                b.status_code,
                b.headers.get("content-type"),
            ), (url, a.text, b.text)
            assert a.json() == b.json(), url
            assert a.headers.get("www-authenticate") == b.headers.get("www-authenticate"), url
        assert await snapshot(any_svc) == before
        # Most of those went the hot way (the ones FastAPI must judge did not).
        assert taken.count("_job") == 8, taken
        assert taken.count("_list") == 12, taken

        # Counted in /metrics under the route's template, as through FastAPI.
        text = (await f.get("/metrics", headers=admin)).text
        assert 'route="/api/v1/jobs/{job_id}",status="200"' in text, text
        assert 'route="/api/v1/jobs",status="200"' in text


async def test_a_dashboard_session_goes_fastapis_way(
    svc: Services, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request with a cookie is the dashboard's: its session middleware reads it."""
    taken: list[Any] = []
    monkeypatch.setattr(hot, "_list", lambda *a: taken.append(a))
    app = create_app(services=svc, migrate=False, run_loops=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.get(
            "/api/v1/jobs", headers={**tenant.admin.headers, "Cookie": "jobyard_session=x"}
        )
    assert r.status_code == 200, r.text
    assert taken == []
