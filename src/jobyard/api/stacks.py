"""Native stacks API: /api/v1/stacks (a named target with environment, and what runs there:
one task or command, or a chain of steps) and /api/v1/stack-runs (runs of chains)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.responses import JSON, iso
from jobyard.api.tasks import ident, job_out, target_in
from jobyard.domain.chains import StackRun
from jobyard.domain.errors import Invalid
from jobyard.domain.records import Principal
from jobyard.domain.secrets import masked, secret_names
from jobyard.domain.triggers import Stack
from jobyard.service import chains
from jobyard.service import stacks as uc
from jobyard.service.context import Services
from jobyard.service.secrets import merge_env
from jobyard.wire.jobs import JobOut, PageOut, StopIn
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
        "env": masked(stack.env),
        "secret_env": secret_names(stack.env),
        "task_id": stack.task_id,
        "command": stack.command,
        "steps": [masked(s.as_json()) for s in stack.steps],
        "on_failure": stack.on_failure.as_json() if stack.on_failure else None,
        "public": stack.public,
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
        env=merge_env(svc.secrets, {}, body.env, body.secret_env),
        description=body.description,
        task_id=body.task_id,
        command=body.command,
        steps=body.steps,
        on_failure=body.on_failure,
        extra={"public": body.public},
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
    if "secret_env" in changes:
        changes["secret_env"] = dict(body.secret_env or {})
    if "description" in changes:
        changes["description"] = body.description or ""
    if "public" in changes:
        changes["public"] = bool(body.public)
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
    out = job_out(svc, view)
    run_id = view.job.meta.get("stack_run")
    out["stack_run_id"] = run_id
    if run_id is not None:
        out["stack_run_url"] = svc.url(f"/api/v1/stack-runs/{run_id}")
    return JSON(out, status_code=201, headers={"Location": f"/api/v1/jobs/{view.job.id}"})


@router.post("/{stack_id}/runs", status_code=201, summary="Run a chained stack: its stack run")
async def start_run(stack_id: str, who: Who, svc: Svc) -> Response:
    view = await uc.run_stack(svc, who, ident(stack_id, "stack"))
    run_id = view.job.meta.get("stack_run")
    if run_id is None:
        raise Invalid(
            "this stack runs one task or command, not a chain: POST /api/v1/stacks/{id}/run",
            "stack_id",
        )
    found = await chains.get_stack_run(svc, who, run_id)
    return JSON(
        stack_run_out(svc, found),
        status_code=201,
        headers={"Location": f"/api/v1/stack-runs/{run_id}"},
    )


@router.get("/{stack_id}/runs", response_model=PageOut, summary="The runs of a stack")
async def runs_of_stack(
    stack_id: str, request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    native = ident(stack_id, "stack")
    await uc.get_stack(svc, who, native)
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await chains.list_stack_runs(svc, who, offset, limit, native)
    return JSON(render.paginated(request, result, page, limit, lambda r: run_row(svc, r)))


def run_row(svc: Services, run: StackRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "stack_id": run.stack_id,
        "stack": run.stack_name,
        "status": run.status.value,
        "reason": run.reason,
        "trigger_id": run.trigger_id,
        "created_by": run.created_by,
        "actor": run.actor,
        "created_at": iso(run.created_at),
        "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at) if run.finished_at else None,
        "url": svc.url(f"/api/v1/stack-runs/{run.id}"),
    }


def stack_run_out(svc: Services, view: chains.StackRunView) -> dict[str, Any]:
    out = run_row(svc, view.run)
    out["steps"] = [
        {
            "index": s.idx,
            "name": s.step.name,
            "task_id": s.step.task_id,
            "task": s.task,
            "on_failure": s.step.on_failure.value,
            "on_failure_step": s.on_failure_step,
            "state": s.state.value,
            "job_id": s.job.id if s.job else None,
            "job_status": s.job.status.value if s.job else None,
            "job_url": svc.url(f"/api/v1/jobs/{s.job.id}") if s.job else None,
        }
        for s in view.steps
    ]
    return out


runs_router = APIRouter(prefix="/api/v1/stack-runs", tags=["stacks"])


@runs_router.get("", response_model=PageOut, summary="Runs of chained stacks, newest first")
async def list_runs(
    request: Request, who: Who, svc: Svc, page: int = 1, page_size: int = 20
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await chains.list_stack_runs(svc, who, offset, limit)
    return JSON(render.paginated(request, result, page, limit, lambda r: run_row(svc, r)))


@runs_router.get("/{run_id}", summary="A stack run: its status and each step's state")
async def get_run(run_id: str, who: Who, svc: Svc) -> Response:
    return JSON(stack_run_out(svc, await chains.get_stack_run(svc, who, ident(run_id, "run"))))


@runs_router.get("/{run_id}/events", summary="A stack run's history (its events)")
async def run_events(run_id: str, who: Who, svc: Svc) -> Response:
    found = await chains.stack_run_history(svc, who, ident(run_id, "run"))
    return JSON(
        [
            {
                "id": e.id,
                "type": e.type,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "job_id": e.job_id,
                "actor": e.actor,
                "reason": e.reason,
                "data": e.data,
                "at": iso(e.created_at),
            }
            for e in found
        ]
    )


@runs_router.post("/{run_id}/stop", summary="Stop a stack run: abort its step, skip the rest")
async def stop_run(run_id: str, who: Who, svc: Svc, body: StopIn | None = None) -> Response:
    reason = body.reason if body else None
    view = await chains.stop_stack_run(svc, who, ident(run_id, "run"), reason)
    return JSON(stack_run_out(svc, view))
