"""Trigger pages: a task or a stack on a schedule; enable, disable, run now, delete (queued
while a run is due), and the slots each trigger fired or skipped."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, JobyardError
from jobyard.domain.policies import CatchUp, Concurrency, ConcurrencyPolicy
from jobyard.domain.triggers import Trigger
from jobyard.service import schedules as schedule_uc
from jobyard.service import stacks as stack_uc
from jobyard.service import tasks as task_uc
from jobyard.service import triggers as uc
from jobyard.web.forms import raw_field, storable
from jobyard.web.managed import managed_names
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id
from jobyard.web.schedules import describe

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 25
FIELDS = ("name", "task_id", "stack_id", "schedule_id", "enabled", "overlap", "catch_up")


async def _choices(page: Page) -> dict[str, Any]:
    who = page.user
    tasks = (await task_uc.list_tasks(page.svc, who, limit=100)).items
    stacks = (await stack_uc.list_stacks(page.svc, who, limit=100)).items
    schedules = (await schedule_uc.list_schedules(page.svc, who, limit=100)).items
    return {
        "tasks": tasks,
        "stacks": stacks,
        "schedules": schedules,
        "task_names": {t.id: t.name for t in tasks},
        "stack_names": {s.id: s.name for s in stacks},
        "schedule_words": {
            s.id: (s.name + ": " if s.name else "") + describe(s.schedule) for s in schedules
        },
    }


async def _triggers_page(
    page: Page,
    *,
    error: str = "",
    field: str = "",
    values: dict[str, str] | None = None,
    arguments: str = "",
    editing: Trigger | None = None,
    status_code: int = 200,
) -> Response:
    who = page.user
    n = page.number()
    found = await uc.list_triggers(page.svc, who, offset=(n - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    context: dict[str, Any] = {
        **await _choices(page),
        "triggers": found.items,
        "total": found.total,
        "n": n,
        "pages": max(1, -(-found.total // PAGE_SIZE)),
        "may_create": who.role.at_least(Role.USER),
        "modes": [c.value for c in Concurrency],
        "catch_ups": [c.value for c in CatchUp],
        "error": error,
        "error_field": field,
        "values": values
        or {**dict.fromkeys(FIELDS, ""), "enabled": "1", "overlap": "allow", "catch_up": "skip"},
        "arguments": arguments,
        "editing": editing,
    }
    context["managed"] = await managed_names(page, "triggers")
    return await page.render("triggers.html", status_code=status_code, **context)


@router.get("/triggers")
async def triggers(page: Viewer) -> Response:
    return await _triggers_page(page)


def _optional_id(raw: str, noun: str) -> int | None:
    return path_id(raw, noun) if raw else None


def _arguments(page: Page) -> Any:
    text = raw_field(page, "arguments").strip()
    try:
        return storable(json.loads(text), "arguments") if text else None
    except json.JSONDecodeError:
        raise Invalid(
            'arguments are a JSON object such as {"version": "1.2"}', "arguments"
        ) from None


def _changes(page: Page, values: dict[str, str]) -> dict[str, Any]:
    if not values["schedule_id"]:
        raise Invalid("choose a schedule (create one on the Schedules page)", "schedule_id")
    if values["catch_up"] and values["catch_up"] not in CatchUp.__members__.values():
        raise Invalid(f"unknown catch-up policy {values['catch_up']!r}", "catch_up")
    return {
        "schedule_id": path_id(values["schedule_id"], "schedule"),
        "task_id": _optional_id(values["task_id"], "task"),
        "stack_id": _optional_id(values["stack_id"], "stack"),
        "name": values["name"] or None,
        "enabled": values["enabled"] == "1",
        "overlap": ConcurrencyPolicy.from_json(values["overlap"] or "allow", "overlap"),
        "catch_up": CatchUp(values["catch_up"] or "skip"),
        "arguments": _arguments(page),
    }


async def _failed(
    page: Page, exc: JobyardError, values: dict[str, str], editing: Trigger | None = None
) -> Response:
    return await _triggers_page(
        page,
        error=exc.detail,
        field=getattr(exc, "field", None) or "",
        values=values,
        arguments=raw_field(page, "arguments"),
        editing=editing,
        status_code=exc.status_code,
    )


@router.post("/triggers")
async def create_trigger(page: Poster) -> Response:
    values = {k: page.field(k) for k in FIELDS}
    try:
        await uc.create_trigger(page.svc, page.user, **_changes(page, values))
    except JobyardError as exc:
        return await _failed(page, exc, values)
    return page.redirect("/triggers", "saved")


@router.get("/triggers/{trigger_id}/edit")
async def edit_trigger(page: Viewer, trigger_id: str) -> Response:
    trigger = await uc.get_trigger(page.svc, page.user, path_id(trigger_id, "trigger"))
    values = {
        "name": trigger.name or "",
        "task_id": "" if trigger.task_id is None else str(trigger.task_id),
        "stack_id": "" if trigger.stack_id is None else str(trigger.stack_id),
        "schedule_id": str(trigger.schedule_id),
        "enabled": "1" if trigger.enabled else "",
        "overlap": trigger.overlap.mode.value,
        "catch_up": CatchUp(trigger.catch_up).value,
    }
    arguments = json.dumps(trigger.arguments) if trigger.arguments else ""
    return await _triggers_page(page, values=values, arguments=arguments, editing=trigger)


@router.post("/triggers/{trigger_id}")
async def update_trigger(page: Poster, trigger_id: str) -> Response:
    trigger = await uc.get_trigger(page.svc, page.user, path_id(trigger_id, "trigger"))
    values = {k: page.field(k) for k in FIELDS}
    try:
        changes = _changes(page, values)
        if changes["arguments"] is None:
            changes["arguments"] = {}
        await uc.update_trigger(page.svc, page.user, trigger.id, changes)
    except JobyardError as exc:
        return await _failed(page, exc, values, trigger)
    return page.redirect(f"/triggers/{trigger.id}", "saved")


@router.get("/triggers/{trigger_id}")
async def trigger_page(page: Viewer, trigger_id: str) -> Response:
    who = page.user
    trigger = await uc.get_trigger(page.svc, who, path_id(trigger_id, "trigger"))
    fires = await uc.trigger_fires(page.svc, who, trigger.id, limit=50)
    schedule = await schedule_uc.get_schedule(page.svc, who, trigger.schedule_id)
    return await page.render(
        "trigger.html",
        **await _choices(page),
        trigger=trigger,
        fires=fires.items,
        schedule=schedule,
        describe=describe,
        upcoming=schedule.schedule.next_times(3, page.svc.clock.now()) if trigger.enabled else [],
        may_change=who.role.at_least(Role.USER),
    )


@router.post("/triggers/{trigger_id}/enable")
async def enable(page: Poster, trigger_id: str) -> Response:
    tid = path_id(trigger_id, "trigger")
    on = page.field("enabled") == "1"
    await uc.update_trigger(page.svc, page.user, tid, {"enabled": on})
    return page.redirect(f"/triggers/{tid}", "saved")


@router.post("/triggers/{trigger_id}/run")
async def run_now(page: Poster, trigger_id: str) -> Response:
    view = await uc.run_trigger(page.svc, page.user, path_id(trigger_id, "trigger"))
    return page.redirect(f"/jobs/{view.job.id}")


@router.post("/triggers/{trigger_id}/delete")
async def delete(page: Poster, trigger_id: str) -> Response:
    tid = path_id(trigger_id, "trigger")
    outcome = await uc.delete_trigger(page.svc, page.user, tid)
    if outcome is uc.Deletion.QUEUED:
        return page.redirect(f"/triggers/{tid}", "queued_for_deletion")
    return page.redirect("/triggers", "deleted")
