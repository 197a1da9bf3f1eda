"""Native job actions of people: approve, reject, give input; and deleting finished history.

Routes live under /api/v1/jobs; this router is included before the jobs router so that
``DELETE /api/v1/jobs/finished`` is not taken for a job id.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.api.tasks import ident, job_out
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Principal
from jobyard.service import approvals as uc
from jobyard.service import history
from jobyard.service.context import Services
from jobyard.wire.jobs import JobOut
from jobyard.wire.tasks import ArgumentsIn, DecisionIn

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]

_DURATION = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(value: str, name: str) -> dt.timedelta:
    """Seconds, or a number with a unit: 90s, 15m, 12h, 30d, 2w."""
    match = _DURATION.match(value)
    if not match:
        raise Invalid(f"{name} is a duration such as 3600, 90m, 12h or 30d", name)
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@router.delete("/finished", summary="Delete finished jobs (admins)")
async def delete_finished(
    who: Who,
    svc: Svc,
    older_than: Annotated[
        str | None, Query(description="finished longer ago than this: 3600, 90m, 12h, 30d")
    ] = None,
    status: Annotated[str | None, Query(description="comma-separated finished statuses")] = None,
    task: Annotated[str | None, Query(description="only jobs of this task id")] = None,
) -> Response:
    """Deletes every finished job matching all the filters given, with its history."""
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else []
    deleted = await history.delete_finished_jobs(
        svc,
        who,
        older_than=duration(older_than, "older_than") if older_than is not None else None,
        statuses=statuses,
        task_id=ident(task, "task") if task is not None else None,
    )
    return JSON({"deleted": deleted})


@router.post("/{job_id}/approve", response_model=JobOut, summary="Approve an approval job")
async def approve(job_id: str, who: Who, svc: Svc, body: DecisionIn | None = None) -> Response:
    view = await uc.decide(svc, who, ident(job_id, "job"), True, body.comment if body else None)
    return JSON(job_out(svc, view))


@router.post("/{job_id}/reject", response_model=JobOut, summary="Reject an approval job")
async def reject(job_id: str, who: Who, svc: Svc, body: DecisionIn | None = None) -> Response:
    view = await uc.decide(svc, who, ident(job_id, "job"), False, body.comment if body else None)
    return JSON(job_out(svc, view))


@router.post("/{job_id}/input", response_model=JobOut, summary="Give a waiting job its input")
async def give_input(job_id: str, body: ArgumentsIn, who: Who, svc: Svc) -> Response:
    """An input job starts with these arguments; a running command that asked gets them."""
    values = body.arguments if body.arguments is not None else body.args
    view = await uc.give_input(svc, who, ident(job_id, "job"), values)
    return JSON(job_out(svc, view))


@router.get("/{job_id}/input", summary="Input a running job waits for")
async def pending_input(job_id: str, who: Who, svc: Svc) -> Response:
    requests = await uc.pending_input(svc, who, ident(job_id, "job"))
    return JSON(
        [
            {
                "id": r.id,
                "node": r.node_name,
                "prompt": r.prompt,
                "fields": r.fields,
                "status": r.status.value,
                "deadline": iso(r.deadline),
                "created_at": iso(r.created_at),
            }
            for r in requests
        ]
    )
