"""Shared fixtures: databases (SQLite and PostgreSQL), services, the ASGI app, factories."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.domain.clock import FakeClock
from jobyard.service import accounts, throttle
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from tests import pg


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[None]:
    """Argon2 with its production cost takes a second per password on a busy machine;
    tests hash many. Verification reads the parameters from each hash, so nothing else
    changes."""
    saved = accounts._hasher
    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    accounts._hasher = saved


@pytest.fixture(autouse=True)
def _unslept_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backed-off attempt (``service/throttle``) waits up to 30 s; tests that guess
    passwords or secrets do not wait it out (the tests of the backoff record the waits)."""

    async def no_wait(seconds: float) -> None:
        await asyncio.sleep(0)

    monkeypatch.setattr(throttle, "_sleep", no_wait)


def _migrate(url: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            await db.migrate()
        finally:
            await db.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    with pg.server() as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is copied from."""
    url = pg.create_database(pg_admin_url)
    _migrate(url)
    try:
        yield url.rpartition("/")[2]
    finally:
        pg.drop_database(pg_admin_url, url)


@pytest.fixture
def pg_url(pg_admin_url: str, pg_template: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database."""
    url = pg.create_database(pg_admin_url, template=pg_template)
    try:
        yield url
    finally:
        pg.drop_database(pg_admin_url, url)


@pytest.fixture
def pg_blank_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database (nothing migrated)."""
    url = pg.create_database(pg_admin_url)
    try:
        yield url
    finally:
        pg.drop_database(pg_admin_url, url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, made once: migrating from scratch takes about a second."""
    path = tmp_path_factory.mktemp("template") / "jobyard.db"
    _migrate(f"sqlite:///{path}")
    return path


def _sqlite_copy(template: Path, directory: Path) -> str:
    path = directory / "jobyard.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """Parametrizes a test over both databases (each fresh and migrated)."""
    if request.param == "sqlite":
        return _sqlite_copy(sqlite_template, tmp_path)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A fresh, migrated SQLite database."""
    return _sqlite_copy(sqlite_template, tmp_path)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        heartbeat_interval=0.2,
        node_ttl=1.0,
        node_grace=0.5,
        voting_timeout=5.0,
        abort_grace=1.0,
        public_url="http://testserver",
        # Most tests name nodes no agent runs; tests of the refusal turn it off.
        allow_unknown_nodes=True,
    )


async def _services(url: str, settings: Settings) -> AsyncIterator[Services]:
    db = Database(url)
    await db.migrate()
    svc = Services(db=db, settings=settings.replace(database_url=url))
    try:
        yield svc
    finally:
        await db.close()


@pytest.fixture
async def svc(sqlite_url: str, settings: Settings) -> AsyncIterator[Services]:
    """Services on SQLite with the system clock."""
    async for s in _services(sqlite_url, settings):
        yield s


@pytest.fixture
async def any_svc(db_url: str, settings: Settings) -> AsyncIterator[Services]:
    """Services on SQLite and on PostgreSQL (parametrized)."""
    async for s in _services(db_url, settings):
        yield s


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@dataclass
class Account:
    """A user with a token in an organization."""

    org: str
    email: str
    token: str
    role: Role
    user_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Factory:
    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self._n = 0

    async def org(self, name: str | None = None) -> str:
        self._n += 1
        name = name or f"org{self._n}"
        await accounts.create_org(self.svc, name)
        return name

    async def account(self, org: str, role: Role = Role.ADMIN, email: str | None = None) -> Account:
        self._n += 1
        email = email or f"{role.value}{self._n}@example.com"
        human = Role.ADMIN if role is Role.AGENT else role
        user = await accounts.create_user(self.svc, org, email, human, password="correct horse")
        issued = await accounts.create_token(
            self.svc, org, email, role=Role.AGENT if role is Role.AGENT else None
        )
        return Account(org, email, issued.secret, role, user.id)


@pytest.fixture
def factory(svc: Services) -> Factory:
    return Factory(svc)


@pytest.fixture
async def client(svc: Services) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the ASGI app in-process (no background loops)."""
    app = create_app(services=svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def admin(factory: Factory) -> Account:
    org = await factory.org()
    return await factory.account(org, Role.ADMIN)
