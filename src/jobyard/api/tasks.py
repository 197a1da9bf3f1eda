"""Native tasks API: /api/v1/tasks (definitions, runs, trigger secrets)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.domain.errors import Invalid
from jobyard.domain.policies import ConcurrencyPolicy, RetryPolicy
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Principal
from jobyard.domain.secrets import masked, secret_names
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Argument, Task, TaskSpec, TaskType
from jobyard.service import hooks
from jobyard.service import tasks as uc
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.service.secrets import with_sealed_env
from jobyard.wire.jobs import JobOut, PageOut, TargetIn
from jobyard.wire.tasks import ArgumentIn, RunIn, TaskIn, TaskPatch

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def target_in(body: TargetIn | None) -> Target | None:
    if body is None:
        return None
    return Target(
        nodes=tuple(body.nodes or ()),
        cluster=body.cluster,
        tags=tuple(body.tags or ()),
        count=body.count,
    )


def ident(value: str, what: str) -> int:
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise Invalid(f"{value!r} is not a {what} id", f"{what}_id")
    return int(value)


def job_out(svc: Services, view: JobView) -> dict[str, Any]:
    out = render.job(view, svc.settings.base_url)
    j = view.job
    out.update(kind=j.kind, state=j.state, result=j.result, arguments=masked(j.arguments))
    out.update(task_id=j.task_id, trigger_id=j.trigger_id)
    return out


def task_out(svc: Services, task: Task) -> dict[str, Any]:
    s = task.spec
    return {
        "id": task.id,
        "name": s.name,
        "type": s.type.value,
        "description": s.description,
        "command": s.command,
        "argv": list(s.argv) if s.argv is not None else None,
        "target": s.target.as_json() if s.target is not None else None,
        "quorum": s.quorum.render(),
        "run_timeout": s.run_timeout,
        "env": masked(s.env),
        "secret_env": secret_names(s.env),
        "dir": s.dir,
        "arguments": [masked(a.as_json()) for a in s.arguments],
        "approvers": list(s.approvers),
        "approve_label": s.approve_label,
        "reject_label": s.reject_label,
        "allow_self_approval": s.allow_self_approval,
        "message": s.message,
        "recipients": list(s.recipients),
        "cancellable": s.cancellable,
        "hold_timeout": s.hold_timeout,
        "retry": s.retry.as_json(),
        "concurrency": s.concurrency.as_json(),
        "has_secret": task.secret_prefix is not None,
        "secret_prefix": task.secret_prefix,
        "secret_rotated_at": iso(task.secret_rotated_at),
        "created_by": task.created_by,
        "created_at": iso(task.created_at),
        "updated_at": iso(task.updated_at),
        "url": svc.url(f"/api/v1/tasks/{task.id}"),
    }


def _type(value: str) -> TaskType:
    if value not in TaskType.__members__.values():
        raise Invalid(f"task type {value!r} is unknown: use one of {', '.join(TaskType)}", "type")
    return TaskType(value)


def _arguments(items: list[ArgumentIn | str]) -> tuple[Argument, ...]:
    return tuple(
        Argument.from_json(a if isinstance(a, str) else a.model_dump(exclude_none=True))
        for a in items
    )


async def _converted(svc: Services, who: Principal, body: TaskIn | TaskPatch) -> dict[str, Any]:
    """The fields given, as the domain types a TaskSpec holds."""
    given = body.model_fields_set if isinstance(body, TaskPatch) else set(type(body).model_fields)
    out: dict[str, Any] = {}
    for field in given:
        value = getattr(body, field)
        if field == "type":
            out[field] = _type(value)
        elif field == "target":
            out[field] = target_in(value)
        elif field == "argv":
            out[field] = tuple(value) if value is not None else None
        elif field == "quorum":
            out[field] = Quorum.parse(value)
        elif field == "arguments":
            out[field] = _arguments(value or [])
        elif field in ("approvers", "recipients"):
            out[field] = await uc.people(svc, who, value or [], field)
        elif field == "retry":
            out[field] = RetryPolicy.from_json(value)
        elif field == "concurrency":
            out[field] = ConcurrencyPolicy.from_json(value)
        elif field in ("env", "secret_env"):
            out[field] = dict(value or {})
        else:
            out[field] = value
    return out


@router.post("", status_code=201, summary="Define a task")
async def create(body: TaskIn, who: Who, svc: Svc) -> Response:
    given = await _converted(svc, who, body)
    with_sealed_env(svc.secrets, {}, given)
    spec = TaskSpec(**given)
    task = await uc.create_task(svc, who, spec)
    return JSON(
        task_out(svc, task), status_code=201, headers={"Location": f"/api/v1/tasks/{task.id}"}
    )


@router.get("", response_model=PageOut, summary="List tasks")
async def list_tasks(
    request: Request,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 20,
    type: str | None = None,
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.list_tasks(
        svc, who, type=_type(type).value if type else None, offset=offset, limit=limit
    )
    return JSON(render.paginated(request, result, page, limit, lambda t: task_out(svc, t)))


@router.get("/by-name/{name}", summary="The task with this name")
async def by_name(name: str, who: Who, svc: Svc) -> Response:
    return JSON(task_out(svc, await uc.get_task_by_name(svc, who, name)))


@router.get("/{task_id}", summary="Get a task")
async def get(task_id: str, who: Who, svc: Svc) -> Response:
    return JSON(task_out(svc, await uc.get_task(svc, who, ident(task_id, "task"))))


@router.patch("/{task_id}", summary="Change some fields of a task")
async def patch(task_id: str, body: TaskPatch, who: Who, svc: Svc) -> Response:
    changes = await _converted(svc, who, body)
    return JSON(task_out(svc, await uc.update_task(svc, who, ident(task_id, "task"), changes)))


@router.delete("/{task_id}", status_code=204, summary="Delete a task (its jobs stay)")
async def delete(task_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_task(svc, who, ident(task_id, "task"))
    return Response(status_code=204)


@router.post("/{task_id}/run", status_code=201, response_model=JobOut, summary="Run a task")
async def run(task_id: str, who: Who, svc: Svc, body: RunIn | None = None) -> Response:
    body = body or RunIn()
    view = await uc.run_task(
        svc,
        who,
        ident(task_id, "task"),
        body.arguments,
        target=target_in(body.target),
        stack_id=body.stack_id,
    )
    return JSON(
        job_out(svc, view), status_code=201, headers={"Location": f"/api/v1/jobs/{view.job.id}"}
    )


@router.post("/{task_id}/secret", summary="Make or rotate the task's trigger secret")
async def rotate_secret(task_id: str, who: Who, svc: Svc) -> Response:
    """Returns the secret once; the previous one stops working at once."""
    issued = await hooks.rotate_secret(svc, who, ident(task_id, "task"))
    return JSON(
        {
            "task_id": issued.task.id,
            "secret": issued.secret,
            "secret_prefix": issued.task.secret_prefix,
            "hook_url": svc.url(f"/api/v1/hooks/{issued.secret}"),
        }
    )


@router.delete("/{task_id}/secret", status_code=204, summary="Remove the task's trigger secret")
async def drop_secret(task_id: str, who: Who, svc: Svc) -> Response:
    await hooks.drop_secret(svc, who, ident(task_id, "task"))
    return Response(status_code=204)
