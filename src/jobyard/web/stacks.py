"""Stack pages: named places to run (a target with environment), optionally with a task
or a command of their own; created, changed, run and deleted from one page."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, JobyardError
from jobyard.domain.triggers import Stack
from jobyard.service import chains, feeds
from jobyard.service import clusters as cluster_uc
from jobyard.service import nodes as node_uc
from jobyard.service import stacks as uc
from jobyard.service import tasks as task_uc
from jobyard.web.forms import (
    env_of_form,
    env_text,
    raw_field,
    secret_env_text,
    target_from,
    target_values,
    target_words,
)
from jobyard.web.managed import managed_names
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 25


def _empty_values() -> dict[str, str]:
    return {
        "name": "",
        "description": "",
        **target_values(None),
        "env": "",
        "secret_env": "",
        "task_id": "",
        "command": "",
        "steps": "",
    }


async def _stacks_page(
    page: Page,
    *,
    error: str = "",
    field: str = "",
    values: dict[str, str] | None = None,
    editing: Stack | None = None,
    status_code: int = 200,
) -> Response:
    who = page.user
    n = page.number()
    found = await uc.list_stacks(page.svc, who, offset=(n - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    tasks = (await task_uc.list_tasks(page.svc, who, limit=100)).items
    nodes = await node_uc.list_nodes(page.svc, who)
    context: dict[str, Any] = {
        "stacks": found.items,
        "total": found.total,
        "n": n,
        "pages": max(1, -(-found.total // PAGE_SIZE)),
        "tasks": tasks,
        "task_names": {t.id: t.name for t in tasks},
        "where": target_words,
        "may_create": who.role.at_least(Role.USER),
        "error": error,
        "error_field": field,
        "values": values or _empty_values(),
        "editing": editing,
        "nodes": nodes,
        "clusters": [
            c for c in await cluster_uc.list_clusters(page.svc, who) if c.status != "terminated"
        ],
        "tags": sorted({t for node in nodes for t in node.tags}),
    }
    context["managed"] = await managed_names(page, "stacks")
    return await page.render("stacks.html", status_code=status_code, **context)


@router.get("/stacks")
async def stacks(page: Viewer) -> Response:
    return await _stacks_page(page)


def _posted(page: Page) -> dict[str, str]:
    values = {k: page.field(k) for k in _empty_values()}
    values["env"] = raw_field(page, "env")
    values["secret_env"] = raw_field(page, "secret_env")
    values["steps"] = raw_field(page, "steps")
    return values


def _changes(page: Page, values: dict[str, str], stored: dict[str, str]) -> dict[str, Any]:
    target = target_from(page)
    return {
        "name": values["name"],
        "description": values["description"],
        "target": target,
        "env": env_of_form(page, stored),
        "task_id": path_id(values["task_id"], "task") if values["task_id"] else None,
        "command": values["command"] or None,
        **_steps_from(values["steps"]),
    }


def _steps_from(text: str) -> dict[str, Any]:
    """The chain typed in the form: a JSON list of steps (empty: no chain)."""
    if not text.strip():
        return {"steps": None}
    try:
        parsed = json.loads(text)
    except ValueError as exc:
        raise Invalid(f"steps must be JSON: a list of steps ({exc})", "steps") from None
    return {"steps": parsed}


@router.post("/stacks")
async def create_stack(page: Poster) -> Response:
    values = _posted(page)
    try:
        changes = _changes(page, values, {})
        await uc.create_stack(
            page.svc,
            page.user,
            changes.pop("name"),
            changes.pop("target"),
            **changes,
        )
    except JobyardError as exc:
        return await _stacks_page(
            page,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            values=values,
            status_code=exc.status_code,
        )
    return page.redirect("/stacks", "saved")


def stack_values(stack: Stack) -> dict[str, str]:
    return {
        "name": stack.name,
        "description": stack.description,
        **target_values(stack.target.as_json()),
        "env": env_text(stack.env),
        "secret_env": secret_env_text(stack.env),
        "task_id": "" if stack.task_id is None else str(stack.task_id),
        "command": stack.command or "",
        "steps": json.dumps(
            [
                {k: v for k, v in st.as_json().items() if v is not None and v != "stop"}
                for st in stack.steps
            ]
        )
        if stack.steps
        else "",
    }


@router.get("/stacks/{stack_id}/edit")
async def edit_stack(page: Viewer, stack_id: str) -> Response:
    stack = await uc.get_stack(page.svc, page.user, path_id(stack_id, "stack"))
    return await _stacks_page(page, values=stack_values(stack), editing=stack)


@router.post("/stacks/{stack_id}")
async def update_stack(page: Poster, stack_id: str) -> Response:
    stack = await uc.get_stack(page.svc, page.user, path_id(stack_id, "stack"))
    values = _posted(page)
    try:
        await uc.update_stack(page.svc, page.user, stack.id, _changes(page, values, stack.env))
    except JobyardError as exc:
        return await _stacks_page(
            page,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            values=values,
            editing=stack,
            status_code=exc.status_code,
        )
    return page.redirect("/stacks", "saved")


@router.post("/stacks/{stack_id}/run")
async def run_stack(page: Poster, stack_id: str) -> Response:
    view = await uc.run_stack(page.svc, page.user, path_id(stack_id, "stack"))
    run_id = view.job.meta.get("stack_run")
    if run_id is not None:
        return page.redirect(f"/stack-runs/{run_id}")
    return page.redirect(f"/jobs/{view.job.id}")


@router.get("/stack-runs/{run_id}")
async def stack_run(page: Viewer, run_id: str) -> Response:
    """A stack run: the chain drawn step by step, each step's state kept live."""
    view = await chains.get_stack_run(page.svc, page.user, path_id(run_id, "stack run"))
    context: dict[str, Any] = {"view": view, "may_stop": page.user.role.at_least(Role.USER)}
    if page.fragment:
        return await page.render("_stack_run.html", **context)
    context["last_event_id"] = await feeds.last_event_id(page.svc)
    return await page.render("stack_run.html", **context)


@router.post("/stack-runs/{run_id}/stop")
async def stop_stack_run(page: Poster, run_id: str) -> Response:
    found = path_id(run_id, "stack run")
    await chains.stop_stack_run(page.svc, page.user, found)
    return page.redirect(f"/stack-runs/{found}")


@router.post("/stacks/{stack_id}/delete")
async def delete_stack(page: Poster, stack_id: str) -> Response:
    await uc.delete_stack(page.svc, page.user, path_id(stack_id, "stack"))
    return page.redirect("/stacks", "deleted")
