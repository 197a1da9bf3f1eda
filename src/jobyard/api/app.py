"""The ASGI application: routers, error handling, middleware and the lifespan that
starts and stops the background loops in order."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from jobyard import __version__, web
from jobyard.api import (
    accounts,
    agent_ws,
    chef_keys,
    definitions,
    errors,
    files,
    health,
    jobs,
    nodes,
    notifications,
    retention,
    route_index,
    streams,
    tracing,
    watchers,
    webhooks,
)
from jobyard.api.compat import chef, kragle, rescale, theeye, xplenty, xplenty_requests
from jobyard.api.files import UPLOAD_OVERHEAD, UPLOAD_PATHS
from jobyard.api.hot import HotReads
from jobyard.api.middleware import Edge
from jobyard.api.scheduling import ROUTERS as SCHEDULING_ROUTERS
from jobyard.dispatch.loops import LoopFactory
from jobyard.dispatch.server import server_loops
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard")

# Each dialect answers the failures under its path prefix in its platform's own shape.
DIALECT_ERRORS: tuple[tuple[str, errors.ErrorRenderer], ...] = (
    (chef.ERRORS_UNDER, chef.render_error),
    (rescale.ERRORS_UNDER, rescale.render_error),
    (xplenty_requests.ERRORS_UNDER, xplenty_requests.render_error),
    (theeye.ERRORS_UNDER, theeye.render_error),
    (kragle.ERRORS_UNDER, kragle.render_error),
)


class App(FastAPI):
    """FastAPI with the agents' WebSocket beside it: ``wire.PATH`` goes straight to
    ``agent_ws.agent_endpoint``, past the middleware (metrics, body limits, sessions,
    proxies), the router and the dependency machinery, whose coroutines would otherwise
    stay suspended for each connection's whole life."""

    def __init__(self, svc: Services, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._svc = svc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == wire.PATH:
            frames = self.state.metrics.agent_frames
            await agent_ws.agent_endpoint(self._svc, frames, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    migrate: bool = True,
    run_loops: bool = True,
    loops: Sequence[LoopFactory] | None = None,
    tune_gc: bool = False,
    dialect_errors: Sequence[tuple[str, errors.ErrorRenderer]] = DIALECT_ERRORS,
    hot_reads: bool | None = None,
) -> FastAPI:
    """The server, put together: its routes, the background loops (``loops``, in start
    order; ``server_loops()`` unless given) when ``run_loops``, the error shape of each
    dialect's path prefix (``dialect_errors``); with ``tune_gc`` (the server process, not
    tests that make many apps), the garbage collector as ``tune_gc`` says once everything
    has started; with ``hot_reads`` (unless traced: FastAPI's routing names each request's
    span), the jobs API's hottest reads answered ahead of FastAPI (api/hot.py)."""
    settings = settings or (services.settings if services else Settings.from_env())
    owned = services is None
    svc = services or Services(
        db=Database(
            settings.db_url,
            count_statements=settings.count_statements,
            group_commit=settings.group_commit,
            inline_writes=settings.sqlite_inline_writes,
        ),
        settings=settings,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if migrate:
            await svc.db.migrate()
        _warn_smtp_in_clear(settings)
        # Counters of ended jobs count from here: what ended before is history, not news.
        await app.state.metrics.jobs.start(svc)
        async with contextlib.AsyncExitStack() as stack:
            if run_loops:
                for loop in server_loops() if loops is None else loops:
                    await stack.enter_async_context(loop(svc))
            if tune_gc:
                tune_garbage_collector()
            log.info("jobyard %s ready on %s", __version__, settings.base_url)
            yield
            log.info("shutting down")
        if owned:
            await svc.db.close()

    app = App(
        svc,
        title="jobyard",
        version=__version__,
        summary="Run a command on many machines: now, on a schedule, after approval, by webhook.",
        lifespan=lifespan,
        # A body without Content-Type is read as JSON (curl users forget the header);
        # a body declared as something else gets a 415 that says what to send.
        strict_content_type=False,
        telemetry=tracing.telemetry(settings.otel),  # type: ignore[arg-type]
    )
    app.state.services = svc
    app.state.metrics = health.AppMetrics()
    svc.db.observe = app.state.metrics.transactions.observe  # transaction times in /metrics
    errors.install(app, dialect_errors)
    app.include_router(health.router)
    app.include_router(accounts.router)
    app.include_router(chef_keys.router)
    app.include_router(definitions.router)
    app.include_router(retention.router)
    for router in SCHEDULING_ROUTERS:  # before jobs: DELETE /api/v1/jobs/finished
        app.include_router(router)
    app.include_router(jobs.router)
    app.include_router(nodes.router)
    app.include_router(streams.router)
    app.include_router(files.router)
    app.include_router(watchers.router)
    app.include_router(notifications.router)
    app.include_router(webhooks.router)
    app.include_router(chef.router)
    app.include_router(rescale.router)
    app.include_router(xplenty.router)
    app.include_router(theeye.router)
    app.include_router(kragle.router)
    web.install(app, svc)  # the dashboard: pages at /, its session middleware, /static
    route_index.guard_routers(app)  # every router is included by now
    if hot_reads is None:
        hot_reads = not settings.otel
    if hot_reads:
        # Inside Edge (limits, metrics), outside the dashboard's sessions: see api/hot.py.
        app.add_middleware(
            HotReads, services=svc, routes=jobs.router.routes, handlers=app.exception_handlers
        )
    app.add_middleware(
        Edge,
        limit=settings.max_body,
        uploads=UPLOAD_PATHS,
        upload_limit=settings.upload_cap + UPLOAD_OVERHEAD,
    )
    if settings.otel:
        app.add_middleware(tracing.JobSpans)
    proxies = settings.trusted_proxy_list
    if proxies:  # outermost: every layer below sees the forwarded client address
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    return app


# Collect the youngest generation every 50,000 net container allocations instead of 700
# (a request allocates thousands: default thresholds collect several times per request),
# and the older generations more rarely still.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_garbage_collector() -> None:
    """Once the server is composed and its loops started: what exists now (modules, routes,
    the app, the loops) lives as long as the process, so it leaves the collector's heap
    (``gc.freeze``) and a full collection walks only what came after; then thresholds for
    a server's allocation rate."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _warn_smtp_in_clear(settings: Settings) -> None:
    if not (settings.smtp_host and settings.smtp_user and settings.smtp_password):
        return
    if settings.smtp_tls != "none":
        return
    if settings.smtp_allow_plaintext_auth:
        log.warning(
            "SMTP password WILL BE SENT IN CLEAR to %s:%s (JOBYARD_SMTP_TLS=none and "
            "JOBYARD_SMTP_ALLOW_PLAINTEXT_AUTH=true)",
            settings.smtp_host,
            settings.smtp_port,
        )
    else:
        log.warning(
            "JOBYARD_SMTP_TLS=none with an SMTP password: email is NOT sent, because the "
            "password would cross the network in clear; set JOBYARD_SMTP_TLS=starttls or tls "
            "(or JOBYARD_SMTP_ALLOW_PLAINTEXT_AUTH=true to accept the risk)"
        )
