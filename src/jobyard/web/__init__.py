"""The dashboard: server-rendered pages over the service layer, with a little JavaScript
and server-sent events for the live parts. ``install(app, services)`` adds it to the
ASGI app: the session middleware, the page routers and ``/static``."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from jobyard.service.context import Services
from jobyard.web import (
    accounts,
    audience,
    decisions,
    fleet,
    inbox,
    jobs,
    live,
    oidc,
    schedules,
    signin,
    stacks,
    tasks,
    triggers,
)
from jobyard.web.middleware import SessionMiddleware
from jobyard.web.rendering import STATIC


def install(app: FastAPI, services: Services) -> None:
    app.add_middleware(SessionMiddleware, services=services)
    for module in (
        signin,
        oidc,
        jobs,
        audience,
        decisions,
        live,
        inbox,
        tasks,
        stacks,
        schedules,
        triggers,
        accounts,
        fleet,
    ):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
