"""Dashboard test helpers: signing a test client in and reading the CSRF token of a page."""

from __future__ import annotations

import re

import httpx

_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, email: str, password: str = "correct horse") -> str:
    """Sign the client in through the form; returns the session's CSRF token."""
    form = await client.get("/login")
    assert form.status_code == 200, form.text
    done = await client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
    )
    assert done.status_code == 303, done.text
    page = await client.get("/jobs")
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
