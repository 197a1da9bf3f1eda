"""Sessions live on the server: a copied cookie stops working at sign-out, on a password
change and on removal from the organization (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.store import schema
from tests.conftest import Account, Factory
from tests.web.dashboard import csrf_of, sign_in

COOKIE = "jobyard_session"


@pytest.fixture
async def app_client(any_svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=any_svc, migrate=False, run_loops=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as c:
        yield c


@pytest.fixture
async def people(any_svc: Services) -> tuple[Account, Account]:
    factory = Factory(any_svc)
    org = await factory.org("acme")
    return (
        await factory.account(org, Role.ADMIN, "admin@acme.test"),
        await factory.account(org, Role.USER, "user@acme.test"),
    )


async def _copied(c: httpx.AsyncClient, email: str, password: str = "correct horse") -> str:
    await sign_in(c, email, password)
    cookie = c.cookies.get(COOKIE)
    assert cookie
    return cookie


async def _works(app_client: httpx.AsyncClient, cookie: str, name: str = COOKIE) -> bool:
    """Whether a stranger holding a copy of ``cookie`` gets the dashboard and the API."""
    async with httpx.AsyncClient(
        transport=app_client._transport, base_url="http://testserver", cookies={name: cookie}
    ) as stranger:
        page = await stranger.get("/jobs")
        api = await stranger.get("/api/v1/jobs")
    assert page.status_code in (200, 303) and api.status_code in (200, 401), (page, api)
    return page.status_code == 200 and api.status_code == 200


async def _kragle_works(app_client: httpx.AsyncClient, cookie: str) -> bool:
    async with httpx.AsyncClient(
        transport=app_client._transport,
        base_url="http://testserver",
        cookies={"kragle_session": cookie},
    ) as stranger:
        r = await stranger.get("/compat/kragle/blockstacks")
    assert r.status_code in (200, 500), r.text
    return r.status_code == 200


async def test_sign_out_ends_every_copy_of_the_cookie(
    any_svc: Services, app_client: httpx.AsyncClient, people: tuple[Account, Account]
) -> None:
    admin, _ = people
    cookie = await _copied(app_client, admin.email)
    assert await _works(app_client, cookie)
    async with any_svc.db.read() as tx:
        row = (
            (await tx.conn.execute(sa.select(schema.web_sessions))).mappings().one()
        )  # one row, found by the id's hash: the id itself is not stored
    sid = cookie.split(".")[0]
    assert row["user_id"] == admin.user_id and row["revoked_at"] is None
    assert row["id_hash"] != sid and len(row["id_hash"]) == 64
    page = await app_client.get("/jobs")
    out = await app_client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 303
    assert not await _works(app_client, cookie)
    async with any_svc.db.read() as tx:
        revoked = (await tx.conn.execute(sa.select(schema.web_sessions.c.revoked_at))).scalar_one()
    assert revoked is not None


async def test_a_password_change_ends_the_users_sessions(
    any_svc: Services, app_client: httpx.AsyncClient, people: tuple[Account, Account]
) -> None:
    admin, user = people
    cookie = await _copied(app_client, user.email)
    app_client.cookies.clear()
    theirs = await _copied(app_client, admin.email)
    await accounts.create_user(any_svc, "acme", user.email, Role.USER, password="a new secret")
    assert not await _works(app_client, cookie)
    assert await _works(app_client, theirs)  # only the changed account's sessions end
    app_client.cookies.clear()
    assert await _works(app_client, await _copied(app_client, user.email, "a new secret"))


async def test_removal_from_the_organization_ends_the_session_for_good(
    any_svc: Services, app_client: httpx.AsyncClient, people: tuple[Account, Account]
) -> None:
    admin, user = people
    cookie = await _copied(app_client, user.email)
    r = await app_client.delete(f"/api/v1/members/{user.user_id}", headers=admin.headers)
    assert r.status_code in (200, 204), r.text
    assert not await _works(app_client, cookie)
    r = await app_client.post(
        "/api/v1/members", json={"email": user.email, "role": "user"}, headers=admin.headers
    )
    assert r.status_code in (200, 201), r.text
    assert not await _works(app_client, cookie)  # re-adding does not revive the old one


async def test_kragle_log_in_cookie_ends_on_password_change(
    any_svc: Services, app_client: httpx.AsyncClient, people: tuple[Account, Account]
) -> None:
    _, user = people
    r = await app_client.post(
        "/compat/kragle/authenticate", json={"email": user.email, "password": "correct horse"}
    )
    assert r.status_code == 200, r.text
    cookie = r.cookies.get("kragle_session")
    assert cookie
    assert await _kragle_works(app_client, cookie)
    await accounts.create_user(any_svc, "acme", user.email, Role.USER, password="a new secret")
    assert not await _kragle_works(app_client, cookie)
