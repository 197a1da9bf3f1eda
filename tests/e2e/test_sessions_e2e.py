"""A real ``jobyard serve``: a copied dashboard cookie stops working at sign-out."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.e2e.procs import Server

pytestmark = pytest.mark.e2e

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_a_copied_cookie_is_refused_after_sign_out(server: Server) -> None:
    server.admin("create-org", "acme")
    server.admin(
        "create-user",
        "--org",
        "acme",
        "--email",
        "a@acme.test",
        "--role",
        "admin",
        "--password",
        "correct horse",
    )
    with httpx.Client(base_url=server.url, timeout=30.0) as browser:
        form = browser.get("/login")
        token = _CSRF.search(form.text)
        assert token
        done = browser.post(
            "/login",
            data={"email": "a@acme.test", "password": "correct horse", "csrf_token": token[1]},
        )
        assert done.status_code == 303, done.text
        copied = browser.cookies["jobyard_session"]
        with httpx.Client(
            base_url=server.url, cookies={"jobyard_session": copied}, timeout=30.0
        ) as thief:
            assert thief.get("/api/v1/jobs").status_code == 200
            page = browser.get("/jobs")
            again = _CSRF.search(page.text)
            assert again
            out = browser.post("/logout", data={"csrf_token": again[1]})
            assert out.status_code == 303
            assert thief.get("/api/v1/jobs").status_code == 401
            assert thief.get("/jobs").status_code == 303  # to the sign-in page
