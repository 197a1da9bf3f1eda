"""Anonymous trigger URLs: POST /api/v1/hooks/{secret} starts a run of the secret's task."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from starlette.responses import Response

from jobyard.api.errors import render_error
from jobyard.api.responses import JSON, iso
from jobyard.domain.errors import RateLimited
from jobyard.service import hooks as uc
from jobyard.service.context import Services
from jobyard.wire.tasks import ArgumentsIn

router = APIRouter(prefix="/api/v1/hooks", tags=["hooks"])


def client_of(request: Request) -> str:
    """The caller's address: the peer's, or the one a trusted proxy forwarded (the app's
    ProxyHeadersMiddleware rewrites the peer only for JOBYARD_TRUSTED_PROXIES)."""
    return request.client.host if request.client else "unknown"


@router.post("/{secret}", status_code=201, summary="Run a task by its secret (no credential)")
async def run(
    secret: str, request: Request, body: Annotated[ArgumentsIn | None, Body()] = None
) -> Response:
    """Only the task's declared arguments are accepted. Failed attempts are rate-limited
    per client address (429 with Retry-After)."""
    svc: Services = request.app.state.services
    values = None
    if body is not None:
        values = body.arguments if body.arguments is not None else body.args
    try:
        view = await uc.run_by_secret(svc, secret, values, client=client_of(request))
    except RateLimited as exc:
        response = render_error(request, exc.status_code, exc.title, exc.detail, **exc.extra)
        response.headers["Retry-After"] = str(exc.extra.get("retry_after", 60))
        return response
    j = view.job
    return JSON(
        {
            "id": j.id,
            "name": j.name,
            "status": j.status.value,
            "task_id": j.task_id,
            "created_at": iso(j.created_at),
            "url": svc.url(f"/api/v1/jobs/{j.id}"),
        },
        status_code=201,
    )
