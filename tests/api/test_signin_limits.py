"""Sign-in and trigger-secret limits: forwarded headers only from trusted proxies, a
per-account backoff that still lets the right password in, Kragle's 429, argon2 off the
event loop and a dummy check for unknown emails (issue: rate limits)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service import accounts
from jobyard.service.context import Services
from tests.conftest import Factory

RIGHT = "correct horse"


def _client(svc: Services, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    app = create_app(services=svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def proxied(any_svc: Services) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """The app behind a trusted proxy at 127.0.0.1 (SQLite and PostgreSQL)."""
    svc = Services(db=any_svc.db, settings=any_svc.settings.replace(trusted_proxies="127.0.0.1"))
    async with _client(svc) as c:
        yield svc, c


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits, recorded instead of slept."""
    from jobyard.service import throttle

    got: list[float] = []

    async def record(seconds: float) -> None:
        got.append(seconds)

    monkeypatch.setattr(throttle, "_sleep", record)
    return got


async def _authenticate(
    c: httpx.AsyncClient, email: str, password: str, via: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": via} if via else {}
    return await c.post(
        "/compat/kragle/authenticate",
        json={"email": email, "password": password},
        headers=headers,
    )


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    svc: Services, factory: Factory
) -> None:
    org = await factory.org("acme")
    admin = await factory.account(org, Role.ADMIN, "admin@acme.test")
    async with _client(svc) as c:  # no trusted proxies: the header is the client's word
        for n in range(10):
            r = await _authenticate(c, admin.email, "guess", via=f"198.51.100.{n}")
            assert r.status_code == 500 and r.json()["code"] == 3
        r = await _authenticate(c, admin.email, "guess", via="198.51.100.99")
        assert r.status_code == 429, r.text


async def test_a_trusted_proxy_forwards_each_clients_own_address(
    proxied: tuple[Services, httpx.AsyncClient], waits: list[float]
) -> None:
    svc, c = proxied
    factory = Factory(svc)
    admin = await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    for _ in range(10):
        r = await _authenticate(c, admin.email, "guess", via="203.0.113.7")
        assert r.status_code == 500
    limited = await _authenticate(c, admin.email, RIGHT, via="203.0.113.7")
    assert limited.status_code == 429  # the guessing address is stopped ...
    other = await _authenticate(c, admin.email, RIGHT, via="203.0.113.8")
    assert other.status_code == 200, other.text  # ... not everyone behind the proxy


async def test_guesses_from_many_addresses_slow_the_account_but_the_right_password_works(
    proxied: tuple[Services, httpx.AsyncClient], waits: list[float]
) -> None:
    svc, c = proxied
    factory = Factory(svc)
    admin = await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    for n in range(12):
        r = await _authenticate(c, admin.email, "guess", via=f"192.0.2.{n}")
        assert r.status_code == 500 and r.json()["code"] == 3
    assert waits and waits == sorted(waits) and waits[-1] > waits[0]  # doubling per failure
    waited = len(waits)
    ok = await _authenticate(c, admin.email.upper(), RIGHT, via="192.0.2.200")
    assert ok.status_code == 200, ok.text
    assert len(waits) == waited + 1  # slowed, not refused
    again = await _authenticate(c, admin.email, RIGHT, via="192.0.2.201")
    assert again.status_code == 200 and len(waits) == waited + 1  # a success resets it


async def test_dashboard_sign_in_is_backed_off_per_account(
    proxied: tuple[Services, httpx.AsyncClient], waits: list[float]
) -> None:
    svc, c = proxied
    factory = Factory(svc)
    admin = await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    form = await c.get("/login")
    token = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    for n in range(8):
        r = await c.post(
            "/login",
            data={"email": admin.email, "password": "guess", "csrf_token": token},
            headers={"X-Forwarded-For": f"192.0.2.{n}"},
        )
        assert r.status_code == 401
    assert waits
    ok = await c.post(
        "/login",
        data={"email": admin.email, "password": RIGHT, "csrf_token": token},
        headers={"X-Forwarded-For": "192.0.2.100"},
    )
    assert ok.status_code == 303, ok.text


async def test_kragle_sign_in_limit_answers_429_in_kragles_shape(
    client: httpx.AsyncClient, factory: Factory
) -> None:
    admin = await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    for _ in range(10):
        await _authenticate(client, admin.email, "guess")
    r = await _authenticate(client, admin.email, "guess")
    assert r.status_code == 429
    body = r.json()
    assert body["code"] == 3 and "too many failed sign-ins" in body["msg"]
    assert int(r.headers["Retry-After"]) >= 1


async def test_unknown_email_is_checked_against_a_dummy_hash(
    client: httpx.AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    checked: list[str | None] = []
    real = accounts.verify_password

    def spy(stored: str | None, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(accounts, "verify_password", spy)
    r = await _authenticate(client, "nobody@acme.test", "guess")
    assert r.status_code == 500 and r.json()["code"] == 3
    assert len(checked) == 1 and checked[0] and checked[0].startswith("$argon2")
    r = await _authenticate(client, "admin@acme.test", "guess")
    assert len(checked) == 2  # an existing account: the same one check


async def test_password_check_runs_off_the_event_loop(
    any_svc: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = Factory(any_svc)
    admin = await factory.account(await factory.org("acme"), Role.ADMIN, "admin@acme.test")
    entered = threading.Event()
    release = threading.Event()
    threads: list[int] = []
    real = accounts.verify_password

    def blocking(stored: str | None, password: str) -> bool:
        threads.append(threading.get_ident())
        entered.set()
        release.wait(timeout=10)  # on the loop, this would stall every other request
        return real(stored, password)

    monkeypatch.setattr(accounts, "verify_password", blocking)
    async with _client(any_svc) as c:
        sign_in = asyncio.create_task(_authenticate(c, admin.email, RIGHT))
        for _ in range(3000):
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert entered.is_set()
        health = await c.get("/healthz")  # served while the password check is blocked
        assert health.status_code == 200 and not release.is_set()
        release.set()
        assert (await sign_in).status_code == 200
    assert threads and threading.get_ident() not in threads


def test_a_bad_trusted_proxy_entry_is_refused_with_its_name() -> None:
    from jobyard.settings import Settings

    assert Settings(trusted_proxies="10.0.0.1, 10.1.0.0/16").trusted_proxy_list == [
        "10.0.0.1",
        "10.1.0.0/16",
    ]
    with pytest.raises(ValueError, match=r"'proxy\.local' is not an IP address"):
        Settings(trusted_proxies="10.0.0.1,proxy.local")
