"""Numbers the database cannot hold are refused before anything is written.

An integer over 64 bits inside a JSON column (a job's target ``count``, a task argument's
``default``) used to be saved, answer 500, and then break every list holding the row. Each
case here runs on SQLite and PostgreSQL: the request answers 4xx, nothing is written, and
the lists still answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service.context import Services
from jobyard.store.schema import events, jobs
from tests.api.conftest import snapshot
from tests.conftest import Account, Factory
from tests.web.dashboard import sign_in

HUGE = 10**30
JSON_HEADERS = {"Content-Type": "application/json"}
TASK = {"name": "t", "command": "true", "target": {"nodes": ["web1"]}}


@pytest.fixture
async def admin_on(any_svc: Services) -> Account:
    factory = Factory(any_svc)
    return await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")


@pytest.fixture
async def http(any_svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=any_svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def lists_still_answer(client: httpx.AsyncClient, admin: Account) -> None:
    for url in ("/api/v1/jobs", "/api/v1/tasks", "/compat/rescale/api/v2/jobs/"):
        r = await client.get(url, headers=admin.headers)
        assert r.status_code == 200, (url, r.text)


CASES: list[tuple[str, str, Any]] = [
    ("POST", "/api/v1/jobs", {"command": "true", "tags": ["x"], "count": HUGE, "draft": True}),
    ("POST", "/api/v1/jobs", {"command": "true", "tags": ["x"], "count": 2**63, "draft": True}),
    (
        "POST",
        "/api/v1/jobs",
        {"command": "true", "target": {"tags": ["x"], "count": -(2**63) - 1}, "draft": True},
    ),
    ("POST", "/api/v1/tasks", {**TASK, "arguments": [{"name": "x", "default": HUGE}]}),
    (
        "POST",
        "/api/v1/tasks",
        {**TASK, "arguments": [{"name": "x", "type": "number", "default": [{"deep": HUGE}]}]},
    ),
    ("POST", "/api/v1/tasks", {**TASK, "retry": {"attempts": HUGE}}),
    ("POST", "/api/v1/tasks", {**TASK, "run_timeout": HUGE}),
    ("POST", "/api/v1/clusters", {"name": "c", "nodes": HUGE}),
    # Rescale's slots as a float: orjson reads 1e30 as a float that is a whole number.
    (
        "POST",
        "/compat/rescale/api/v2/jobs/",
        {"name": "r", "jobanalyses": [{"command": "true", "hardware": {"slots": 1e30}}]},
    ),
    (
        "POST",
        "/compat/chef/organizations/acme/pushy/jobs",
        {"command": "true", "nodes": ["web1"], "quorum": 2**64 - 1},
    ),
]


@pytest.mark.parametrize(("method", "url", "body"), CASES, ids=[str(c[2])[:60] for c in CASES])
async def test_an_integer_over_64_bits_is_refused_before_anything_is_written(
    any_svc: Services, admin_on: Account, http: httpx.AsyncClient, method: str, url: str, body: Any
) -> None:
    before = await snapshot(any_svc)
    r = await http.request(method, url, json=body, headers=admin_on.headers)
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert await snapshot(any_svc) == before
    await lists_still_answer(http, admin_on)


async def test_the_largest_64_bit_integer_is_kept(
    admin_on: Account, http: httpx.AsyncClient
) -> None:
    body = {**TASK, "arguments": [{"name": "x", "default": 2**63 - 1}], "retry": {"attempts": 2}}
    r = await http.post("/api/v1/tasks", json=body, headers=admin_on.headers)
    assert r.status_code == 201, r.text
    listed = (await http.get("/api/v1/tasks", headers=admin_on.headers)).json()
    assert listed["results"][0]["arguments"][0]["default"] in (2**63 - 1, str(2**63 - 1))


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e999"])
async def test_numbers_that_are_not_finite_are_refused(
    any_svc: Services, admin_on: Account, http: httpx.AsyncClient, literal: str
) -> None:
    before = await snapshot(any_svc)
    raw = '{"name": "t", "command": "true", "target": {"nodes": ["w"]}, "retry": {"backoff": %s}}'
    r = await http.post(
        "/api/v1/tasks", content=raw % literal, headers={**admin_on.headers, **JSON_HEADERS}
    )
    assert r.status_code == 422, r.text
    assert await snapshot(any_svc) == before
    await lists_still_answer(http, admin_on)


async def test_task_arguments_when_running_a_task(
    any_svc: Services, admin_on: Account, http: httpx.AsyncClient
) -> None:
    body = {**TASK, "arguments": [{"name": "x", "required": False}]}
    task = (await http.post("/api/v1/tasks", json=body, headers=admin_on.headers)).json()
    before = await snapshot(any_svc)
    r = await http.post(
        f"/api/v1/tasks/{task['id']}/run",
        json={"arguments": {"x": {"n": HUGE}}},
        headers=admin_on.headers,
    )
    assert r.status_code == 422, r.text
    assert "out of range" in r.json()["detail"]
    assert await snapshot(any_svc) == before


async def test_the_dashboard_task_form_refuses_a_huge_default(
    any_svc: Services, admin_on: Account, http: httpx.AsyncClient
) -> None:
    csrf = await sign_in(http, admin_on.email)
    before = await snapshot(any_svc)
    r = await http.post(
        "/tasks",
        data={
            "csrf_token": csrf,
            "name": "t",
            "type": "script",
            "command": "true",
            "target_kind": "nodes",
            "nodes": "web1",
            "arguments": f'[{{"name": "x", "default": {HUGE}}}]',
        },
    )
    assert r.status_code == 422, r.text
    assert "out of range" in r.text, r.text[r.text.find("did not work") :][:300]
    assert await snapshot(any_svc) == before


async def test_a_transaction_that_fails_leaves_no_row(any_svc: Services, admin_on: Account) -> None:
    """The last line of defence: a JSON value no check caught fails its own write, and the
    transaction's earlier writes are rolled back with it."""
    before = await snapshot(any_svc)
    async with any_svc.db.read() as tx:
        org = await tx.accounts.org_by_name("acme")
    assert org is not None
    with pytest.raises(sa.exc.StatementError):
        async with any_svc.db.begin() as tx:
            now = any_svc.clock.now()
            await tx.conn.execute(
                events.insert().values(
                    org_id=org.id, kind="job", subject_id=1, type="job.created", created_at=now
                )
            )
            await tx.conn.execute(
                jobs.insert().values(
                    org_id=org.id,
                    command="true",
                    target={"count": HUGE},
                    quorum="100%",
                    env={},
                    meta={},
                    status="draft",
                    created_at=now,
                    updated_at=now,
                )
            )
    assert await snapshot(any_svc) == before
