"""Services on SQLite and PostgreSQL for the secrets tests; PostgreSQL with a configured key
(a server on PostgreSQL makes no key of its own)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from jobyard.api.app import create_app
from jobyard.service.context import Services
from jobyard.service.secrets import new_key
from jobyard.settings import Settings
from jobyard.store import Database
from tests.conftest import Factory


@pytest.fixture
async def ssvc(db_url: str, settings: Settings) -> AsyncIterator[Services]:
    key = new_key() if db_url.startswith("postgresql") else ""
    db = Database(db_url)
    svc = Services(db=db, settings=settings.replace(database_url=db_url, secret_key=key))
    try:
        yield svc
    finally:
        await db.close()


@pytest.fixture
def sfactory(ssvc: Services) -> Factory:
    return Factory(ssvc)


@pytest.fixture
async def sclient(ssvc: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services=ssvc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
