"""Native jobs API: /api/v1/jobs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.ids import parse_id
from jobyard.api.responses import JSON
from jobyard.domain.errors import Invalid
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.service import inputs
from jobyard.service import jobs as uc
from jobyard.service.context import Services
from jobyard.service.secrets import merge_env
from jobyard.store.jobs import SORTABLE, JobFilter
from jobyard.wire.jobs import JobIn, JobOut, JobPatch, PageOut, StopIn

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]


def target_of(body: JobIn | JobPatch) -> Target | None:
    nested = getattr(body, "target", None)
    if nested is not None:
        if any(x is not None for x in (body.nodes, body.cluster, body.tags, body.count)):
            raise Invalid("give the target either nested in 'target' or flat, not both", "target")
        return Target(
            nodes=tuple(nested.nodes or ()),
            cluster=nested.cluster,
            tags=tuple(nested.tags or ()),
            count=nested.count,
        )
    if all(x is None for x in (body.nodes, body.cluster, body.tags, body.count)):
        return None
    return Target(
        nodes=tuple(body.nodes or ()),
        cluster=body.cluster,
        tags=tuple(body.tags or ()),
        count=body.count,
    )


def spec_from(body: JobIn) -> JobSpec:
    target = target_of(body)
    if target is None:
        raise Invalid("a job needs a target: nodes, cluster or tags", "nodes")
    return JobSpec(
        target=target,
        command=body.command or "",
        argv=tuple(body.argv) if body.argv is not None else None,
        name=body.name,
        description=body.description,
        quorum=Quorum.parse(body.quorum),
        run_timeout=body.run_timeout if body.run_timeout is not None else 3600,
        env=body.env or {},
        dir=body.dir,
        capture_output=body.capture_output,
    )


def changes_from(body: JobPatch, *, full: bool) -> dict[str, Any]:
    fields = body.model_fields_set
    out: dict[str, Any] = {}
    target = target_of(body)
    if target is not None:
        out["target"] = target
    if "command" in fields or "argv" in fields or full:
        out["command"] = body.command or ""
        out["argv"] = tuple(body.argv) if body.argv is not None else None
    if "quorum" in fields or full:
        out["quorum"] = Quorum.parse(body.quorum)
    if "run_timeout" in fields or full:
        out["run_timeout"] = body.run_timeout if body.run_timeout is not None else 3600
    if "env" in fields or full:
        out["env"] = body.env or {}
    if "secret_env" in fields or full:
        out["secret_env"] = body.secret_env or {}
    if "dir" in fields or full:
        out["dir"] = body.dir
    if "capture_output" in fields or full:
        out["capture_output"] = True if body.capture_output is None else body.capture_output
    if "name" in fields or full:
        out["name"] = body.name
    if "description" in fields or full:
        out["description"] = body.description or ""
    if full and target is None:
        raise Invalid("PUT replaces the job: give its target (nodes, cluster or tags)", "nodes")
    return out


def _render(svc: Services) -> Any:
    base = svc.settings.base_url
    return lambda view: render.job(view, base)


@router.post("", status_code=201, response_model=JobOut, summary="Create a job (or save a draft)")
async def create(body: JobIn, who: Who, svc: Svc) -> Response:
    spec = spec_from(body)
    if body.secret_env or body.env:
        env = merge_env(svc.secrets, {}, body.env, body.secret_env)
        spec = dataclasses.replace(spec, env=env)
    files = await inputs.job_meta(svc, who, body.input_files, body.outputs)
    if files:
        spec = dataclasses.replace(spec, meta={**spec.meta, **files})
    allow = body.allow_unknown_nodes
    if allow is None:
        allow = svc.settings.allow_unknown_nodes
    view = await uc.create_job(svc, who, spec, draft=body.draft, known_nodes_only=not allow)
    return JSON(
        _render(svc)(view), status_code=201, headers={"Location": f"/api/v1/jobs/{view.job.id}"}
    )


def _parse_time(value: str | None, name: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"{name} must be an ISO 8601 time such as 2026-01-31T12:00:00Z", name
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@router.get("", response_model=PageOut, summary="List jobs")
async def list_jobs(
    request: Request,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 20,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    name: str | None = None,
    search: str | None = None,
    owner: Annotated[str | None, Query(description="a user id, or 'me'")] = None,
    node: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    updated_after: str | None = None,
    updated_before: str | None = None,
    sort: Annotated[str, Query(description="a field, '-' in front for descending")] = "-created_at",
) -> Response:
    return await job_page(
        request,
        who,
        svc,
        page=page,
        page_size=page_size,
        status=status,
        name=name,
        search=search,
        owner=owner,
        node=node,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        sort=sort,
    )


async def job_page(
    request: Request,
    who: Principal,
    svc: Services,
    *,
    page: int = 1,
    page_size: int = 20,
    status: str | None = None,
    name: str | None = None,
    search: str | None = None,
    owner: str | None = None,
    node: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    updated_after: str | None = None,
    updated_before: str | None = None,
    sort: str = "-created_at",
) -> Response:
    """A page of the caller's jobs (``GET /api/v1/jobs``, here or in api/hot.py)."""
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else []
    for s in statuses:
        if s not in JobStatus.__members__.values():
            raise Invalid(f"unknown status {s!r}: use one of {', '.join(JobStatus)}", "status")
    owner_id: int | None = None
    if owner == "me":
        owner_id = who.user_id
    elif owner is not None:
        owner_id = parse_id(owner, "owner", "a user")
    key = sort.lstrip("-")
    if key not in SORTABLE:
        raise Invalid(f"sort by one of {', '.join(sorted(SORTABLE))}", "sort")
    flt = JobFilter(
        statuses=statuses,
        name=name,
        name_contains=search,
        owner_id=owner_id,
        node=node,
        created_after=_parse_time(created_after, "created_after"),
        created_before=_parse_time(created_before, "created_before"),
        updated_after=_parse_time(updated_after, "updated_after"),
        updated_before=_parse_time(updated_before, "updated_before"),
    )
    result = await uc.list_jobs(
        svc, who, flt, sort=key, descending=sort.startswith("-"), offset=offset, limit=limit
    )
    return JSON(render.paginated(request, result, page, limit, _render(svc)))


