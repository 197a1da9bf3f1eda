"""The hottest reads of the API, answered before FastAPI's routing and dependencies.

``GET /api/v1/jobs/{job_id}`` and ``GET /api/v1/jobs`` are what clients poll. Through
FastAPI, finding the route, solving its dependencies (the caller, the services, each query
parameter) and building its scope took half the CPU of a ``GET`` of a job. ``HotReads``
sits just inside the ``Edge`` middleware (so body limits and metrics are as for any
route) and answers those two routes itself when the request is plain: a token in the
``Authorization`` header or ``access_token`` (no cookie: the dashboard's requests go the
usual way), a numeric job id, each query parameter of the list given once and its page
numbers as plain digits. It calls what the FastAPI routes call (``jobs.job_of``,
``jobs.job_page``: the same authentication, use cases, rendering) and answers a failure
with the app's own exception handlers, as Starlette would. Anything else, including a
request without a token, goes on to FastAPI unchanged, which answers it as before.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from jobyard.api import jobs
from jobyard.api.auth import authenticate, token_from
from jobyard.domain.records import Principal
from jobyard.service.context import Services

PREFIX = "/api/v1/jobs"
_DIGITS = frozenset(b"0123456789")
_PAGE_NUMBERS = ("page", "page_size")
_LIST_KEYS = frozenset(jobs.LIST_PARAMS)

Handler = Callable[[Request, Principal, Services], Awaitable[Response]]


def route_of(routes: Sequence[BaseRoute], path: str) -> BaseRoute:
    """The GET route with this path template (what the metrics are labelled with)."""
    for route in routes:
        if getattr(route, "path", None) == path and "GET" in (
            getattr(route, "methods", None) or ()
        ):
            return route
    raise LookupError(f"no GET route {path}")


class HotReads:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        routes: Sequence[BaseRoute],
        handlers: Mapping[Any, Any],
    ) -> None:
        self.app = app
        self.svc = services
        self.handlers = handlers  # the app's exception handlers (FastAPI.exception_handlers)
        self.job_route = route_of(routes, PREFIX + "/{job_id}")
        self.list_route = route_of(routes, PREFIX)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot = (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"].startswith(PREFIX)
            and not scope.get("root_path")
        )
        request = Request(scope, receive) if hot else None
        handler = self._handler(request) if request is not None else None
        if request is None or handler is None:
            await self.app(scope, receive, send)
            return
        try:
            secret = token_from(request) if _plain_headers(scope) else None
            if secret:
                who = await authenticate(self.svc, secret)
                response = await handler(request, who, self.svc)
        except Exception as exc:
            answer = self._answer_for(exc)
            if answer is None:
                raise  # the server's failure: ServerErrorMiddleware answers it, as for any route
            response = await answer(request, exc)
        else:
            if not secret:
                await self.app(scope, receive, send)
                return
        await response(scope, receive, send)

    def _answer_for(self, exc: Exception) -> Any:
        """The app's handler of this failure, as Starlette's ExceptionMiddleware finds it
        (by the failure's classes, nearest first); None for the catch-all ``Exception``."""
        for kind in type(exc).__mro__:
            if kind is Exception:
                return None
            if kind in self.handlers:
                return self.handlers[kind]
        return None

    def _handler(self, request: Request) -> Handler | None:
        """What answers this GET under PREFIX, with the route it stands for in the scope
        (for the metrics); None where FastAPI should."""
        rest = request.scope["path"][len(PREFIX) :]
        if not rest:
            given = _list_query(request)
            if given is None:
                return None
            request.scope["route"] = self.list_route
            return functools.partial(_list, given)
        job_id = rest[1:]
        if rest[0] != "/" or not job_id.isascii() or not job_id.isdigit():
            return None
        request.scope["route"] = self.job_route
        return functools.partial(_job, job_id)


def _plain_headers(scope: Scope) -> bool:
    """No cookie (a dashboard session, which its middleware handles)."""
    return all(name != b"cookie" for name, _ in scope["headers"])


def _list_query(request: Request) -> dict[str, Any] | None:
    """The list's parameters as FastAPI would pass them, or None where FastAPI should
    judge them (a parameter given twice, a page number that is not plain digits)."""
    given: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if key not in _LIST_KEYS:
            continue
        if key in given:
            return None
        if key in _PAGE_NUMBERS:
            raw = value.encode()
            if not raw or len(raw) > 9 or not _DIGITS.issuperset(raw):
                return None
            given[key] = int(value)
        else:
            given[key] = value
    return given


async def _job(job_id: str, request: Request, who: Principal, svc: Services) -> Response:
    return await jobs.job_of(job_id, who, svc)


async def _list(given: dict[str, Any], request: Request, who: Principal, svc: Services) -> Response:
    return await jobs.job_page(request, who, svc, **given)
