"""Membership never hands one organization's admin another organization's account.

Adding an existing user to an organization gives them a role there and nothing else: their
password is theirs. Only an admin of every organization the user belongs to may set it
(through the API or the dashboard's members form)."""

from __future__ import annotations

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Forbidden, Unauthenticated
from jobyard.service import accounts
from jobyard.service.context import Services
from tests.api.conftest import Tenant, snapshot
from tests.web.dashboard import sign_in

OLD = "correct horse"
NEW = "attacker chosen"


async def password_is(svc: Services, email: str, password: str) -> bool:
    try:
        await accounts.login(svc, email, password)
    except Unauthenticated:
        return False
    return True


async def test_an_admin_cannot_reset_the_password_of_another_organizations_user(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    victim = tenant.outsider  # an admin of "rival" only
    before = await snapshot(svc)
    r = await client.post(
        "/api/v1/members",
        json={"email": victim.email, "role": "viewer", "password": NEW},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 403, r.text
    assert "password" in r.json()["detail"]
    assert await password_is(svc, victim.email, OLD)
    assert not await password_is(svc, victim.email, NEW)
    assert await snapshot(svc) == before  # not even the membership was added


async def test_the_members_form_cannot_reset_another_organizations_user(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    victim = tenant.outsider
    csrf = await sign_in(client, tenant.admin.email)
    r = await client.post(
        "/members",
        data={"csrf_token": csrf, "email": victim.email, "role": "admin", "password": NEW},
    )
    assert r.status_code == 403 and "password" in r.text
    assert await password_is(svc, victim.email, OLD)
    async with svc.db.read() as tx:
        assert [o.name for o, _ in await tx.accounts.orgs_of_user(victim.user_id)] == ["rival"]


async def test_adding_an_existing_user_without_a_password_keeps_theirs(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    victim = tenant.outsider
    r = await client.post(
        "/api/v1/members",
        json={"email": victim.email, "role": "viewer", "display_name": "Renamed"},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "viewer"
    assert await password_is(svc, victim.email, OLD)
    async with svc.db.read() as tx:
        user = await tx.accounts.user_by_id(victim.user_id)
    assert user is not None and user.display_name != "Renamed"  # their profile is theirs too


async def test_an_admin_of_every_organization_of_the_user_may_set_the_password(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    # tenant.user belongs to acme only: acme's admin may set the password.
    r = await client.post(
        "/api/v1/members",
        json={"email": tenant.user.email, "role": "user", "password": NEW},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert await password_is(svc, tenant.user.email, NEW)
    # Once the user also belongs to rival, acme's admin alone no longer may ...
    await accounts.create_user(svc, "rival", tenant.user2.email, Role.VIEWER)
    r = await client.post(
        "/api/v1/members",
        json={"email": tenant.user2.email, "role": "user", "password": NEW},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 403, r.text
    assert await password_is(svc, tenant.user2.email, OLD)
    # ... but an admin of both acme and rival may.
    await accounts.create_user(svc, "rival", tenant.admin.email, Role.ADMIN)
    r = await client.post(
        "/api/v1/members",
        json={"email": tenant.user2.email, "role": "user", "password": NEW},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert await password_is(svc, tenant.user2.email, NEW)


async def test_a_user_without_any_organization_has_no_admin_to_reset_them(
    tenant: Tenant, svc: Services
) -> None:
    """Nobody vouches for an account that left every organization: its password stays."""
    who = await accounts.principal_for_user(svc, tenant.admin.user_id, "acme")
    async with svc.db.begin() as tx:
        org = await tx.accounts.org_by_name("rival")
        assert org is not None
        assert await tx.accounts.delete_membership(org.id, tenant.outsider.user_id)
    with pytest.raises(Forbidden):
        await accounts.set_member(svc, who, tenant.outsider.email, Role.VIEWER, password=NEW)
    assert await password_is(svc, tenant.outsider.email, OLD)


async def test_a_new_user_gets_the_password_given(
    client: httpx.AsyncClient, tenant: Tenant, svc: Services
) -> None:
    r = await client.post(
        "/api/v1/members",
        json={"email": "fresh@acme.test", "role": "user", "password": NEW},
        headers=tenant.admin.headers,
    )
    assert r.status_code == 201, r.text
    assert await password_is(svc, "fresh@acme.test", NEW)
