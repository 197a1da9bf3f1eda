"""Store contract, server-side sessions (``web_sessions``): found, touched, switched,
revoked one by one, per user and per organization.

Every test here runs on SQLite and on PostgreSQL (``any_svc``)."""

from __future__ import annotations

import datetime as dt

from jobyard.domain.accounts import Role
from jobyard.service.context import Services

NOW = dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=14)


async def test_sessions_are_found_switched_and_revoked(any_svc: Services) -> None:
    async with any_svc.db.begin() as tx:
        a = await tx.accounts.insert_org("a", "A", NOW)
        b = await tx.accounts.insert_org("b", "B", NOW)
        zoe = await tx.accounts.insert_user("zoe@x.io", "Zoe", "hash1", NOW)
        amy = await tx.accounts.insert_user("amy@x.io", "Amy", "hash2", NOW)
        for org in (a, b):
            await tx.accounts.upsert_membership(org.id, zoe.id, Role.USER, NOW)
        await tx.accounts.upsert_membership(a.id, amy.id, Role.USER, NOW)
        await tx.sessions.insert("s1", zoe.id, a.id, NOW, LATER)
        await tx.sessions.insert("s2", zoe.id, b.id, NOW, LATER)
        await tx.sessions.insert("s3", zoe.id, a.id, NOW, LATER)
        await tx.sessions.insert("amy", amy.id, a.id, NOW, LATER)
    async with any_svc.db.read() as tx:
        one = await tx.sessions.find("s1")
        assert one is not None
        assert (one["user_id"], one["org_id"], one["org_name"]) == (zoe.id, a.id, "a")
        assert (one["created_at"], one["last_seen_at"], one["expires_at"]) == (NOW, NOW, LATER)
        assert one["revoked_at"] is None
        assert await tx.sessions.find("nope") is None
    seen = NOW + dt.timedelta(minutes=5)
    async with any_svc.db.begin() as tx:
        await tx.sessions.touch("s1", seen)
        await tx.sessions.set_org("s1", b.id)
        await tx.sessions.revoke("s3", seen)
        await tx.sessions.revoke("s3", LATER)  # revoking again keeps the first time
    async with any_svc.db.read() as tx:
        one = await tx.sessions.find("s1")
        three = await tx.sessions.find("s3")
    assert one is not None and (one["org_name"], one["last_seen_at"]) == ("b", seen)
    assert three is not None and three["revoked_at"] == seen
    # Per organization, then every remaining one of the user; never another user's.
    async with any_svc.db.begin() as tx:
        assert await tx.sessions.revoke_user(zoe.id, LATER, org_id=b.id) == 2  # s1, s2
        await tx.sessions.insert("s4", zoe.id, a.id, NOW, LATER)
        assert await tx.sessions.revoke_user(zoe.id, LATER) == 1  # s4 (s3 was already)
    async with any_svc.db.read() as tx:
        for sid in ("s1", "s2", "s4"):
            row = await tx.sessions.find(sid)
            assert row is not None and row["revoked_at"] == LATER, sid
        amys = await tx.sessions.find("amy")
    assert amys is not None and amys["revoked_at"] is None
