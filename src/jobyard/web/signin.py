"""Signing in and out, and switching organization."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.errors import Invalid, RateLimited, Unauthenticated
from jobyard.service import sessions
from jobyard.web.page import PageRoute, Poster, Visitor, VisitorPoster

router = APIRouter(route_class=PageRoute, include_in_schema=False)

HOME = "/jobs"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    if target.startswith(("/login", "/logout")):
        return HOME
    return target


@router.get("/")
async def home(page: Visitor) -> Response:
    return page.redirect(HOME if page.who else "/login")


@router.get("/login")
async def login_form(page: Visitor, next: str | None = None) -> Response:
    if page.who is not None:
        return page.redirect(safe_next(next))
    return await page.render("login.html", next=safe_next(next), email="", error="")


@router.post("/login")
async def login(page: VisitorPoster) -> Response:
    email = page.field("email")
    target = safe_next(page.field("next"))
    client = page.request.client.host if page.request.client else "unknown"
    try:
        if not email or not page.field("password"):
            raise Invalid("enter your email and your password")
        # The same failure budget per address as every other password sign-in.
        who = await sessions.sign_in(page.svc, email, page.field("password"), client=client)
    except (Unauthenticated, Invalid, RateLimited) as exc:
        return await page.render(
            "login.html", status_code=exc.status_code, next=target, email=email, error=exc.detail
        )
    page.set_session(await sessions.open_session(page.svc, who))
    return page.redirect(target)


@router.post("/logout")
async def logout(page: VisitorPoster) -> Response:
    await sessions.close_session(page.svc, page.session)  # every copy of the cookie ends
    page.set_session(None)
    return page.redirect("/login", "signed_out")


@router.post("/org")
async def switch_org(page: Poster) -> Response:
    page.set_session(await sessions.switch_org(page.svc, page.session, page.field("org")))
    return page.redirect(HOME, "switched")
