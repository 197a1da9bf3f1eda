"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from starlette.responses import Response

from jobyard.api.auth import services
from jobyard.api.responses import JSON
from jobyard.service.context import Services
from jobyard.service.metrics import AgentFrames, JobMetrics, TransactionMetrics

log = logging.getLogger("jobyard.api")
router = APIRouter(tags=["health"])
Svc = Annotated[Services, Depends(services)]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Response:
    return JSON({"status": "ok"})


@router.get("/readyz", summary="The database answers")
async def readyz(svc: Svc) -> Response:
    try:
        await svc.db.ping()
    except Exception as exc:  # any driver failure means "not ready"
        return JSON({"status": "unavailable", "detail": str(exc)[:200]}, status_code=503)
    return JSON({"status": "ok"})


class AppMetrics:
    """The app's own registry of job-level metrics, beside the process-wide one (HTTP,
    Python runtime): an app made twice in one process (tests) registers twice freely."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = JobMetrics(self.registry)
        self.transactions = TransactionMetrics(self.registry)
        self.agent_frames = AgentFrames(self.registry)


def _agents_connected(svc: Services) -> int:
    engine = svc.runtime.engine
    return engine.connected() if engine is not None else 0


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request, svc: Svc) -> Response:
    app_metrics: AppMetrics = request.app.state.metrics
    try:
        await app_metrics.jobs.refresh(svc, agents_connected=_agents_connected(svc))
    except Exception:  # the database is down: still serve what the process knows
        log.warning("metrics: the database could not be read", exc_info=True)
    body = generate_latest(REGISTRY) + generate_latest(app_metrics.registry)
    if svc.db.counts is not None:  # JOBYARD_COUNT_STATEMENTS
        body += "\n".join([*svc.db.counts.lines(), ""]).encode()
    return Response(body, media_type=CONTENT_TYPE_LATEST)
