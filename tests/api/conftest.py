"""Fixtures for the HTTP tests: an organization with one account per role, an outsider,
and a snapshot of what the database holds (to prove refused requests change nothing)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from jobyard.domain.accounts import Role
from jobyard.service.context import Services
from jobyard.store.tables import metadata
from tests.conftest import Account, Factory


@dataclass
class Tenant:
    """One organization with a viewer, two users, an admin and an agent credential,
    and an admin of another organization (the outsider)."""

    org: str
    viewer: Account
    user: Account
    user2: Account
    admin: Account
    agent: Account
    outsider: Account

    def by_role(self, name: str) -> Account:
        account: Account = getattr(self, name)
        return account


@pytest.fixture
async def tenant(factory: Factory) -> Tenant:
    org = await factory.org("acme")
    other = await factory.org("rival")
    return Tenant(
        org=org,
        viewer=await factory.account(org, Role.VIEWER, "viewer@acme.test"),
        user=await factory.account(org, Role.USER, "user@acme.test"),
        user2=await factory.account(org, Role.USER, "user2@acme.test"),
        admin=await factory.account(org, Role.ADMIN, "admin@acme.test"),
        agent=await factory.account(org, Role.AGENT, "agent@acme.test"),
        outsider=await factory.account(other, Role.ADMIN, "admin@rival.test"),
    )


async def snapshot(svc: Services) -> dict[str, Any]:
    """Row counts of every table, plus the newest row id of each: equal snapshots mean
    nothing was written."""
    out: dict[str, Any] = {}
    async with svc.db.read() as tx:
        for table in metadata.sorted_tables:
            count = (await tx.conn.execute(sa.select(sa.func.count()).select_from(table))).scalar()
            out[table.name] = count
            for column in ("updated_at", "revoked_at"):
                if column in table.c:
                    newest = (
                        await tx.conn.execute(sa.select(sa.func.max(table.c[column])))
                    ).scalar()
                    out[f"{table.name}.{column}"] = newest
    return out
