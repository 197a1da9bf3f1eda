"""Credentials, tenancy and roles on the native API."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from jobyard.domain.clock import FakeClock
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.store.schema import api_tokens
from tests.api.conftest import Tenant, snapshot
from tests.conftest import Account, Factory


def basic(user: str) -> str:
    return "Basic " + base64.b64encode(user.encode()).decode()


async def whoami(client: httpx.AsyncClient, **kw: object) -> httpx.Response:
    return await client.get("/api/v1/me", **kw)  # type: ignore[arg-type]


async def test_every_accepted_way_to_send_a_token(
    client: httpx.AsyncClient, admin: Account
) -> None:
    t = admin.token
    for headers, params in [
        ({"Authorization": f"Bearer {t}"}, {}),
        ({"Authorization": f"bearer {t}"}, {}),
        ({"Authorization": f"Token {t}"}, {}),
        ({"Authorization": basic(f"{t}:")}, {}),  # curl -u TOKEN:
        ({"Authorization": basic(t)}, {}),  # the Xplenty Python client: no colon
        ({"Authorization": basic(f":{t}")}, {}),  # token as the password
        ({}, {"access_token": t}),
    ]:
        r = await whoami(client, headers=headers, params=params)
        assert r.status_code == 200, (headers, params, r.text)
        assert r.json()["user"]["email"] == admin.email
        assert r.json()["organization"]["name"] == admin.org
        assert r.json()["role"] == "admin"


def check_401(r: httpx.Response, words: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    assert words in r.json()["detail"], r.json()


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({}, "needs a token"),
        ({"Authorization": "Bearer "}, "needs a token"),
        ({"Authorization": "Bearer jy_not-a-real-token"}, "unknown token"),
        ({"Authorization": "Token nope"}, "unknown token"),
        ({"Authorization": basic("nope:")}, "unknown token"),
        ({"Authorization": "Basic !!!not-base64"}, "not valid base64"),
        ({"Authorization": "Digest abc"}, "unsupported authorization scheme"),
    ],
)
async def test_missing_and_unknown_credentials(
    client: httpx.AsyncClient, headers: dict[str, str], words: str
) -> None:
    check_401(await whoami(client, headers=headers), words)
    check_401(await client.get("/api/v1/jobs", headers=headers), words)
    check_401(await client.post("/api/v1/jobs", json={}, headers=headers), words)


async def test_unknown_access_token(client: httpx.AsyncClient) -> None:
    check_401(await whoami(client, params={"access_token": "jy_nope"}), "unknown token")


async def test_revoked_token(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    issued = await accounts.create_token(svc, admin.org, admin.email, name="short-lived")
    spare = {"Authorization": f"Bearer {issued.secret}"}
    assert (await whoami(client, headers=spare)).status_code == 200
    r = await client.delete(f"/api/v1/tokens/{issued.token.id}", headers=admin.headers)
    assert r.status_code == 204
    check_401(await whoami(client, headers=spare), "revoked")
    check_401(await whoami(client, params={"access_token": issued.secret}), "revoked")
    tokens = (await client.get("/api/v1/tokens", headers=admin.headers)).json()
    revoked = next(t for t in tokens if t["id"] == issued.token.id)
    assert revoked["revoked_at"] is not None
    # The admin's own token still works.
    assert (await whoami(client, headers=admin.headers)).status_code == 200


async def test_expired_token(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    now = dt.datetime.now(dt.UTC)
    issued = await accounts.create_token(
        svc, admin.org, admin.email, expires_at=now + dt.timedelta(hours=1)
    )
    h = {"Authorization": f"Bearer {issued.secret}"}
    assert (await whoami(client, headers=h)).status_code == 200
    svc.clock = FakeClock(now + dt.timedelta(hours=1, seconds=1))
    check_401(await whoami(client, headers=h), "expired")


async def test_a_member_who_left_loses_access(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.delete(f"/api/v1/members/{tenant.user.user_id}", headers=tenant.admin.headers)
    assert r.status_code == 204
    check_401(await whoami(client, headers=tenant.user.headers), "unknown token")


async def test_tokens_are_prefixed_random_and_stored_only_as_hashes(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    secrets = []
    for _ in range(3):
        r = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin.headers)
        assert r.status_code == 201, r.text
        body = r.json()
        secret = body["token"]
        assert secret.startswith("jy_") and body["prefix"] == secret[:10]
        # at least 128 bits: base64url carries 6 bits a character
        assert len(secret) - 3 >= 22
        secrets.append(secret)
    assert len(set(secrets)) == 3
    listed = (await client.get("/api/v1/tokens", headers=admin.headers)).text
    async with svc.db.read() as tx:
        stored = " ".join(
            str(v) for row in (await tx.conn.execute(sa.select(api_tokens))).all() for v in row
        )
    for secret in secrets:
        assert secret not in listed  # shown once, at creation
        assert secret not in stored and secret[3:] not in stored
        assert accounts.hash_token(secret) in stored


async def test_token_roles(client: httpx.AsyncClient, tenant: Tenant) -> None:
    # A user cannot mint a stronger token than their role, nor an agent credential.
    r = await client.post("/api/v1/tokens", json={"role": "admin"}, headers=tenant.user.headers)
    assert r.status_code == 422 and "cannot hold a token" in r.json()["detail"]
    r = await client.post("/api/v1/tokens", json={"role": "agent"}, headers=tenant.user.headers)
    assert r.status_code == 403
    # A narrower token acts with the narrower role.
    r = await client.post("/api/v1/tokens", json={"role": "viewer"}, headers=tenant.user.headers)
    assert r.status_code == 201
    narrow = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await whoami(client, headers=narrow)).json()["role"] == "viewer"
    r = await client.post("/api/v1/jobs", json={"command": "x", "nodes": ["a"]}, headers=narrow)
    assert r.status_code == 403
    # An admin makes an agent credential for a member.
    r = await client.post(
        "/api/v1/tokens",
        json={"role": "agent", "email": tenant.user.email, "name": "web1"},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201 and r.json()["role"] == "agent"
    # A user may not make tokens for someone else.
    r = await client.post(
        "/api/v1/tokens", json={"email": tenant.user2.email}, headers=tenant.user.headers
    )
    assert r.status_code == 403


# -- tenancy: another organization's job answers 404 on every job route

JOB_ROUTES = [
    ("GET", "/api/v1/jobs/{id}", None),
    ("PUT", "/api/v1/jobs/{id}", {"command": "x", "nodes": ["a"]}),
    ("PATCH", "/api/v1/jobs/{id}", {"name": "mine now"}),
    ("DELETE", "/api/v1/jobs/{id}", None),
    ("POST", "/api/v1/jobs/{id}/submit", None),
    ("POST", "/api/v1/jobs/{id}/stop", None),
    ("GET", "/api/v1/jobs/{id}/history", None),
    ("GET", "/api/v1/jobs/{id}/runs", None),
]


async def test_another_organizations_job_is_not_found(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    draft = await client.post(
        "/api/v1/jobs",
        json={"command": "x", "nodes": ["a"], "name": "secret-plan", "draft": True},
        headers=tenant.user.headers,
    )
    live = await client.post(
        "/api/v1/jobs", json={"command": "x", "nodes": ["a"]}, headers=tenant.user.headers
    )
    before = await snapshot(svc)
    for job in (draft.json(), live.json()):
        for method, path, body in JOB_ROUTES:
            r = await client.request(
                method, path.format(id=job["id"]), json=body, headers=tenant.outsider.headers
            )
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            assert "secret-plan" not in r.text
    r = await client.get("/api/v1/jobs/by-name/secret-plan", headers=tenant.outsider.headers)
    assert r.status_code == 404
    r = await client.get("/api/v1/jobs", headers=tenant.outsider.headers)
    assert r.json()["count"] == 0
    assert await snapshot(svc) == before


# -- roles


async def test_viewer_reads_but_does_not_write(client: httpx.AsyncClient, tenant: Tenant) -> None:
    job = (
        await client.post(
            "/api/v1/jobs", json={"command": "x", "nodes": ["a"]}, headers=tenant.user.headers
        )
    ).json()
    v = tenant.viewer.headers
    assert (await client.get("/api/v1/jobs", headers=v)).json()["count"] == 1
    assert (await client.get(f"/api/v1/jobs/{job['id']}", headers=v)).status_code == 200
    assert (await client.get(f"/api/v1/jobs/{job['id']}/history", headers=v)).status_code == 200
    r = await client.post("/api/v1/jobs", json={"command": "x", "nodes": ["a"]}, headers=v)
    assert r.status_code == 403 and "needs the user role" in r.json()["detail"]
    assert (await client.post(f"/api/v1/jobs/{job['id']}/stop", headers=v)).status_code == 403
    assert (await client.delete(f"/api/v1/jobs/{job['id']}", headers=v)).status_code == 403
    r = await client.patch(f"/api/v1/jobs/{job['id']}", json={"name": "n"}, headers=v)
    assert r.status_code == 403


async def test_users_change_their_own_jobs_admins_any(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    body = {"command": "x", "nodes": ["a"]}
    mine = (await client.post("/api/v1/jobs", json=body, headers=tenant.user.headers)).json()
    theirs = (await client.post("/api/v1/jobs", json=body, headers=tenant.user2.headers)).json()
    u = tenant.user.headers
    r = await client.patch(f"/api/v1/jobs/{mine['id']}", json={"name": "ok"}, headers=u)
    assert r.status_code == 200 and r.json()["name"] == "ok"
    for method, path in [
        ("PATCH", "/api/v1/jobs/{}"),
        ("POST", "/api/v1/jobs/{}/stop"),
        ("DELETE", "/api/v1/jobs/{}"),
    ]:
        kw = {"json": {"name": "x"}} if method == "PATCH" else {}
        r = await client.request(method, path.format(theirs["id"]), headers=u, **kw)  # type: ignore[arg-type]
        assert r.status_code == 404, (method, path, r.text)
    # ... but they can read it
    assert (await client.get(f"/api/v1/jobs/{theirs['id']}", headers=u)).status_code == 200
    r = await client.post(f"/api/v1/jobs/{mine['id']}/stop", headers=u)
    assert r.status_code == 200 and r.json()["status"] == "aborted"
    a = tenant.admin.headers
    r = await client.post(f"/api/v1/jobs/{theirs['id']}/stop", headers=a)
    assert r.status_code == 200 and r.json()["status"] == "aborted"
    assert (await client.delete(f"/api/v1/jobs/{theirs['id']}", headers=a)).status_code == 204


async def test_members_and_tokens_admin_parts(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for account in (tenant.viewer, tenant.user):
        h = account.headers
        assert (await client.get("/api/v1/members", headers=h)).status_code == 200
        r = await client.post(
            "/api/v1/members", json={"email": "x@acme.test", "role": "admin"}, headers=h
        )
        assert r.status_code == 403
        r = await client.delete(f"/api/v1/members/{tenant.user2.user_id}", headers=h)
        assert r.status_code == 403
        # only their own tokens are listed
        tokens = (await client.get("/api/v1/tokens", headers=h)).json()
        assert {t["user_id"] for t in tokens} == {account.user_id}
    a = tenant.admin.headers
    all_tokens = (await client.get("/api/v1/tokens", headers=a)).json()
    assert {t["user_id"] for t in all_tokens} >= {tenant.user.user_id, tenant.viewer.user_id}
    r = await client.post(
        "/api/v1/members", json={"email": "New@Acme.test", "role": "user"}, headers=a
    )
    assert r.status_code == 201 and r.json()["email"] == "new@acme.test"
    assert r.json()["role"] == "user"
    r = await client.post(
        "/api/v1/members", json={"email": "new@acme.test", "role": "viewer"}, headers=a
    )
    assert r.json()["role"] == "viewer"  # a second call changes the role
    r = await client.delete(f"/api/v1/members/{tenant.admin.user_id}", headers=a)
    assert r.status_code == 409  # not yourself
    # a user's token is revoked by its owner or an admin, and is invisible to others
    user_tokens = (await client.get("/api/v1/tokens", headers=tenant.user.headers)).json()
    token_id = user_tokens[0]["id"]
    r = await client.delete(f"/api/v1/tokens/{token_id}", headers=tenant.user2.headers)
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/tokens/{token_id}", headers=tenant.outsider.headers)
    assert r.status_code == 404
    r = await client.delete(f"/api/v1/tokens/{token_id}", headers=a)
    assert r.status_code == 204


async def test_concurrent_requests_with_one_token_share_one_lookup(
    svc: Services, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the remembered authentication is missing (or expired) under load, the requests
    in flight with that token wait for one database lookup, not one each."""
    org = await factory.org()
    admin = await factory.account(org)
    accounts.forget_tokens(svc)
    lookups: list[str] = []
    real = accounts._authenticate

    async def counted(svc: Services, key: str) -> Any:
        lookups.append(key)
        return await real(svc, key)

    monkeypatch.setattr(accounts, "_authenticate", counted)
    who = await asyncio.gather(*(accounts.authenticate(svc, admin.token) for _ in range(16)))
    assert len(lookups) == 1
    assert {w.email for w in who} == {admin.email}
    # A revocation forgets the shared lookup too: the next request looks the token up again.
    accounts.forget_tokens(svc)
    await accounts.authenticate(svc, admin.token)
    assert len(lookups) == 2
