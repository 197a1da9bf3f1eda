"""OpenID Connect sign-in against a real provider process (``oidc-provider-mock``), driven
with httpx: the dashboard through the ASGI app, the provider over loopback HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from jobyard.domain.accounts import Role
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.store.tables import metadata
from tests.conftest import Factory
from tests.e2e.procs import free_port
from tests.web.dashboard import csrf_of
from tests.web.provider import Provider

CLIENT_ID = "jobyard-dashboard"
SECRET = "client-secret-9d2c"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with Provider(tmp_path_factory.mktemp("oidc")) as p:
        yield p


def configure(svc: Services, issuer: str, **changes: Any) -> None:
    """Point the server at ``issuer`` (settings as ``JOBYARD_OIDC_*`` would give them)."""
    svc.settings = svc.settings.replace(
        oidc_issuer=issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=SECRET,
        oidc_provider_name="Mock",
        **changes,
    )
    svc.runtime.oidc = None  # read again on first use


async def go_to_provider(client: httpx.AsyncClient, provider: Provider, next: str = "") -> str:
    """Start a sign-in; the provider's authorization URL the browser is sent to."""
    started = await client.get("/login/oidc", params={"next": next} if next else None)
    assert started.status_code == 303, started.text
    location = started.headers["location"]
    assert location.startswith(f"{provider.url}/oauth2/authorize?")
    return location


async def authorize(provider: Provider, location: str, sub: str) -> str:
    """The provider's form, submitted for ``sub``: the callback URL it redirects to."""
    async with httpx.AsyncClient() as idp:
        answered = await idp.post(location, data={"sub": sub})
    assert answered.status_code == 302, answered.text
    return answered.headers["location"]


async def sign_in(
    client: httpx.AsyncClient, provider: Provider, sub: str, next: str = ""
) -> httpx.Response:
    callback = await authorize(provider, await go_to_provider(client, provider, next), sub)
    assert callback.startswith("http://testserver/login/oidc/callback?")
    return await client.get(callback)


async def session_rows(svc: Services) -> int:
    table = metadata.tables["web_sessions"]
    async with svc.db.read() as tx:
        count = await tx.conn.execute(sa.select(sa.func.count()).select_from(table))
    return int(count.scalar() or 0)


