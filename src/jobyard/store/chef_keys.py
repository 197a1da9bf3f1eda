"""Chef identities (name → jobyard user, public key) of each organization."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.records import ChefKey
from jobyard.store.chef_schema import chef_keys
from jobyard.store.rows import record
from jobyard.store.schema import users

_cols = [*chef_keys.c, users.c.email, users.c.display_name]


class ChefKeysRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    def _select(self) -> sa.Select[tuple[object, ...]]:
        return sa.select(*_cols).join(users, users.c.id == chef_keys.c.user_id)

    async def insert(
        self,
        org_id: int,
        user_id: int,
        name: str,
        role: str | None,
        public_key: str,
        now: dt.datetime,
    ) -> int:
        """Register a name; the caller checked it is free in the organization."""
        res = await self.conn.execute(
            chef_keys.insert()
            .values(
                org_id=org_id,
                user_id=user_id,
                name=name,
                role=role,
                public_key=public_key,
                created_at=now,
            )
            .returning(chef_keys.c.id)
        )
        return int(res.scalar_one())

    async def by_name(self, org_id: int, name: str) -> ChefKey | None:
        """The identity a signed request names (X-Ops-UserId), with its user's email."""
        q = self._select().where(chef_keys.c.org_id == org_id, chef_keys.c.name == name)
        return record(ChefKey, (await self.conn.execute(q)).mappings().first())

    async def of_org(self, org_id: int) -> list[ChefKey]:
        """Every identity of an organization, by name."""
        q = self._select().where(chef_keys.c.org_id == org_id).order_by(chef_keys.c.name)
        return [ChefKey(**row) for row in (await self.conn.execute(q)).mappings()]

    async def delete(self, org_id: int, name: str) -> bool:
        res = await self.conn.execute(
            chef_keys.delete().where(chef_keys.c.org_id == org_id, chef_keys.c.name == name)
        )
        return bool(res.rowcount)
