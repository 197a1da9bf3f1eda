"""Who the browser is: the session cookie, turned into a principal for pages and the API.

For every HTTP request carrying a valid session cookie this sets, in the request
state:

- ``web_session``: the decoded session (also for visitors who have not signed in);
- ``web_principal``: the signed-in user in the session's organization (dashboard pages;
  their forms check the CSRF field themselves);
- ``session_principal``: the same principal for the API (``api/auth.py``), but for a
  state-changing method only when the request carries the session's CSRF token in
  ``X-CSRF-Token``. A cross-site form can send the cookie, never that header.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from jobyard.service import sessions
from jobyard.service.context import Services
from jobyard.web.session import COOKIE, CSRF_HEADER, codec_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths that never need to know who asks.
_ANONYMOUS_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics")


class SessionMiddleware:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(_ANONYMOUS_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not any(name == b"cookie" for name, _ in scope["headers"]):
            await self.app(scope, receive, send)  # API clients: no cookie to read
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE)
        if not cookie:  # API clients and first visits: nothing to decode
            await self.app(scope, receive, send)
            return
        codec = codec_of(self.services)
        session = codec.loads(cookie)
        state = scope.setdefault("state", {})
        who = None
        if session is not None:  # signed out, expired, revoked or never signed in: None
            session, who = await sessions.restore(self.services, session)
        state["web_session"] = session
        if session is not None:
            state["web_principal"] = who
            if who is not None and (
                scope["method"] in SAFE_METHODS
                or codec.csrf_ok(session, request.headers.get(CSRF_HEADER))
            ):
                state["session_principal"] = who
        await self.app(scope, receive, send)
