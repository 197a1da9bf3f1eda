"""Native schedules API: /api/v1/schedules (and a preview of any timing's next times)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.api.tasks import ident
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Principal
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.domain.triggers import SavedSchedule
from jobyard.service import schedules as uc
from jobyard.service.context import Services
from jobyard.wire.jobs import PageOut
from jobyard.wire.tasks import ScheduleIn

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]
SHOWN = 5


def _kind(body: ScheduleIn) -> ScheduleKind:
    if body.kind is not None:
        if body.kind not in ScheduleKind.__members__.values():
            raise Invalid(
                f"schedule kind {body.kind!r} is unknown: use one of {', '.join(ScheduleKind)}",
                "kind",
            )
        return ScheduleKind(body.kind)
    given = [k for k, v in (("cron", body.cron), ("period", body.period), ("at", body.at)) if v]
    if len(given) != 1:
        raise Invalid("give exactly one of cron, period (seconds) or at (a moment)", "kind")
    return {"cron": ScheduleKind.CRON, "period": ScheduleKind.PERIOD, "at": ScheduleKind.ONCE}[
        given[0]
    ]


def schedule_of(body: ScheduleIn) -> Schedule:
    kind = _kind(body)
    extra = [
        k
        for k, v, kinds in (
            ("cron", body.cron, {ScheduleKind.CRON}),
            ("timezone", body.timezone, {ScheduleKind.CRON}),
            ("period", body.period, {ScheduleKind.PERIOD}),
            ("start", body.start, {ScheduleKind.PERIOD}),
            ("at", body.at, {ScheduleKind.ONCE}),
        )
        if v is not None and kind not in kinds
    ]
    if extra:
        raise Invalid(f"a {kind} schedule has no {extra[0]}", extra[0])
    return Schedule(
        kind=kind,
        cron=body.cron,
        timezone=body.timezone or "UTC",
        period=body.period,
        start=body.start,
        at=body.at,
    )


def schedule_out(svc: Services, saved: SavedSchedule) -> dict[str, Any]:
    s = saved.schedule
    return {
        "id": saved.id,
        "name": saved.name,
        **s.as_json(),
        "start": iso(s.start),
        "at": iso(s.at),
        "next_times": [iso(t) for t in s.next_times(SHOWN, svc.clock.now())],
        "created_by": saved.created_by,
        "created_at": iso(saved.created_at),
        "updated_at": iso(saved.updated_at),
        "url": svc.url(f"/api/v1/schedules/{saved.id}"),
    }


@router.post("", status_code=201, summary="Define a schedule")
async def create(body: ScheduleIn, who: Who, svc: Svc) -> Response:
    saved = await uc.create_schedule(svc, who, schedule_of(body), body.name)
    return JSON(
        schedule_out(svc, saved),
        status_code=201,
        headers={"Location": f"/api/v1/schedules/{saved.id}"},
    )


@router.post("/preview", summary="The next times of a timing, without saving it")
async def preview(body: ScheduleIn, who: Who, svc: Svc, n: int = 10) -> Response:
    times = uc.next_times(schedule_of(body), n, svc.clock.now())
    return JSON({"next_times": [iso(t) for t in times]})


@router.get("", response_model=PageOut, summary="List schedules")
async def list_schedules(
    request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.list_schedules(svc, who, offset, limit)
    return JSON(render.paginated(request, result, page, limit, lambda s: schedule_out(svc, s)))


@router.get("/{schedule_id}", summary="Get a schedule and its next times")
async def get(schedule_id: str, who: Who, svc: Svc) -> Response:
    return JSON(schedule_out(svc, await uc.get_schedule(svc, who, ident(schedule_id, "schedule"))))


@router.get("/{schedule_id}/next", summary="The next n fire times of a schedule")
async def next_times(schedule_id: str, who: Who, svc: Svc, n: int = 10) -> Response:
    saved = await uc.get_schedule(svc, who, ident(schedule_id, "schedule"))
    return JSON({"next_times": [iso(t) for t in uc.next_times(saved.schedule, n, svc.clock.now())]})


@router.patch("/{schedule_id}", summary="Change a schedule")
async def patch(schedule_id: str, body: ScheduleIn, who: Who, svc: Svc) -> Response:
    """Timing fields given replace the old ones; a new kind (or a timing field of another
    kind, such as ``period`` on a cron schedule) replaces the timing as a whole."""
    sid = ident(schedule_id, "schedule")
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set - {"name"}}
    if "kind" in changes:
        changes["kind"] = _kind(body)
    elif changes:
        current = (await uc.get_schedule(svc, who, sid)).schedule.kind
        named = {"cron": ScheduleKind.CRON, "period": ScheduleKind.PERIOD, "at": ScheduleKind.ONCE}
        other = [k for f, k in named.items() if changes.get(f) is not None and k is not current]
        if other:
            changes["kind"] = other[0]
    if "timezone" in changes and changes["timezone"] is None:
        changes["timezone"] = "UTC"
    saved = await uc.update_schedule(svc, who, sid, changes, body.name)
    return JSON(schedule_out(svc, saved))


@router.delete("/{schedule_id}", status_code=204, summary="Delete a schedule no trigger uses")
async def delete(schedule_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_schedule(svc, who, ident(schedule_id, "schedule"))
    return Response(status_code=204)
