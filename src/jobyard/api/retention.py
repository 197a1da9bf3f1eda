"""The organization's retention policy: how long finished jobs and their output stay."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON
from jobyard.domain.records import Principal
from jobyard.domain.retention import RetentionPolicy
from jobyard.service import retention as uc
from jobyard.service.context import Services
from jobyard.wire.values import Int64

router = APIRouter(prefix="/api/v1", tags=["accounts"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


class RetentionIn(BaseModel):
    """Days to keep finished jobs and their output; null keeps them forever."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"keep_jobs_days": 90, "keep_output_days": 14}]},
    )
    keep_jobs_days: Int64 | None = Field(
        default=None, description="Days a finished job is kept; null: for ever."
    )
    keep_output_days: Int64 | None = Field(
        default=None, description="Days a finished job's output and files are kept; null: for ever."
    )


def policy_json(policy: RetentionPolicy) -> dict[str, Any]:
    return {
        "keep_jobs_days": policy.keep_jobs_days,
        "keep_output_days": policy.keep_output_days,
    }


@router.get("/retention", summary="How long finished jobs and their output are kept")
async def get_retention(who: Who, svc: Svc) -> Response:
    return JSON(policy_json(await uc.get_policy(svc, who)))


@router.put("/retention", summary="Set how long finished jobs and their output are kept")
async def put_retention(body: RetentionIn, who: Who, svc: Svc) -> Response:
    policy = await uc.set_policy(svc, who, body.keep_jobs_days, body.keep_output_days)
    return JSON(policy_json(policy))
