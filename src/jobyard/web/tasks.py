"""Task pages: the list, a task with its run form (generated from its argument schema),
and the form that defines or changes a task."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from jobyard.domain.accounts import Role
from jobyard.domain.errors import Invalid, JobyardError
from jobyard.domain.policies import Concurrency, ConcurrencyPolicy, RetryPolicy
from jobyard.domain.quorum import Quorum
from jobyard.domain.tasks import Argument, Task, TaskSpec, TaskType
from jobyard.service import accounts
from jobyard.service import clusters as cluster_uc
from jobyard.service import nodes as node_uc
from jobyard.service import tasks as uc
from jobyard.web.forms import (
    env_of_form,
    env_text,
    int_field,
    number_field,
    raw_field,
    secret_env_text,
    storable,
    target_from,
    target_values,
    target_words,
)
from jobyard.web.managed import managed_names
from jobyard.web.page import Page, PageRoute, Poster, Viewer, path_id
from jobyard.web.waiting import arguments_from

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 25
TYPE_WORDS = {
    "script": "runs a command",
    "input": "asks for input, then runs a command",
    "approval": "waits for an approver",
    "notification": "tells people",
}
ARGUMENTS_EXAMPLE = (
    '[{"name": "version", "label": "Version", "help": "e.g. 1.4.2"},\n'
    ' {"name": "env", "type": "select", "options": ["staging", "production"]}]'
)


@router.get("/tasks")
async def task_list(page: Viewer, type: str = "", n: int = 1) -> Response:
    who = page.user
    n = max(1, n)
    if type and type not in TaskType.__members__.values():
        raise Invalid(f"unknown task type {type!r}: use {', '.join(TaskType)}", "type")
    found = await uc.list_tasks(
        page.svc, who, type=type or None, offset=(n - 1) * PAGE_SIZE, limit=PAGE_SIZE
    )
    return await page.render(
        "tasks.html",
        tasks=found.items,
        total=found.total,
        n=n,
        pages=max(1, -(-found.total // PAGE_SIZE)),
        type=type,
        types=TYPE_WORDS,
        where=target_words,
        may_create=who.role.at_least(Role.USER),
        managed=await managed_names(page, "tasks"),
    )


# -- the definition form


def _people(page: Page, name: str) -> tuple[int, ...]:
    if page.form is None:
        return ()
    out = []
    for value in page.form.getlist(name):
        if not isinstance(value, str) or not (value.isascii() and value.isdigit()):
            raise Invalid(f"{name}: {value!r} is not a member", name)
        out.append(int(value))
    return tuple(out)


def _arguments(text: str) -> tuple[Argument, ...]:
    if not text.strip():
        return ()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(
            f"arguments are a JSON list (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            "arguments",
        ) from None
    if not isinstance(data, list):
        raise Invalid('arguments are a JSON list of objects such as {"name": "x"}', "arguments")
    storable(data, "arguments")
    return tuple(Argument.from_json(a) for a in data)


def spec_from_form(page: Page, stored: dict[str, str]) -> TaskSpec:
    """The task the form describes; Invalid naming the field when a value is wrong."""
    raw_type = page.field("type") or "script"
    if raw_type not in TaskType.__members__.values():
        raise Invalid(f"unknown task type {raw_type!r}", "type")
    kind = TaskType(raw_type)
    timeout = int_field(page, "run_timeout", "the timeout")
    attempts = int_field(page, "retry_attempts", "the number of attempts")
    backoff = number_field(page, "retry_backoff", "the wait between attempts")
    mode = page.field("concurrency") or "allow"
    if mode not in Concurrency.__members__.values():
        raise Invalid(f"unknown concurrency {mode!r}", "concurrency")
    limit = int_field(page, "concurrency_limit", "the concurrency limit")
    return TaskSpec(
        name=page.field("name"),
        type=kind,
        description=page.field("description"),
        command=page.field("command") if kind.runs_command else "",
        target=target_from(page, optional=True) if kind.runs_command else None,
        quorum=Quorum.parse(page.field("quorum") or None),
        run_timeout=timeout if timeout is not None else 3600,
        env=env_of_form(page, stored) if kind.runs_command else {},
        dir=(page.field("dir") or None) if kind.runs_command else None,
        arguments=_arguments(raw_field(page, "arguments")),
        approvers=_people(page, "approvers") if kind is TaskType.APPROVAL else (),
        approve_label=page.field("approve_label") or "Approve",
        reject_label=page.field("reject_label") or "Reject",
        allow_self_approval=page.field("allow_self_approval") == "1",
        message=page.field("message") if kind in (TaskType.APPROVAL, TaskType.NOTIFICATION) else "",
        recipients=_people(page, "recipients") if kind is TaskType.NOTIFICATION else (),
        cancellable=page.field("cancellable") == "1",
        hold_timeout=int_field(page, "hold_timeout", "the waiting limit"),
        retry=RetryPolicy.from_json(
            {"attempts": attempts or 1, **({"backoff": backoff} if backoff is not None else {})}
        ),
        concurrency=ConcurrencyPolicy.from_json(
            {"mode": mode, **({"limit": limit} if limit is not None else {})}
        ),
    )


def form_values(task: Task | None) -> dict[str, Any]:
    spec = task.spec if task is not None else None
    if spec is None:
        return {
            "name": "",
            "type": "script",
            "description": "",
            "command": "",
            **target_values(None, empty="none"),
            "quorum": "100%",
            "run_timeout": "3600",
            "env": "",
            "secret_env": "",
            "dir": "",
            "arguments": "",
            "approvers": [],
            "approve_label": "Approve",
            "reject_label": "Reject",
            "allow_self_approval": "",
            "message": "",
            "recipients": [],
            "cancellable": "1",
            "hold_timeout": "",
            "retry_attempts": "1",
            "retry_backoff": "10",
            "concurrency": "allow",
            "concurrency_limit": "1",
        }
    return {
        "name": spec.name,
        "type": spec.type.value,
        "description": spec.description,
        "command": spec.command,
        **target_values(spec.target.as_json() if spec.target else None, empty="none"),
        "quorum": spec.quorum.render(),
        "run_timeout": "" if spec.run_timeout is None else str(spec.run_timeout),
        "env": env_text(spec.env),
        "secret_env": secret_env_text(spec.env),
        "dir": spec.dir or "",
        "arguments": json.dumps([a.as_json() for a in spec.arguments], indent=1)
        if spec.arguments
        else "",
        "approvers": list(spec.approvers),
        "approve_label": spec.approve_label,
        "reject_label": spec.reject_label,
        "allow_self_approval": "1" if spec.allow_self_approval else "",
        "message": spec.message,
        "recipients": list(spec.recipients),
        "cancellable": "1" if spec.cancellable else "",
        "hold_timeout": "" if spec.hold_timeout is None else str(spec.hold_timeout),
        "retry_attempts": str(spec.retry.attempts),
        "retry_backoff": f"{spec.retry.backoff:g}",
        "concurrency": spec.concurrency.mode.value,
        "concurrency_limit": str(spec.concurrency.limit),
    }


def _posted_values(page: Page) -> dict[str, Any]:
    values: dict[str, Any] = {k: page.field(k) for k in form_values(None)}
    values["env"] = raw_field(page, "env")
    values["secret_env"] = raw_field(page, "secret_env")
    values["arguments"] = raw_field(page, "arguments")
    for name in ("approvers", "recipients"):
        posted = page.form.getlist(name) if page.form else []
        values[name] = [
            int(v) for v in posted if isinstance(v, str) and v.isascii() and v.isdigit()
        ]
    return values


async def _form_page(
    page: Page,
    values: dict[str, Any],
    *,
    task: Task | None = None,
    error: str = "",
    field: str = "",
    status_code: int = 200,
) -> Response:
    who = page.user
    nodes = await node_uc.list_nodes(page.svc, who)
    return await page.render(
        "task_form.html",
        status_code=status_code,
        task=task,
        values=values,
        error=error,
        error_field=field,
        nodes=nodes,
        clusters=[
            c for c in await cluster_uc.list_clusters(page.svc, who) if c.status != "terminated"
        ],
        tags=sorted({t for n in nodes for t in n.tags}),
        members=await accounts.list_members(page.svc, who),
        types=TYPE_WORDS,
        concurrency_modes=[c.value for c in Concurrency],
        arguments_example=ARGUMENTS_EXAMPLE,
    )


@router.get("/tasks/new")
async def new_task(page: Viewer) -> Response:
    return await _form_page(page, form_values(None))


@router.post("/tasks")
async def create_task(page: Poster) -> Response:
    try:
        task = await uc.create_task(page.svc, page.user, spec_from_form(page, {}))
    except JobyardError as exc:
        return await _form_page(
            page,
            _posted_values(page),
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            status_code=exc.status_code,
        )
    return page.redirect(f"/tasks/{task.id}", "saved")


@router.get("/tasks/{task_id}/edit")
async def edit_task(page: Viewer, task_id: str) -> Response:
    task = await uc.get_task(page.svc, page.user, path_id(task_id, "task"))
    return await _form_page(page, form_values(task), task=task)


@router.post("/tasks/{task_id}")
async def update_task(page: Poster, task_id: str) -> Response:
    tid = path_id(task_id, "task")
    task = await uc.get_task(page.svc, page.user, tid)
    try:
        spec = spec_from_form(page, task.spec.env)
        changes = {f.name: getattr(spec, f.name) for f in dataclasses.fields(TaskSpec)}
        await uc.update_task(page.svc, page.user, tid, changes)
    except JobyardError as exc:
        return await _form_page(
            page,
            _posted_values(page),
            task=task,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            status_code=exc.status_code,
        )
    return page.redirect(f"/tasks/{tid}", "saved")


@router.post("/tasks/{task_id}/delete")
async def delete_task(page: Poster, task_id: str) -> Response:
    await uc.delete_task(page.svc, page.user, path_id(task_id, "task"))
    return page.redirect("/tasks", "deleted")


# -- a task and its run form


async def _task_page(
    page: Page,
    task: Task,
    *,
    error: str = "",
    field: str = "",
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    who = page.user
    names = {
        m.user_id: m.display_name or m.email for m in await accounts.list_members(page.svc, who)
    }
    nodes = await node_uc.list_nodes(page.svc, who)
    return await page.render(
        "task.html",
        status_code=status_code,
        task=task,
        spec=task.spec,
        where=target_words(task.spec.target.as_json() if task.spec.target else None),
        names=names,
        error=error,
        error_field=field,
        values=values or {"args": {}, **target_values(None)},
        nodes=nodes,
        clusters=[
            c for c in await cluster_uc.list_clusters(page.svc, who) if c.status != "terminated"
        ],
        tags=sorted({t for n in nodes for t in n.tags}),
        may_run=who.role.at_least(Role.USER),
        may_change=who.role is Role.ADMIN
        or (who.role.at_least(Role.USER) and task.created_by == who.user_id),
        types=TYPE_WORDS,
    )


@router.get("/tasks/{task_id}")
async def task_page(page: Viewer, task_id: str) -> Response:
    return await _task_page(page, await uc.get_task(page.svc, page.user, path_id(task_id, "task")))


@router.post("/tasks/{task_id}/run")
async def run_task(page: Poster, task_id: str) -> Response:
    tid = path_id(task_id, "task")
    task = await uc.get_task(page.svc, page.user, tid)
    arguments = arguments_from(page.form)
    try:
        target = (
            target_from(page) if task.spec.type.runs_command and task.spec.target is None else None
        )
        view = await uc.run_task(page.svc, page.user, tid, arguments, target=target)
    except JobyardError as exc:
        values = {"args": arguments, **{k: page.field(k) for k in target_values(None)}}
        return await _task_page(
            page,
            task,
            error=exc.detail,
            field=getattr(exc, "field", None) or "",
            values=values,
            status_code=exc.status_code,
        )
    return page.redirect(f"/jobs/{view.job.id}")
