"""What every dashboard handler gets: the caller, the form it posted (CSRF-checked),
and a way to render a template with the header's context; and the route class that
turns errors into pages instead of JSON.

- ``Viewer`` (dependency): a signed-in user, else a redirect to the sign-in page.
- ``Poster`` (dependency): the same, for a POST whose form carried the CSRF token.
- ``Visitor`` (dependency): anyone; gets an anonymous session so forms can be protected.
- ``PageRoute``: ``JobyardError`` → the page ``error.html`` with its status and message;
  a missing session → 303 to ``/login?next=...`` (401 for the page's script).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from jobyard.domain.errors import Forbidden, JobyardError, NotFound
from jobyard.domain.records import Principal
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.web.header import header_data
from jobyard.web.rendering import html, render_text, url_with
from jobyard.web.session import CSRF_FIELD, CSRF_HEADER, Session, SessionCodec, codec_of

log = logging.getLogger("jobyard.web")

FRAGMENT_HEADER = "x-fragment"


def path_id(raw: str, noun: str) -> int:
    """An id taken from a URL path; anything else is a page that does not exist."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise NotFound(f"no {noun} {raw!r}")
    return int(raw)


class SignInRequired(Exception):
    """Raised when a page needs a signed-in user and the request has none."""


def _codec(request: Request) -> SessionCodec:
    return codec_of(request.app.state.services)


@dataclass
class Page:
    """One request to the dashboard: who asks, their session, and how to answer."""

    request: Request
    svc: Services
    codec: SessionCodec
    session: Session
    who: Principal | None
    form: FormData | None = None
    new_session: bool = False
    cookies: list[str] = field(default_factory=list)

    @property
    def user(self) -> Principal:
        if self.who is None:
            raise SignInRequired()
        return self.who

    @property
    def csrf(self) -> str:
        return self.codec.csrf_token(self.session)

    @property
    def fragment(self) -> bool:
        return self.request.headers.get(FRAGMENT_HEADER) == "1"

    def field(self, name: str, default: str = "") -> str:
        """A posted text field, stripped ('' when absent)."""
        if self.form is None:
            return default
        value = self.form.get(name)
        return value.strip() if isinstance(value, str) else default

    def set_session(self, session: Session | None) -> None:
        """Store (or, with None, clear) the session cookie on this page's response."""
        self.cookies.append(self.codec.cookie_header(session))
        if session is not None:
            self.session = session
        self.new_session = False

    def number(self, name: str = "n") -> int:
        """A page number from the query (1 when absent or not a number)."""
        raw = self.request.query_params.get(name, "")
        return max(1, int(raw)) if raw.isdigit() and len(raw) < 10 else 1

    def url(self, **params: Any) -> str:
        return url_with(self.request, **params)

    async def render(self, template: str, *, status_code: int = 200, **context: Any) -> Response:
        """A full page (or, for the page's script, just the template) with the header's data."""
        base: dict[str, Any] = {
            "request": self.request,
            "page": self,
            "who": self.who,
            "csrf": self.csrf,
            "csrf_field": CSRF_FIELD,
            "orgs": [],
            "header": {},
            "notice": NOTICES.get(self.request.query_params.get("notice", ""), ""),
            "path": self.request.url.path,
        }
        if self.who is not None and not self.fragment:
            base["orgs"] = await accounts.organizations_of(self.svc, self.who.user_id)
            base["header"] = await header_data(self.svc, self.who)
        base.update(context)
        return self.respond(html(render_text(template, base), status_code=status_code))

    def redirect(self, to: str, notice: str | None = None) -> Response:
        if notice:
            to += ("&" if "?" in to else "?") + f"notice={notice}"
        return self.respond(RedirectResponse(to, status_code=303))

    def respond(self, response: Response) -> Response:
        if self.new_session:
            self.cookies.append(self.codec.cookie_header(self.session))
            self.new_session = False
        for cookie in self.cookies:
            response.headers.append("set-cookie", cookie)
        return response


# Short confirmations shown after a redirect (keys in the URL, words here).
NOTICES = {
    "signed_out": "You are signed out.",
    "stopped": "The job was stopped.",
    "submitted": "The job was submitted.",
    "deleted": "The job was deleted.",
    "revoked": "The token was revoked.",
    "member_saved": "The member was saved.",
    "member_removed": "The member was removed.",
    "switched": "Switched organization.",
    "saved": "Saved.",
    "watching": "You are watching it: you will be told when its state changes.",
    "unwatched": "You no longer watch it.",
    "shared": "The job was shared.",
    "unshared": "The job is no longer shared with that person.",
    "approved": "Approved.",
    "rejected": "Rejected.",
    "input_given": "The input was given.",
    "queued_for_deletion": "A run is due: the trigger will be deleted at that time instead.",
    "done": "Done.",
}


def _page(request: Request) -> Page:
    codec = _codec(request)
    session: Session | None = getattr(request.state, "web_session", None)
    new = session is None
    if session is None:
        session = codec.anonymous()
    who: Principal | None = getattr(request.state, "web_principal", None)
    return Page(request, request.app.state.services, codec, session, who, new_session=new)


async def visitor(request: Request) -> Page:
    return _page(request)


async def viewer(request: Request) -> Page:
    page = _page(request)
    if page.who is None:
        raise SignInRequired()
    return page


async def _checked_form(request: Request, page: Page) -> FormData:
    form = await request.form()
    token = form.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.headers.get(CSRF_HEADER)
    if page.new_session or not page.codec.csrf_ok(page.session, token):
        raise Forbidden(
            "this form has expired or did not come from this site: reload the page and try again"
        )
    return form


async def poster(request: Request) -> Page:
    page = await viewer(request)
    page.form = await _checked_form(request, page)
    return page


async def visitor_poster(request: Request) -> Page:
    page = _page(request)
    page.form = await _checked_form(request, page)
    return page


Visitor = Annotated[Page, Depends(visitor)]
Viewer = Annotated[Page, Depends(viewer)]
Poster = Annotated[Page, Depends(poster)]
VisitorPoster = Annotated[Page, Depends(visitor_poster)]


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    page = _page(request)
    if request.headers.get(FRAGMENT_HEADER) == "1":
        return html(f'<p class="error">{_escape(detail)}</p>', status_code=status)
    body = render_text(
        "error.html",
        {
            "request": request,
            "page": page,
            "who": page.who,
            "csrf": page.csrf,
            "csrf_field": CSRF_FIELD,
            "orgs": [],
            "header": {},
            "notice": "",
            "path": request.url.path,
            "status": status,
            "title": title,
            "detail": detail,
        },
    )
    return page.respond(html(body, status_code=status))


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _sign_in(request: Request) -> Response:
    if request.headers.get(FRAGMENT_HEADER) == "1":
        return html('<p class="error">Your session has ended: sign in again.</p>', status_code=401)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login" if here in ("/", "") else f"/login?next={quote(here, safe='')}"
    return RedirectResponse(target, status_code=303)


class PageRoute(APIRoute):
    """A dashboard route: errors become pages in words, never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequired:
                return _sign_in(request)
            except JobyardError as exc:
                return _error_page(request, exc.status_code, exc.title, exc.detail)
            except RequestValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'value'}: {e.get('msg')}"
                    for e in exc.errors()
                )
                return _error_page(request, 422, "Invalid request", problems or "invalid request")

        return route