async def test_an_existing_user_signs_in_by_email_and_out_again(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(svc, provider.url)
    org = await factory.org("acme")
    await accounts.create_user(svc, org, "ada@acme.test", Role.USER)  # no password
    provider.set_user("ada-sub", email="ada@acme.test", email_verified=True, name="Ada")

    page = await client.get("/login")
    assert "Sign in with Mock" in page.text
    location = await go_to_provider(client, provider, next="/tasks")
    asked = parse_qs(urlsplit(location).query)
    assert asked["code_challenge_method"] == ["S256"] and asked["code_challenge"][0]
    assert asked["nonce"][0] and asked["state"][0]
    assert asked["redirect_uri"] == ["http://testserver/login/oidc/callback"]
    assert asked["client_id"] == [CLIENT_ID]
    callback = await authorize(provider, location, "ada-sub")
    done = await client.get(callback)
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/tasks"
    assert "jobyard_oidc=;" in "".join(done.headers.get_list("set-cookie"))
    jobs = await client.get("/jobs")
    assert jobs.status_code == 200
    assert "ada@acme.test" in jobs.text or "Ada" in jobs.text
    assert await session_rows(svc) == 1
    kept = dict(client.cookies)

    # The same code (or the same callback) cannot sign in twice.
    again = await client.get(callback)
    assert again.status_code in (401, 403), again.text

    out = await client.post("/logout", data={"csrf_token": csrf_of(jobs.text)})
    assert out.status_code == 303
    assert (await client.get("/jobs")).status_code == 303
    # A copy of the cookie taken before signing out is signed out too.
    copy = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with copy:
        copy.cookies.update(kept)
        assert (await copy.get("/jobs")).status_code == 303


async def test_a_tampered_state_or_another_browser_is_refused(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(svc, provider.url)
    org = await factory.org("acme")
    await accounts.create_user(svc, org, "bob@acme.test", Role.USER)
    provider.set_user("bob-sub", email="bob@acme.test")

    callback = await authorize(provider, await go_to_provider(client, provider), "bob-sub")
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    query["state"] = ["forged-" + query["state"][0]]
    forged = await client.get(f"{parts.path}?{urlencode(query, doseq=True)}")
    assert forged.status_code == 403
    assert "did not start in this browser" in forged.text
    assert "<html" in forged.text.lower()  # a page, not JSON

    # The right callback in a browser that did not start the sign-in: refused too.
    other = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with other:
        stolen = await other.get(callback)
        assert stolen.status_code == 403
        assert (await other.get("/jobs")).status_code == 303
    assert await session_rows(svc) == 0


async def test_an_email_outside_the_allowed_domains_is_refused(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(
        svc,
        provider.url,
        oidc_allowed_domains="acme.test",
        oidc_auto_provision=True,
        oidc_role_map="*=acme:viewer",
    )
    await factory.org("acme")
    provider.set_user("eve-sub", email="eve@evil.test")
    refused = await sign_in(client, provider, "eve-sub")
    assert refused.status_code == 403
    assert "eve@evil.test may not sign in here" in refused.text
    assert "acme.test" in refused.text
    async with svc.db.read() as tx:
        assert await tx.accounts.user_by_email("eve@evil.test") is None
    assert await session_rows(svc) == 0


async def test_an_unknown_person_is_refused_without_auto_provisioning(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(svc, provider.url)
    await factory.org("acme")
    provider.set_user("carl-sub", email="carl@acme.test")
    refused = await sign_in(client, provider, "carl-sub")
    assert refused.status_code == 403
    assert "no jobyard account has the email carl@acme.test" in refused.text


async def test_the_role_claim_provisions_and_then_follows_the_provider(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(
        svc,
        provider.url,
        oidc_auto_provision=True,
        oidc_role_claim="groups",
        oidc_role_map="ops=acme:admin, staff=acme:viewer, staff=beta:user",
    )
    await factory.org("acme")
    await factory.org("beta")
    provider.set_user("dee-sub", email="Dee@Acme.test", name="Dee", groups=["staff", "ops"])
    done = await sign_in(client, provider, "dee-sub")
    assert done.status_code == 303, done.text
    async with svc.db.read() as tx:
        user = await tx.accounts.user_by_email("dee@acme.test")
        assert user is not None and user.display_name == "Dee"
        assert user.password_hash is None
    roles = {org.name: role for org, role in await accounts.organizations_of(svc, user.id)}
    assert roles == {"acme": Role.ADMIN, "beta": Role.USER}

    # Out of "ops" and "staff" at the provider: admin no more, and out of beta.
    provider.set_user("dee-sub", email="dee@acme.test", groups=["staff-lite"])
    fresh = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with fresh:
        refused = await sign_in(fresh, provider, "dee-sub")
    assert refused.status_code == 403
    assert "belongs to no organization" in refused.text
    assert await accounts.organizations_of(svc, user.id) == []
    # The first browser's session ended with the membership.
    assert (await client.get("/jobs")).status_code == 303


async def test_the_provider_down_and_refusals_are_pages_not_500s(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    configure(svc, f"http://127.0.0.1:{free_port()}")
    down = await client.get("/login/oidc")
    assert down.status_code == 503
    assert "could not be reached" in down.text

    configure(svc, provider.url)
    location = await go_to_provider(client, provider)
    async with httpx.AsyncClient() as idp:
        denied = await idp.post(location, data={"action": "deny"})
    assert denied.status_code == 302
    refused = await client.get(denied.headers["location"])
    assert refused.status_code == 401
    assert "Mock did not sign you in" in refused.text
    bare = await client.get("/login/oidc/callback")
    assert bare.status_code == 403


async def test_password_sign_in_can_be_turned_off(
    client: httpx.AsyncClient, svc: Services, factory: Factory, provider: Provider
) -> None:
    org = await factory.org("acme")
    await accounts.create_user(svc, org, "pat@acme.test", Role.USER, password="correct horse")
    configure(svc, provider.url, password_sign_in=False)
    page = await client.get("/login")
    assert "Sign in with Mock" in page.text
    assert 'name="password"' not in page.text
    tried = await client.post(
        "/login",
        data={
            "email": "pat@acme.test",
            "password": "correct horse",
            "csrf_token": csrf_of(page.text),
        },
    )
    assert tried.status_code == 403
    assert "password sign-in is turned off" in tried.text
    assert (await client.get("/jobs")).status_code == 303


def test_a_wrong_configuration_is_refused_with_its_setting(tmp_path: Path) -> None:
    from jobyard.service.oidc import Provider as Configured
    from jobyard.settings import Settings

    base = Settings(data_dir=tmp_path, oidc_issuer="https://id.example", oidc_client_id="c")
    assert Configured.from_settings(base) is not None
    assert Configured.from_settings(base.replace(oidc_issuer="")) is None
    for changes, words in [
        ({"oidc_client_id": ""}, "oidc_client_id"),
        ({"oidc_issuer": "id.example"}, "not an http(s) URL"),
        ({"oidc_scopes": "email"}, "must include openid"),
        ({"oidc_role_map": "ops=acme"}, "VALUE=ORG:ROLE"),
        ({"oidc_role_map": "ops=acme:owner", "oidc_role_claim": "groups"}, "owner"),
        ({"oidc_role_map": "ops=acme:admin"}, "oidc_role_claim"),
    ]:
        with pytest.raises(ValueError, match=re.escape(words)):
            Configured.from_settings(base.replace(**changes))
