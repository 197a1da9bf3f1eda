"""Account pages: the caller's API tokens (created and shown once, revoked) and the
organization's members with their roles (managed by admins)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role, parse_role
from jobyard.domain.errors import Invalid, JobyardError, NotFound
from jobyard.service import accounts as uc
from jobyard.service.accounts import IssuedToken
from jobyard.web.page import Page, PageRoute, Poster, Viewer

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_TOKEN_DAYS = 3650


async def _tokens_page(
    page: Page,
    *,
    issued: IssuedToken | None = None,
    error: str = "",
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    who = page.user
    tokens = await uc.my_tokens(page.svc, who)
    members = await uc.list_members(page.svc, who)
    return await page.render(
        "tokens.html",
        status_code=status_code,
        tokens=sorted(tokens, key=lambda t: (t.revoked_at is not None, -t.id)),
        emails={m.user_id: m.email for m in members},
        members=members,
        issued=issued,
        error=error,
        values=values or {"name": "", "role": "", "days": "", "email": ""},
        is_admin=who.role is Role.ADMIN,
        narrower=[
            r
            for r in (Role.VIEWER, Role.USER, Role.ADMIN)
            if who.role.at_least(r) and r is not who.role
        ],
        now=page.svc.clock.now(),
    )


@router.get("/tokens")
async def tokens(page: Viewer) -> Response:
    return await _tokens_page(page)


@router.post("/tokens")
async def create_token(page: Poster) -> Response:
    who = page.user
    values = {k: page.field(k) for k in ("name", "role", "days", "email")}
    try:
        name = values["name"] or "dashboard"
        if len(name) > 100:
            raise Invalid("a token name is at most 100 characters", "name")
        role = parse_role(values["role"]) if values["role"] else None
        expires_at = None
        if values["days"]:
            if (
                not (values["days"].isascii() and values["days"].isdigit())
                or not 1 <= int(values["days"]) <= MAX_TOKEN_DAYS
            ):
                raise Invalid(
                    f"expiry is a number of days from 1 to {MAX_TOKEN_DAYS}, or empty for never",
                    "days",
                )
            expires_at = page.svc.clock.now() + dt.timedelta(days=int(values["days"]))
        issued = await uc.new_token(page.svc, who, name, role, expires_at, values["email"] or None)
    except JobyardError as exc:
        return await _tokens_page(
            page, error=exc.detail, values=values, status_code=exc.status_code
        )
    # Rendered, not redirected: the secret must not travel in a URL, and is shown only now.
    return await _tokens_page(page, issued=issued, status_code=201)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(page: Poster, token_id: str) -> Response:
    if not (token_id.isascii() and token_id.isdigit()):
        raise NotFound(f"no token {token_id!r}")
    await uc.revoke_token(page.svc, page.user, int(token_id))
    return page.redirect("/tokens", "revoked")


async def _members_page(
    page: Page, *, error: str = "", values: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    who = page.user
    members = await uc.list_members(page.svc, who)
    context: dict[str, Any] = {
        "members": members,
        "is_admin": who.role is Role.ADMIN,
        "roles": [Role.VIEWER, Role.USER, Role.ADMIN],
        "error": error,
        "values": values or {"email": "", "role": "user", "display_name": ""},
    }
    return await page.render("members.html", status_code=status_code, **context)


@router.get("/members")
async def members(page: Viewer) -> Response:
    return await _members_page(page)


@router.post("/members")
async def save_member(page: Poster) -> Response:
    values = {k: page.field(k) for k in ("email", "role", "display_name")}
    try:
        if not values["email"]:
            raise Invalid("give the member's email", "email")
        await uc.set_member(
            page.svc,
            page.user,
            values["email"],
            parse_role(values["role"] or "user"),
            values["display_name"] or None,
            page.field("password") or None,
        )
    except JobyardError as exc:
        return await _members_page(
            page, error=exc.detail, values=values, status_code=exc.status_code
        )
    return page.redirect("/members", "member_saved")


@router.post("/members/{user_id}/remove")
async def remove_member(page: Poster, user_id: str) -> Response:
    if not (user_id.isascii() and user_id.isdigit()):
        raise NotFound(f"no member {user_id!r}")
    await uc.remove_member(page.svc, page.user, int(user_id))
    return page.redirect("/members", "member_removed")
