"""Organizations, users, memberships and API tokens."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobyard.domain.accounts import Role
from jobyard.domain.records import Member, Organization, Token, User
from jobyard.store.rows import record, records
from jobyard.store.schema import api_tokens, memberships, organizations, users


class AccountsRepo:
    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    # -- organizations
    async def insert_org(self, name: str, display_name: str, now: dt.datetime) -> Organization:
        """Create an organization; the caller checked the name is free."""
        row = (
            (
                await self.conn.execute(
                    organizations.insert()
                    .values(name=name, display_name=display_name, created_at=now)
                    .returning(*organizations.c)
                )
            )
            .mappings()
            .one()
        )
        return Organization(**row)

    async def org_by_name(self, name: str) -> Organization | None:
        """Look an organization up by its URL name."""
        q = organizations.select().where(organizations.c.name == name)
        return record(Organization, (await self.conn.execute(q)).mappings().first())

    async def org_by_id(self, org_id: int) -> Organization | None:
        q = organizations.select().where(organizations.c.id == org_id)
        return record(Organization, (await self.conn.execute(q)).mappings().first())

    async def orgs_of_user(self, user_id: int) -> list[tuple[Organization, Role]]:
        """Every organization a user belongs to, with the role there, by name."""
        q = (
            sa.select(organizations, memberships.c.role)
            .join(memberships, memberships.c.org_id == organizations.c.id)
            .where(memberships.c.user_id == user_id)
            .order_by(organizations.c.name)
        )
        out = []
        for row in (await self.conn.execute(q)).mappings():
            data = dict(row)
            role = Role(data.pop("role"))
            out.append((Organization(**data), role))
        return out

    # -- users
    async def insert_user(
        self, email: str, display_name: str, password_hash: str | None, now: dt.datetime
    ) -> User:
        row = (
            (
                await self.conn.execute(
                    users.insert()
                    .values(
                        email=email,
                        display_name=display_name,
                        password_hash=password_hash,
                        created_at=now,
                    )
                    .returning(*users.c)
                )
            )
            .mappings()
            .one()
        )
        return User(**row)

    async def user_by_email(self, email: str) -> User | None:
        q = users.select().where(users.c.email == email)
        return record(User, (await self.conn.execute(q)).mappings().first())

    async def user_by_id(self, user_id: int) -> User | None:
        q = users.select().where(users.c.id == user_id)
        return record(User, (await self.conn.execute(q)).mappings().first())

    async def set_password(self, user_id: int, password_hash: str) -> None:
        await self.conn.execute(
            users.update().where(users.c.id == user_id).values(password_hash=password_hash)
        )

    # -- memberships
    async def upsert_membership(
        self, org_id: int, user_id: int, role: Role, now: dt.datetime
    ) -> None:
        """Give a user a role in an organization, replacing any previous role."""
        updated = await self.conn.execute(
            memberships.update()
            .where(memberships.c.org_id == org_id, memberships.c.user_id == user_id)
            .values(role=role.value)
        )
        if updated.rowcount == 0:
            await self.conn.execute(
                memberships.insert().values(
                    org_id=org_id, user_id=user_id, role=role.value, created_at=now
                )
            )

    async def delete_membership(self, org_id: int, user_id: int) -> bool:
        res = await self.conn.execute(
            memberships.delete().where(
                memberships.c.org_id == org_id, memberships.c.user_id == user_id
            )
        )
        return bool(res.rowcount)

    async def role_of(self, org_id: int, user_id: int) -> Role | None:
        q = sa.select(memberships.c.role).where(
            memberships.c.org_id == org_id, memberships.c.user_id == user_id
        )
        value = (await self.conn.execute(q)).scalar()
        return None if value is None else Role(value)

    async def members(self, org_id: int) -> list[Member]:
        """The members of an organization, by email."""
        return await self.members_where(org_id, sa.true())

    async def member_by_email(self, org_id: int, email: str) -> Member | None:
        for m in await self.members_where(org_id, users.c.email == email):
            return m
        return None

    async def members_where(self, org_id: int, cond: sa.ColumnElement[bool]) -> list[Member]:
        q = (
            sa.select(
                users.c.id.label("user_id"),
                users.c.email,
                users.c.display_name,
                memberships.c.role,
                memberships.c.created_at,
            )
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.org_id == org_id, cond)
            .order_by(users.c.email)
        )
        return [
            Member(**{**row, "role": Role(row["role"])})
            for row in (await self.conn.execute(q)).mappings()
        ]

    # -- tokens
    async def insert_token(
        self,
        org_id: int,
        user_id: int,
        name: str,
        role: Role | None,
        prefix: str,
        token_hash: str,
        now: dt.datetime,
        expires_at: dt.datetime | None,
    ) -> Token:
        row = (
            (
                await self.conn.execute(
                    api_tokens.insert()
                    .values(
                        org_id=org_id,
                        user_id=user_id,
                        name=name,
                        role=role.value if role else None,
                        prefix=prefix,
                        token_hash=token_hash,
                        created_at=now,
                        expires_at=expires_at,
                    )
                    .returning(*_token_cols)
                )
            )
            .mappings()
            .one()
        )
        return Token(**row)

    async def principal_row(self, token_hash: str) -> sa.RowMapping | None:
        """Everything needed to authenticate a request, in one query."""
        q = (
            sa.select(
                api_tokens.c.id.label("token_id"),
                api_tokens.c.role.label("token_role"),
                api_tokens.c.expires_at,
                api_tokens.c.revoked_at,
                organizations.c.id.label("org_id"),
                organizations.c.name.label("org_name"),
                users.c.id.label("user_id"),
                users.c.email,
                users.c.display_name,
                memberships.c.role.label("member_role"),
            )
            .select_from(api_tokens)
            .join(organizations, organizations.c.id == api_tokens.c.org_id)
            .join(users, users.c.id == api_tokens.c.user_id)
            .join(
                memberships,
                sa.and_(
                    memberships.c.org_id == api_tokens.c.org_id,
                    memberships.c.user_id == api_tokens.c.user_id,
                ),
            )
            .where(api_tokens.c.token_hash == token_hash)
        )
        return (await self.conn.execute(q)).mappings().first()

    async def tokens_of(self, org_id: int, user_id: int | None) -> list[Token]:
        """Tokens of one user (or of everyone when user_id is None), newest first."""
        q = sa.select(*_token_cols).where(api_tokens.c.org_id == org_id)
        if user_id is not None:
            q = q.where(api_tokens.c.user_id == user_id)
        q = q.order_by(api_tokens.c.id.desc())
        return records(Token, (await self.conn.execute(q)).mappings())

    async def token_by_id(self, org_id: int, token_id: int) -> Token | None:
        q = sa.select(*_token_cols).where(
            api_tokens.c.org_id == org_id, api_tokens.c.id == token_id
        )
        return record(Token, (await self.conn.execute(q)).mappings().first())

    async def revoke_token(self, token_id: int, now: dt.datetime) -> None:
        await self.conn.execute(
            api_tokens.update()
            .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


_token_cols = [c for c in api_tokens.c if c.name != "token_hash"]
