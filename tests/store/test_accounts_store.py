"""Store contract, accounts: organizations, users, memberships, tokens.

Every test here runs on SQLite and on PostgreSQL (``any_svc``)."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy.exc

from jobyard.domain.accounts import Role
from jobyard.service.context import Services

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)


async def test_organizations(any_svc: Services) -> None:
    async with any_svc.db.begin() as tx:
        acme = await tx.accounts.insert_org("acme", "Acme Inc.", NOW)
        beta = await tx.accounts.insert_org("beta", "Beta", NOW)
    assert acme.id != beta.id
    assert (acme.name, acme.display_name, acme.created_at) == ("acme", "Acme Inc.", NOW)
    async with any_svc.db.read() as tx:
        assert await tx.accounts.org_by_name("acme") == acme
        assert await tx.accounts.org_by_id(beta.id) == beta
        assert await tx.accounts.org_by_name("ACME") is None
        assert await tx.accounts.org_by_id(10_000) is None
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with any_svc.db.begin() as tx:
            await tx.accounts.insert_org("acme", "again", NOW)


async def test_users_and_memberships(any_svc: Services) -> None:
    async with any_svc.db.begin() as tx:
        a = await tx.accounts.insert_org("a", "A", NOW)
        b = await tx.accounts.insert_org("b", "B", NOW)
        zoe = await tx.accounts.insert_user("zoe@x.io", "Zoe", "hash1", NOW)
        amy = await tx.accounts.insert_user("amy@x.io", "Amy", None, NOW)
        await tx.accounts.upsert_membership(a.id, zoe.id, Role.USER, NOW)
        await tx.accounts.upsert_membership(a.id, amy.id, Role.VIEWER, NOW)
        await tx.accounts.upsert_membership(b.id, zoe.id, Role.ADMIN, NOW)
    async with any_svc.db.read() as tx:
        assert await tx.accounts.user_by_email("zoe@x.io") == zoe
        assert await tx.accounts.user_by_id(amy.id) == amy
        assert await tx.accounts.user_by_email("nobody@x.io") is None
        assert await tx.accounts.role_of(a.id, zoe.id) is Role.USER
        assert await tx.accounts.role_of(b.id, amy.id) is None
        members = await tx.accounts.members(a.id)
        assert [(m.email, m.role) for m in members] == [
            ("amy@x.io", Role.VIEWER),
            ("zoe@x.io", Role.USER),
        ]
        assert [(o.name, r) for o, r in await tx.accounts.orgs_of_user(zoe.id)] == [
            ("a", Role.USER),
            ("b", Role.ADMIN),
        ]
        m = await tx.accounts.member_by_email(b.id, "zoe@x.io")
        assert m is not None and m.user_id == zoe.id and m.role is Role.ADMIN
        assert await tx.accounts.member_by_email(b.id, "amy@x.io") is None
    async with any_svc.db.begin() as tx:
        # upsert replaces the role rather than adding a second membership
        await tx.accounts.upsert_membership(a.id, amy.id, Role.ADMIN, NOW)
        await tx.accounts.set_password(amy.id, "hash2")
        assert await tx.accounts.delete_membership(a.id, zoe.id) is True
        assert await tx.accounts.delete_membership(a.id, zoe.id) is False
    async with any_svc.db.read() as tx:
        assert [(m.email, m.role) for m in await tx.accounts.members(a.id)] == [
            ("amy@x.io", Role.ADMIN)
        ]
        user = await tx.accounts.user_by_id(amy.id)
        assert user is not None and user.password_hash == "hash2"
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with any_svc.db.begin() as tx:
            await tx.accounts.insert_user("zoe@x.io", "Zoe 2", None, NOW)


async def test_tokens(any_svc: Services) -> None:
    later = NOW + dt.timedelta(days=1)
    async with any_svc.db.begin() as tx:
        a = await tx.accounts.insert_org("a", "A", NOW)
        b = await tx.accounts.insert_org("b", "B", NOW)
        zoe = await tx.accounts.insert_user("zoe@x.io", "Zoe", None, NOW)
        amy = await tx.accounts.insert_user("amy@x.io", "Amy", None, NOW)
        await tx.accounts.upsert_membership(a.id, zoe.id, Role.ADMIN, NOW)
        await tx.accounts.upsert_membership(a.id, amy.id, Role.USER, NOW)
        t1 = await tx.accounts.insert_token(a.id, zoe.id, "one", None, "jy_aaaa", "h1", NOW, None)
        t2 = await tx.accounts.insert_token(
            a.id, amy.id, "two", Role.AGENT, "jy_bbbb", "h2", NOW, later
        )
        t3 = await tx.accounts.insert_token(
            a.id, zoe.id, "three", Role.VIEWER, "jy_c", "h3", NOW, None
        )
    assert (t2.role, t2.expires_at, t2.revoked_at, t2.prefix) == ("agent", later, None, "jy_bbbb")
    assert not hasattr(t1, "token_hash")
    async with any_svc.db.read() as tx:
        row = await tx.accounts.principal_row("h2")
        assert row is not None
        assert dict(row) == {
            "token_id": t2.id,
            "token_role": "agent",
            "expires_at": later,
            "revoked_at": None,
            "org_id": a.id,
            "org_name": "a",
            "user_id": amy.id,
            "email": "amy@x.io",
            "display_name": "Amy",
            "member_role": "user",
        }
        assert await tx.accounts.principal_row("nope") is None
        assert [t.id for t in await tx.accounts.tokens_of(a.id, zoe.id)] == [t3.id, t1.id]
        assert [t.id for t in await tx.accounts.tokens_of(a.id, None)] == [t3.id, t2.id, t1.id]
        assert await tx.accounts.tokens_of(b.id, None) == []
        assert await tx.accounts.token_by_id(a.id, t1.id) == t1
        assert await tx.accounts.token_by_id(b.id, t1.id) is None  # another organization
    async with any_svc.db.begin() as tx:
        await tx.accounts.revoke_token(t1.id, later)
        await tx.accounts.revoke_token(t1.id, later + dt.timedelta(hours=1))  # keeps the first
    async with any_svc.db.read() as tx:
        revoked = await tx.accounts.token_by_id(a.id, t1.id)
        assert revoked is not None and revoked.revoked_at == later
        row = await tx.accounts.principal_row("h1")
        assert row is not None and row["revoked_at"] == later
    async with any_svc.db.begin() as tx:
        # A token of someone who left the organization no longer authenticates anyone.
        await tx.accounts.delete_membership(a.id, amy.id)
    async with any_svc.db.read() as tx:
        assert await tx.accounts.principal_row("h2") is None
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        async with any_svc.db.begin() as tx:
            await tx.accounts.insert_token(a.id, zoe.id, "dup", None, "jy_x", "h3", NOW, None)
