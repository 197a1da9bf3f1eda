"""Signing in through an OpenID Connect provider (service/oidc.py does the protocol).

- ``GET /login/oidc?next=PATH``: sends the browser to the provider, with the pending
  sign-in (state, nonce, PKCE verifier, where to go after) in the signed cookie
  ``jobyard_oidc`` (ten minutes, only for ``/login/oidc``, SameSite=Lax so that it comes
  back with the provider's redirect).
- ``GET /login/oidc/callback``: the provider's answer; on success the same server-side
  session as a password sign-in, and the cookie is cleared. Every failure is a page that
  says what went wrong (PageRoute), never a 500.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.service import oidc, sessions
from jobyard.web.page import Page, PageRoute, Visitor
from jobyard.web.signin import safe_next

router = APIRouter(route_class=PageRoute, include_in_schema=False)

COOKIE = "jobyard_oidc"
COOKIE_PATH = "/login/oidc"
CALLBACK = "/login/oidc/callback"
_PURPOSE = "oidc-pending"


def _callback_url(page: Page) -> str:
    return page.svc.url(CALLBACK)


@router.get("/login/oidc")
async def start(page: Visitor, next: str | None = None) -> Response:
    if page.who is not None:
        return page.redirect(safe_next(next))
    url, pending = await oidc.start(page.svc, _callback_url(page), safe_next(next))
    sealed = page.codec.seal(_PURPOSE, pending.as_dict())
    page.cookies.append(page.codec.cookie(COOKIE, sealed, oidc.PENDING_MAX_AGE, path=COOKIE_PATH))
    return page.redirect(url)


@router.get("/login/oidc/callback")
async def callback(page: Visitor) -> Response:
    raw = page.codec.unseal(_PURPOSE, page.request.cookies.get(COOKIE), oidc.PENDING_MAX_AGE)
    pending = oidc.Pending.from_dict(raw) if raw is not None else None
    params = dict(page.request.query_params)
    who = await oidc.finish(page.svc, pending, params, _callback_url(page))
    page.set_session(await sessions.open_session(page.svc, who))
    page.cookies.append(page.codec.cookie(COOKIE, "", 0, path=COOKIE_PATH))
    assert pending is not None  # finish refuses a callback without one
    return page.redirect(safe_next(pending.next))
