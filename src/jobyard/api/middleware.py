"""ASGI middleware: body size limit and request metrics, in one layer."""

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


class Edge:
    """What every HTTP request crosses first, in one layer: a 413 as soon as its body is
    known to exceed ``limit`` bytes (``upload_limit`` on the ``uploads`` paths), and its
    count and latency by route template in /metrics."""

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
        # The metric children of each (method, route[, status]): labels() takes a lock
        # and builds a key on every call.
        self.counted: dict[tuple[str, str, int], Any] = {}
        self.timed: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def capture(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            path = str(scope.get("path", "")).rstrip("/")
            limit = self.upload_limit if path in self.uploads else self.default
            if _declared_over(scope, limit):
                await _reject(capture, limit)
                return
            seen = 0

            async def limited_receive() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > limit:
                        raise _TooLarge(limit)
                return message

            try:
                await self.app(scope, limited_receive, capture)
            except _TooLarge:
                if not started:
                    await _reject(capture, limit)
        finally:
            self._observe(scope, status, time.perf_counter() - start)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope.get("method", "")
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        key = (method, route, status)
        counter = self.counted.get(key)
        if counter is None:
            counter = REQUESTS.labels(method, route, str(status))
            if len(self.counted) < _REMEMBERED:
                self.counted[key] = counter
        counter.inc()
        timer = self.timed.get(key[:2])
        if timer is None:
            timer = LATENCY.labels(method, route)
            if len(self.timed) < _REMEMBERED:
                self.timed[(method, route)] = timer
        timer.observe(seconds)


# Metric children remembered per middleware (routes x methods x statuses stay far below).
_REMEMBERED = 4096


def _declared_over(scope: Scope, limit: int) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value) > limit
            except ValueError:
                return False
    return False


async def _reject(send: Send, limit: int) -> None:
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
