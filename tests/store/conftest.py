"""Fixtures of the store tests that run use cases through ``Services``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.clock import FakeClock
from jobyard.domain.records import Principal
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from tests.conftest import Factory


@pytest.fixture
async def counted(db_url: str, settings: Settings) -> AsyncIterator[Services]:
    """Services that count their statements, as a server that runs the dispatcher."""
    db = Database(db_url, count_statements=True)
    await db.migrate()
    svc = Services(db=db, settings=settings.replace(database_url=db_url), clock=FakeClock())
    svc.runtime.dispatching = True
    try:
        yield svc
    finally:
        await db.close()


async def people(svc: Services) -> tuple[Principal, Principal]:
    """An admin and an agent credential of a new organization."""
    factory = Factory(svc)
    org = await factory.org()
    user = await factory.account(org, Role.ADMIN)
    agent = await factory.account(org, Role.AGENT)
    return (
        await accounts.authenticate(svc, user.token),
        await accounts.authenticate(svc, agent.token),
    )
