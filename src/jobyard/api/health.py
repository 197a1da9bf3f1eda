"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from jobyard.api.auth import services
from jobyard.api.responses import JSON
from jobyard.service.context import Services

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


@router.get("/metrics", summary="Prometheus metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
