"""Definitions managed by files (``jobyard apply``): what they are, and recording them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.responses import Response

from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.domain.records import Principal
from jobyard.service import definitions as uc
from jobyard.service.context import Services
from jobyard.store.definitions import Managed
from jobyard.wire.definitions import Definitions

router = APIRouter(prefix="/api/v1", tags=["definitions"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


class ManagedIn(BaseModel):
    """The definitions files now manage, by kind (kinds left out stay as they are)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"source": "ops/jobyard.yaml", "kinds": {"tasks": ["deploy"]}}]
        },
    )
    source: Annotated[StrictStr, Field(max_length=1000)] = Field(
        description="The file that manages them, shown in the dashboard."
    )
    kinds: dict[StrictStr, list[StrictStr]] = Field(
        description="Names by kind (tasks, schedules, stacks, triggers) now managed by source."
    )


def managed_json(items: list[Managed]) -> list[dict[str, Any]]:
    return [
        {"kind": m.kind, "key": m.key, "source": m.source, "applied_at": iso(m.applied_at)}
        for m in items
    ]


@router.get("/definitions/managed", summary="Definitions that files manage (jobyard apply)")
async def list_managed(who: Who, svc: Svc, kind: str | None = None) -> Response:
    return JSON(managed_json(await uc.managed(svc, who, kind)))


@router.put("/definitions/managed", summary="Record which definitions files manage now")
async def put_managed(body: ManagedIn, who: Who, svc: Svc) -> Response:
    return JSON(managed_json(await uc.record_managed(svc, who, body.kinds, body.source)))


@router.get("/definitions/schema", summary="The JSON Schema of definition files")
async def definitions_schema() -> Response:
    return JSON(Definitions.model_json_schema())
