"""OpenID Connect sign-in in real headless Chromium: a real ``jobyard serve`` configured
through its environment against a real provider process (``oidc-provider-mock``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import Server
from tests.web.provider import Provider
from tests.web.yard import EMAIL, SERVER_ENV, Yard, chromium_missing, launch_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(chromium_missing()), reason="no chromium")]

WAIT = 20_000  # ms


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with Provider(tmp_path_factory.mktemp("oidc")) as p:
        yield p


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Yard]:
    root = tmp_path_factory.mktemp("yard")
    secret = root / "oidc-secret"
    secret.write_text("browser-secret-31f7\n")
    env = {
        **SERVER_ENV,
        "JOBYARD_OIDC_ISSUER": provider.url,
        "JOBYARD_OIDC_CLIENT_ID": "jobyard-browser",
        "JOBYARD_OIDC_CLIENT_SECRET_FILE": str(secret),
        "JOBYARD_OIDC_PROVIDER_NAME": "Mock ID",
        "JOBYARD_OIDC_ALLOWED_DOMAINS": "acme.test",
    }
    server = Server(root / "server", env=env)
    yard = Yard(server, root)
    try:
        server.start()
        yard.setup_accounts()
        yield yard
    finally:
        yard.close()


@pytest.fixture
def page(yard: Yard) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(WAIT)
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab
            assert not errors, f"JavaScript errors: {errors}"
        finally:
            browser.close()


def test_sign_in_with_the_provider_see_the_jobs_and_sign_out(
    page: Any, yard: Yard, provider: Provider
) -> None:
    provider.set_user("ada-at-idp", email=EMAIL, email_verified=True)
    with yard.api() as api:
        made = api.post("/api/v1/jobs", json={"command": "true", "nodes": ["nowhere"]})
        assert made.status_code == 201, made.text
    page.goto(f"{yard.url}/jobs/{made.json()['id']}")  # signed out: to the sign-in page
    page.wait_for_url(f"{yard.url}/login?next=*")
    page.click("text=Sign in with Mock ID")
    page.wait_for_url(f"{provider.url}/oauth2/authorize?*")
    page.fill("input[name=sub]", "ada-at-idp")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(f"{yard.url}/jobs/{made.json()['id']}")  # back where it started
    page.goto(f"{yard.url}/jobs")
    assert page.locator("h1").inner_text() == "Jobs"
    assert page.locator(f'tr[data-job-id="{made.json()["id"]}"]').count() == 1

    page.click("form[action='/logout'] button")
    page.wait_for_url(f"{yard.url}/login*")
    page.goto(f"{yard.url}/jobs")
    page.wait_for_url(f"{yard.url}/login?next=*")


def test_an_address_of_another_domain_gets_a_page_saying_why(
    page: Any, yard: Yard, provider: Provider, tmp_path: Path
) -> None:
    provider.set_user("eve-at-idp", email="eve@elsewhere.test")
    page.goto(f"{yard.url}/login")
    page.click("text=Sign in with Mock ID")
    page.fill("input[name=sub]", "eve-at-idp")
    page.click("button:has-text('Authorize')")
    page.wait_for_url(f"{yard.url}/login/oidc/callback?*")
    assert (
        "eve@elsewhere.test may not sign in here" in page.locator("main, body").first.inner_text()
    )
    assert page.locator(".error-code").inner_text() == "403"
    page.screenshot(path=str(tmp_path / "refused.png"))
