"""Native triggers API: /api/v1/triggers (a task or stack on a schedule)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.api.tasks import ident, job_out
from jobyard.domain.errors import Invalid
from jobyard.domain.policies import CatchUp, ConcurrencyPolicy
from jobyard.domain.records import Principal
from jobyard.domain.secrets import masked
from jobyard.domain.triggers import Fire, Trigger
from jobyard.service import triggers as uc
from jobyard.service.context import Services
from jobyard.wire.jobs import JobOut, PageOut
from jobyard.wire.tasks import TriggerIn, TriggerPatch

router = APIRouter(prefix="/api/v1/triggers", tags=["triggers"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def trigger_out(svc: Services, t: Trigger) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "task_id": t.task_id,
        "stack_id": t.stack_id,
        "schedule_id": t.schedule_id,
        "enabled": t.enabled,
        "overlap": t.overlap.as_json(),
        "catch_up": t.catch_up.value,
        "catch_up_window": t.catch_up_window,
        "arguments": masked(t.arguments),
        "queued_for_deletion": t.do_del,
        "next_fire_at": iso(t.next_fire_at),
        "last_slot": iso(t.last_slot),
        "created_by": t.created_by,
        "created_at": iso(t.created_at),
        "updated_at": iso(t.updated_at),
        "url": svc.url(f"/api/v1/triggers/{t.id}"),
    }


def fire_out(f: Fire) -> dict[str, Any]:
    return {
        "slot": iso(f.slot_time),
        "outcome": f.outcome.value,
        "job_id": f.job_id,
        "reason": f.reason,
        "created_at": iso(f.created_at),
    }


def _catch_up(value: str) -> CatchUp:
    if value not in CatchUp.__members__.values():
        raise Invalid(f"catch_up {value!r} is unknown: use one of {', '.join(CatchUp)}", "catch_up")
    return CatchUp(value)


@router.post("", status_code=201, summary="Put a task or stack on a schedule")
async def create(body: TriggerIn, who: Who, svc: Svc) -> Response:
    trigger = await uc.create_trigger(
        svc,
        who,
        schedule_id=body.schedule_id,
        task_id=body.task_id,
        stack_id=body.stack_id,
        name=body.name,
        enabled=body.enabled,
        overlap=ConcurrencyPolicy.from_json(body.overlap, "overlap"),
        catch_up=_catch_up(body.catch_up),
        catch_up_window=body.catch_up_window,
        arguments=body.arguments,
    )
    return JSON(
        trigger_out(svc, trigger),
        status_code=201,
        headers={"Location": f"/api/v1/triggers/{trigger.id}"},
    )


@router.get("", response_model=PageOut, summary="List triggers")
async def list_triggers(
    request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.list_triggers(svc, who, offset, limit)
    return JSON(render.paginated(request, result, page, limit, lambda t: trigger_out(svc, t)))


@router.get("/by-name/{name}", summary="The trigger with this name")
async def by_name(name: str, who: Who, svc: Svc) -> Response:
    return JSON(trigger_out(svc, await uc.get_trigger_by_name(svc, who, name)))


@router.get("/{trigger_id}", summary="Get a trigger")
async def get(trigger_id: str, who: Who, svc: Svc) -> Response:
    return JSON(trigger_out(svc, await uc.get_trigger(svc, who, ident(trigger_id, "trigger"))))


@router.patch("/{trigger_id}", summary="Change some fields of a trigger")
async def patch(trigger_id: str, body: TriggerPatch, who: Who, svc: Svc) -> Response:
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set}
    if "overlap" in changes:
        changes["overlap"] = ConcurrencyPolicy.from_json(body.overlap, "overlap")
    if "catch_up" in changes:
        changes["catch_up"] = _catch_up(body.catch_up or "")
    trigger = await uc.update_trigger(svc, who, ident(trigger_id, "trigger"), changes)
    return JSON(trigger_out(svc, trigger))


@router.delete("/{trigger_id}", summary="Delete a trigger (queued while a run is due)")
async def delete(trigger_id: str, who: Who, svc: Svc, now: bool = False) -> Response:
    """An enabled trigger with a next run is deleted at that time instead of running
    (``202 {"queued_for_deletion": id}``); otherwise, or with ``now=true``, at once
    (``200 {"deleted": id}``)."""
    tid = ident(trigger_id, "trigger")
    outcome = await uc.delete_trigger(svc, who, tid, now=now)
    status = 202 if outcome is uc.Deletion.QUEUED else 200
    return JSON({outcome.value: tid}, status_code=status)


@router.post(
    "/{trigger_id}/run", status_code=201, response_model=JobOut, summary="Run a trigger now"
)
async def run(trigger_id: str, who: Who, svc: Svc) -> Response:
    view = await uc.run_trigger(svc, who, ident(trigger_id, "trigger"))
    return JSON(
        job_out(svc, view), status_code=201, headers={"Location": f"/api/v1/jobs/{view.job.id}"}
    )


@router.get("/{trigger_id}/fires", response_model=PageOut, summary="Slots a trigger handled")
async def fires(
    request: Request, trigger_id: str, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.trigger_fires(svc, who, ident(trigger_id, "trigger"), offset, limit)
    return JSON(render.paginated(request, result, page, limit, fire_out))
