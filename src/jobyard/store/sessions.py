"""Server-side sessions (``web_sessions``), found by the SHA-256 of the cookie's id."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.store.schema import organizations, web_sessions


class SessionsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def insert(
        self, id_hash: str, user_id: int, org_id: int, now: dt.datetime, expires_at: dt.datetime
    ) -> None:
        await self.conn.execute(
            web_sessions.insert().values(
                id_hash=id_hash,
                user_id=user_id,
                org_id=org_id,
                created_at=now,
                last_seen_at=now,
                expires_at=expires_at,
            )
        )

    async def find(self, id_hash: str) -> dict[str, Any] | None:
        """The session's row with its organization's name, revoked or expired ones too."""
        q = (
            sa.select(web_sessions, organizations.c.name.label("org_name"))
            .join(organizations, organizations.c.id == web_sessions.c.org_id)
            .where(web_sessions.c.id_hash == id_hash)
        )
        row = (await self.conn.execute(q)).mappings().first()
        return dict(row) if row is not None else None

    async def touch(self, id_hash: str, now: dt.datetime) -> None:
        await self.conn.execute(
            web_sessions.update().where(web_sessions.c.id_hash == id_hash).values(last_seen_at=now)
        )

    async def set_org(self, id_hash: str, org_id: int) -> None:
        await self.conn.execute(
            web_sessions.update().where(web_sessions.c.id_hash == id_hash).values(org_id=org_id)
        )

    async def revoke(self, id_hash: str, now: dt.datetime) -> None:
        await self.conn.execute(
            web_sessions.update()
            .where(web_sessions.c.id_hash == id_hash, web_sessions.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def revoke_user(self, user_id: int, now: dt.datetime, org_id: int | None = None) -> int:
        """Revoke the user's live sessions (those in ``org_id`` only, when given)."""
        q = web_sessions.update().where(
            web_sessions.c.user_id == user_id, web_sessions.c.revoked_at.is_(None)
        )
        if org_id is not None:
            q = q.where(web_sessions.c.org_id == org_id)
        result = await self.conn.execute(q.values(revoked_at=now))
        return int(result.rowcount or 0)
