"""ASGI middleware: body size limit and request metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobyard.api.responses import dumps

# Labelled by the route's template (``/api/v1/jobs/{job_id}``), never the raw path: one
# series per route, however many ids are asked for.
REQUESTS = Counter("jobyard_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("jobyard_http_request_seconds", "HTTP request latency", ["method", "route"])


class BodyLimit:
    """Answer 413 as soon as a body is known to exceed ``limit`` bytes."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        uploads: tuple[str, ...] = (),
        upload_limit: int = 0,
    ) -> None:
        self.app = app
        self.default = limit
        self.uploads = uploads  # paths that take file uploads: upload_limit, not limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", "")).rstrip("/")
        limit = self.upload_limit if path in self.uploads else self.default
        await self._limited(limit, scope, receive, send)

    async def _limited(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await self._reject(send, limit)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send, limit)

    async def _reject(self, send: Send, limit: int) -> None:
        body = dumps(
            {
                "type": "about:blank",
                "title": "Too large",
                "status": 413,
                "detail": f"the body is over the {limit}-byte limit",
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/problem+json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from ``receive`` when a body without Content-Length (chunked) grows too big.

    An HTTPException, so that whoever reads the body (FastAPI turns any other error while
    reading into a 400) lets it through to the error handlers, which answer 413 in the
    shape of the route (problem+json or a dialect's)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body is over the {limit}-byte limit")


class Metrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: dict[str, Any] = {"code": 500}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            method = scope.get("method", "")
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            REQUESTS.labels(method, route, str(status["code"])).inc()
            LATENCY.labels(method, route).observe(time.perf_counter() - start)