# The list's query parameters, by name (api/hot.py reads them).
LIST_PARAMS = tuple(
    p.name
    for p in inspect.signature(job_page).parameters.values()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)


def _job_id(job_id: str) -> int:
    return parse_id(job_id, "job_id", "a job")


@router.get("/by-name/{name}", response_model=JobOut, summary="The newest job with this name")
async def by_name(name: str, who: Who, svc: Svc) -> Response:
    return JSON(_render(svc)(await uc.get_job_by_name(svc, who, name)))


@router.get("/{job_id}", response_model=JobOut, summary="Get a job")
async def get(job_id: str, who: Who, svc: Svc) -> Response:
    return await job_of(job_id, who, svc)


async def job_of(job_id: str, who: Principal, svc: Services) -> Response:
    """A job (``GET /api/v1/jobs/{job_id}``, here or in api/hot.py)."""
    return JSON(_render(svc)(await uc.get_job(svc, who, _job_id(job_id))))


@router.put("/{job_id}", response_model=JobOut, summary="Replace a job's definition")
async def put(job_id: str, body: JobPatch, who: Who, svc: Svc) -> Response:
    view = await uc.update_job(svc, who, _job_id(job_id), changes_from(body, full=True))
    return JSON(_render(svc)(view))


@router.patch("/{job_id}", response_model=JobOut, summary="Change some fields of a job")
async def patch(job_id: str, body: JobPatch, who: Who, svc: Svc) -> Response:
    view = await uc.update_job(svc, who, _job_id(job_id), changes_from(body, full=False))
    return JSON(_render(svc)(view))


@router.delete("/{job_id}", status_code=204, summary="Delete a draft or finished job")
async def delete(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_job(svc, who, _job_id(job_id))
    return Response(status_code=204)


@router.post("/{job_id}/submit", response_model=JobOut, summary="Submit a draft")
async def submit(job_id: str, who: Who, svc: Svc) -> Response:
    return JSON(_render(svc)(await uc.submit_job(svc, who, _job_id(job_id))))


@router.post("/{job_id}/stop", response_model=JobOut, summary="Stop a job")
async def stop(job_id: str, who: Who, svc: Svc, body: StopIn | None = None) -> Response:
    reason = body.reason if body else None
    return JSON(_render(svc)(await uc.stop_job(svc, who, _job_id(job_id), reason)))


@router.get("/{job_id}/history", response_model=PageOut, summary="Status history of a job")
async def history(
    request: Request,
    job_id: str,
    who: Who,
    svc: Svc,
    page: int = 1,
    page_size: int = 50,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
) -> Response:
    offset, limit = render.page_params(page, page_size, svc.settings.max_page_size)
    result = await uc.job_history(
        svc, who, _job_id(job_id), offset=offset, limit=limit, newest_first=order == "desc"
    )
    return JSON(render.paginated(request, result, page, limit, render.event))


@router.get("/{job_id}/runs", summary="Per-node runs of a job")
async def runs(job_id: str, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, _job_id(job_id))
    return JSON([render.node_run(r) for r in view.runs])
