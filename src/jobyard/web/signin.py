"""Signing in and out, and switching organization."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.errors import Forbidden, Invalid, RateLimited, Unauthenticated
from jobyard.service import oidc, sessions
from jobyard.web.page import Page, PageRoute, Poster, Visitor, VisitorPoster

router = APIRouter(route_class=PageRoute, include_in_schema=False)

HOME = "/jobs"


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path on this site only (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return HOME
    if target.startswith(("/login", "/logout")):  # /login/oidc too
        return HOME
    return target


@router.get("/")
async def home(page: Visitor) -> Response:
    return page.redirect(HOME if page.who else "/login")


async def _login_page(
    page: Page, target: str, *, email: str = "", error: str = "", status_code: int = 200
) -> Response:
    provider = oidc.provider_of(page.svc)
    return await page.render(
        "login.html",
        status_code=status_code,
        next=target,
        email=email,
        error=error,
        provider=provider.name if provider else "",
        passwords=page.svc.settings.password_sign_in,
    )


@router.get("/login")
async def login_form(page: Visitor, next: str | None = None) -> Response:
    if page.who is not None:
        return page.redirect(safe_next(next))
    return await _login_page(page, safe_next(next))


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
    except (Unauthenticated, Invalid, RateLimited, Forbidden) as exc:
        return await _login_page(
            page, target, email=email, error=exc.detail, status_code=exc.status_code
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
