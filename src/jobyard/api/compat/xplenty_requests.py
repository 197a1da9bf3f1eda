"""How the Xplenty dialect reads requests and answers them.

Who asks (an account member within its hourly request budget, ``X-RateLimit-*`` on every
answer), parameters as JSON, Rails-style form fields (``cluster[nodes]=2``) or in the
query string (the Ruby client), list windows (``offset``/``limit``, ``sort``,
``direction``, ``since``), integer ids, and errors as ``{"message": "..."}``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from starlette.responses import Response

from jobyard.api.auth import principal, services
from jobyard.api.compat import base_url, json_object, same_org
from jobyard.api.compat import xplenty_views as views
from jobyard.api.responses import JSON
from jobyard.domain.dialects import xplenty
from jobyard.domain.errors import Invalid, NotFound, RateLimited
from jobyard.domain.records import Page, Principal
from jobyard.service import accounts as accounts_uc
from jobyard.service.context import Services

PREFIX = "/compat/xplenty/{account}/api"
Svc = Annotated[Services, Depends(services)]
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Requests per token per hour, counted in this process.
RATE_LIMIT = 5000
RATE_WINDOW = 3600.0
T = TypeVar("T")


def _rate_headers(request: Request) -> dict[str, str]:
    budget = getattr(request.state, "xplenty_budget", None)
    if budget is None:
        return {}
    return {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": str(budget)}


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    # Xplenty has no 409: a state that forbids the request is 422.
    if status == 409:
        status = 422
    if extra.get("malformed"):
        status = 400
    return JSON({"message": detail}, status_code=status, headers=_rate_headers(request))


# Failures under this prefix are answered by render_error (composed in api/app.py).
ERRORS_UNDER = "/compat/xplenty/"


async def account_member(
    account: str, request: Request, who: Annotated[Principal, Depends(principal)]
) -> Principal:
    """The caller, in the account named in the URL, within its hourly request budget."""
    same_org(account, who)
    windows: dict[int, tuple[float, int]] = request.app.state.__dict__.setdefault(
        "xplenty_windows", {}
    )
    now = time.monotonic()
    key = who.token_id or -who.user_id
    start, used = windows.get(key, (now, 0))
    if now - start >= RATE_WINDOW:
        start, used = now, 0
    # "All Xplenty API methods are rate-limited except for querying the rate limit."
    if not request.url.path.rstrip("/").endswith("/rate_limit_status"):
        used += 1
    windows[key] = (start, used)
    request.state.xplenty_budget = max(RATE_LIMIT - used, 0)
    if used > RATE_LIMIT:
        raise RateLimited(f"rate limit of {RATE_LIMIT} requests per hour exceeded")
    return who


Who = Annotated[Principal, Depends(account_member)]


def reply(request: Request, content: Any, status_code: int = 200) -> Response:
    if status_code == 204:
        return Response(status_code=204, headers=_rate_headers(request))
    headers = {**_rate_headers(request), **_link_header(request)}
    return JSON(content, status_code=status_code, headers=headers)


def ident(text_id: str, what: str) -> int:
    native = xplenty.parse_id(text_id)
    if native is None:
        raise NotFound(f"{what} {text_id} not found")
    return native


def api_url(request: Request, account: str) -> str:
    return f"{base_url(request)}/compat/xplenty/{account}/api"


def links_of(request: Request, account: str) -> views.Links:
    return views.Links(api=api_url(request, account), site=base_url(request))


async def params(request: Request) -> dict[str, Any]:
    """The request's parameters from the query string, form fields or JSON, nested."""
    found = xplenty.nest(request.query_params.multi_items())
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        found.update(xplenty.nest((k, v) for k, v in form.multi_items() if isinstance(v, str)))
    else:
        found.update(await json_object(request))
    return found


def scoped(found: dict[str, Any], name: str) -> dict[str, Any]:
    """``cluster[nodes]=2`` and ``{"nodes": 2}`` alike: the object's own fields."""
    inner = found.get(name)
    if isinstance(inner, dict):
        return {**{k: v for k, v in found.items() if k != name}, **inner}
    return found


def window(request: Request) -> tuple[int, int]:
    q = request.query_params
    try:
        offset = int(q.get("offset", "0"))
        limit = int(q.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise Invalid("offset and limit are whole numbers", "offset") from None
    if offset < 0:
        raise Invalid("offset starts at 0", "offset")
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit is 1 to {MAX_LIMIT}", "limit")
    return offset, limit


def order(request: Request) -> tuple[str, bool, dt.datetime | None]:
    q = request.query_params
    sort = q.get("sort", "created")
    if sort not in ("created", "updated"):
        raise Invalid("sort is created or updated", "sort")
    direction = q.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise Invalid("direction is asc or desc", "direction")
    since = q.get("since")
    when = None
    if since:
        try:
            when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("since is an ISO 8601 time", "since") from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return sort, direction == "desc", when


class _Dated(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def created_at(self) -> dt.datetime: ...
    @property
    def updated_at(self) -> dt.datetime: ...


D = TypeVar("D", bound=_Dated)


def arrange(request: Request, items: Sequence[D]) -> list[D]:
    """A whole native list as Xplenty asks for it: ``since``, ``sort``, ``direction``,
    then the ``offset``/``limit`` window."""
    offset, limit = window(request)
    sort, descending, since = order(request)

    def when(item: D) -> dt.datetime:
        return item.created_at if sort == "created" else item.updated_at

    found = [i for i in items if since is None or when(i) >= since]
    found.sort(key=lambda i: (when(i), i.id), reverse=descending)
    set_total(request, len(found))
    return found[offset : offset + limit]


def set_total(request: Request, total: int) -> None:
    """The size of the list being answered: its reply carries the ``Link`` header."""
    request.state.xplenty_total = total


def _link_header(request: Request) -> dict[str, str]:
    """RFC 5988 ``Link`` with rel="next" and rel="prev" windows, as Xplenty's lists send."""
    total = getattr(request.state, "xplenty_total", None)
    if total is None:
        return {}
    offset, limit = window(request)
    links = []
    if offset + limit < total:
        links.append(
            f'<{request.url.include_query_params(offset=offset + limit, limit=limit)}>; rel="next"'
        )
    if offset > 0:
        prev = max(offset - limit, 0)
        links.append(f'<{request.url.include_query_params(offset=prev, limit=limit)}>; rel="prev"')
    return {"Link": ", ".join(links)} if links else {}


async def every(fetch: Callable[[int, int], Awaitable[Page[T]]]) -> list[T]:
    """Every item of a paged native list."""
    out: list[T] = []
    while True:
        page = await fetch(len(out), MAX_LIMIT)
        out.extend(page.items)
        if not page.items or len(out) >= page.total:
            return out


async def member_names(svc: Services, who: Principal) -> dict[int, str]:
    return {m.user_id: m.display_name for m in await accounts_uc.list_members(svc, who)}
