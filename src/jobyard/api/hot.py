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
_LIST_KEYS = frozenset((*_PAGE_NUMBERS, *jobs.LIST_TEXT))

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
        handler = self._handler(scope) if scope["type"] == "http" else None
        if handler is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
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

    def _handler(self, scope: Scope) -> Handler | None:
        if scope["method"] != "GET":
            return None
        path: str = scope["path"]
        if not path.startswith(PREFIX) or scope.get("root_path"):
            return None
        rest = path[len(PREFIX) :]
        if not rest:
            if _list_query(scope) is None:
                return None
            scope["route"] = self.list_route
            return _list
        if rest[0] != "/" or not rest[1:].isascii() or not rest[1:].isdigit():
            return None
        scope["route"] = self.job_route
        scope["path_params"] = {"job_id": rest[1:]}
        return _job


def _plain_headers(scope: Scope) -> bool:
    """No cookie (a dashboard session, which its middleware handles)."""
    return all(name != b"cookie" for name, _ in scope["headers"])


def _list_query(scope: Scope) -> dict[str, Any] | None:
    """The list's parameters as FastAPI would pass them, or None where FastAPI should
    judge them (a parameter given twice, a page number that is not plain digits)."""
    request = Request(scope)
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
    scope["jobyard.list_query"] = given
    return given


async def _job(request: Request, who: Principal, svc: Services) -> Response:
    return await jobs.job_of(request.scope["path_params"]["job_id"], who, svc)


async def _list(request: Request, who: Principal, svc: Services) -> Response:
    return await jobs.job_page(request, who, svc, **request.scope["jobyard.list_query"])
