"""Native stacks API: /api/v1/stacks (a named target with environment, and what runs there)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.api.tasks import ident, job_out, target_in
from jobyard.domain.records import Principal
from jobyard.domain.triggers import Stack
from jobyard.service import stacks as uc
from jobyard.service.context import Services
from jobyard.wire.jobs import JobOut, PageOut
from jobyard.wire.tasks import ArgumentsIn, StackIn, StackPatch

router = APIRouter(prefix="/api/v1/stacks", tags=["stacks"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def stack_out(svc: Services, stack: Stack) -> dict[str, Any]:
    return {
        "id": stack.id,
        "name": stack.name,
        "description": stack.description,
        "target": stack.target.as_json(),
        "env": stack.env,
        "task_id": stack.task_id,
        "command": stack.command,
        "created_by": stack.created_by,
        "created_at": iso(stack.created_at),
        "updated_at": iso(stack.updated_at),
        "url": svc.url(f"/api/v1/stacks/{stack.id}"),
    }


@router.post("", status_code=201, summary="Define a stack")
async def create(body: StackIn, who: Who, svc: Svc) -> Response:
    target = target_in(body.target)
    assert target is not None
    stack = await uc.create_stack(
        svc,
        who,
        body.name,
        target,
        env=body.env,
        description=body.description,
        task_id=body.task_id,
        command=body.command,
    )
    return JSON(
        stack_out(svc, stack), status_code=201, headers={"Location": f"/api/v1/stacks/{stack.id}"}
    )


@router.get("", response_model=PageOut, summary="List stacks")
async def list_stacks(
    request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.list_stacks(svc, who, offset, limit)
    return JSON(render.paginated(request, result, page, limit, lambda s: stack_out(svc, s)))


@router.get("/by-name/{name}", summary="The stack with this name")
async def by_name(name: str, who: Who, svc: Svc) -> Response:
    return JSON(stack_out(svc, await uc.get_stack_by_name(svc, who, name)))


@router.get("/{stack_id}", summary="Get a stack")
async def get(stack_id: str, who: Who, svc: Svc) -> Response:
    return JSON(stack_out(svc, await uc.get_stack(svc, who, ident(stack_id, "stack"))))


@router.patch("/{stack_id}", summary="Change some fields of a stack")
async def patch(stack_id: str, body: StackPatch, who: Who, svc: Svc) -> Response:
    changes: dict[str, Any] = {f: getattr(body, f) for f in body.model_fields_set}
    if "target" in changes:
        changes["target"] = target_in(body.target)
    if "env" in changes:
        changes["env"] = dict(body.env or {})
    if "description" in changes:
        changes["description"] = body.description or ""
    stack = await uc.update_stack(svc, who, ident(stack_id, "stack"), changes)
    return JSON(stack_out(svc, stack))


@router.delete("/{stack_id}", status_code=204, summary="Delete a stack no trigger uses")
async def delete(stack_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_stack(svc, who, ident(stack_id, "stack"))
    return Response(status_code=204)


@router.post("/{stack_id}/run", status_code=201, response_model=JobOut, summary="Run a stack now")
async def run(stack_id: str, who: Who, svc: Svc, body: ArgumentsIn | None = None) -> Response:
    values = (body.arguments if body.arguments is not None else body.args) if body else None
    view = await uc.run_stack(svc, who, ident(stack_id, "stack"), values)
    return JSON(
        job_out(svc, view), status_code=201, headers={"Location": f"/api/v1/jobs/{view.job.id}"}
    )
