"""Schedule pages: reusable timing (cron in a time zone, a period, one moment) with its
next fire times; created, changed and deleted from one page."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, JobyardError
from jobyard.domain.schedules import Schedule, ScheduleKind, zone
from jobyard.domain.triggers import SavedSchedule
from jobyard.service import schedules as uc
from jobyard.web.forms import int_field
from jobyard.web.managed import managed_names
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id
from jobyard.web.rendering import seconds

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 25
NEXT = 3


def describe(schedule: Schedule) -> str:
    """A schedule in words."""
    if schedule.kind is ScheduleKind.CRON:
        return f"cron {schedule.cron} ({schedule.timezone})"
    if schedule.kind is ScheduleKind.PERIOD:
        return f"every {seconds(float(schedule.period or 0))}"
    return "once"


def local_moment(text: str, timezone: str, field: str) -> dt.datetime | None:
    """A moment typed as local time (a datetime-local field) in a time zone."""
    if not text:
        return None
    try:
        naive = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{text!r} is not a date and time such as 2026-01-31T12:00", field) from None
    if naive.tzinfo is not None:
        return naive
    return naive.replace(tzinfo=zone(timezone or "UTC"))


def schedule_from_form(page: Page) -> Schedule:
    kind = page.field("kind") or "cron"
    timezone = page.field("timezone") or "UTC"
    if kind == ScheduleKind.CRON:
        return Schedule(ScheduleKind.CRON, cron=page.field("cron"), timezone=timezone)
    if kind == ScheduleKind.PERIOD:
        return Schedule(
            ScheduleKind.PERIOD,
            period=int_field(page, "period", "the period"),
            start=local_moment(page.field("start"), timezone, "start"),
            timezone=timezone,
        )
    if kind == ScheduleKind.ONCE:
        return Schedule(
            ScheduleKind.ONCE,
            at=local_moment(page.field("at"), timezone, "at"),
            timezone=timezone,
        )
    raise Invalid(f"unknown kind of schedule {kind!r}", "kind")


FIELDS = ("name", "kind", "cron", "timezone", "period", "start", "at")


async def _schedules_page(
    page: Page,
    *,
    error: str = "",
    field: str = "",
    values: dict[str, str] | None = None,
    editing: SavedSchedule | None = None,
    status_code: int = 200,
) -> Response:
    who = page.user
    n = page.number()
    found = await uc.list_schedules(page.svc, who, offset=(n - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    now = page.svc.clock.now()
    context: dict[str, Any] = {
        "schedules": found.items,
        "total": found.total,
        "n": n,
        "pages": max(1, -(-found.total // PAGE_SIZE)),
        "upcoming": {s.id: s.schedule.next_times(NEXT, now) for s in found.items},
        "describe": describe,
        "may_create": who.role.at_least(Role.USER),
        "error": error,
        "error_field": field,
        "values": values or {**dict.fromkeys(FIELDS, ""), "kind": "cron", "timezone": "UTC"},
        "editing": editing,
    }
    context["managed"] = await managed_names(page, "schedules")
    return await page.render("schedules.html", status_code=status_code, **context)


@router.get("/schedules")
async def schedules(page: Viewer) -> Response:
    return await _schedules_page(page)


@router.post("/schedules")
async def create_schedule(page: Poster) -> Response:
    values = {k: page.field(k) for k in FIELDS}
    try:
        await uc.create_schedule(
            page.svc, page.user, schedule_from_form(page), values["name"] or None
        )
    except JobyardError as exc:
        return await _schedules_page(
            page,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            values=values,
            status_code=exc.status_code,
        )
    return page.redirect("/schedules", "saved")


def _local_text(moment: dt.datetime | None, timezone: str) -> str:
    """A moment as a datetime-local field shows it, in the schedule's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(zone(timezone)).strftime("%Y-%m-%dT%H:%M")


def schedule_values(saved: SavedSchedule) -> dict[str, str]:
    s = saved.schedule
    return {
        "name": saved.name or "",
        "kind": s.kind.value,
        "cron": s.cron or "",
        "timezone": s.timezone,
        "period": "" if s.period is None else str(s.period),
        "start": _local_text(s.start, s.timezone),
        "at": _local_text(s.at, s.timezone),
    }


@router.get("/schedules/{schedule_id}/edit")
async def edit_schedule(page: Viewer, schedule_id: str) -> Response:
    saved = await uc.get_schedule(page.svc, page.user, path_id(schedule_id, "schedule"))
    return await _schedules_page(page, values=schedule_values(saved), editing=saved)


@router.post("/schedules/{schedule_id}")
async def update_schedule(page: Poster, schedule_id: str) -> Response:
    saved = await uc.get_schedule(page.svc, page.user, path_id(schedule_id, "schedule"))
    values = {k: page.field(k) for k in FIELDS}
    try:
        new = schedule_from_form(page)
        changes = {f.name: getattr(new, f.name) for f in dataclasses.fields(Schedule)}
        await uc.update_schedule(page.svc, page.user, saved.id, changes, values["name"] or None)
    except JobyardError as exc:
        return await _schedules_page(
            page,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            values=values,
            editing=saved,
            status_code=exc.status_code,
        )
    return page.redirect("/schedules", "saved")


@router.post("/schedules/{schedule_id}/delete")
async def delete_schedule(page: Poster, schedule_id: str) -> Response:
    await uc.delete_schedule(page.svc, page.user, path_id(schedule_id, "schedule"))
    return page.redirect("/schedules", "deleted")
