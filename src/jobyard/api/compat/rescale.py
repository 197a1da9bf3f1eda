"""Rescale dialect: /compat/rescale/api/ and /compat/rescale/api/v2/ (paths end with '/').

Jobs are saved without starting (a native draft) and submitted later; a job's
status history is the native history shown in Rescale's words (``domain/dialects/
rescale.py``); lists are ``{count, next, previous, results}`` with absolute links.
Errors are Django REST framework's: field → list of messages (400), else ``detail``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import errors, render
from jobyard.api.auth import principal, services
from jobyard.api.compat import base_url, integer, json_object, string_map, text
from jobyard.api.responses import JSON
from jobyard.domain.dialects import rescale
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.outcomes import run_failed
from jobyard.domain.records import Page, Principal, StoredFile
from jobyard.domain.targets import Target
from jobyard.service import accounts as accounts_uc
from jobyard.service import jobs as uc
from jobyard.service import outputs, sharing
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

PREFIXES = ("/compat/rescale/api", "/compat/rescale/api/v2")
router = APIRouter(tags=["dialect: Rescale"])
Who = Annotated[Principal, Depends(principal)]
Svc = Annotated[Services, Depends(services)]
DEFAULT_PAGE_SIZE = 10
MAX_WALLTIME_HOURS = 168
UNTITLED = "Untitled Job"
CUSTOM_ANALYSIS = "Custom User-Defined Software"
T = TypeVar("T")
H = TypeVar("H", bound=Callable[..., Any])


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    if status in (400, 409, 422):
        if extra.get("malformed"):
            return JSON({"detail": f"JSON parse error - {detail}"}, status_code=400)
        fields: dict[str, list[str]] = {}
        for err in extra.get("errors") or []:
            name = err.get("field") or "non_field_errors"
            fields.setdefault(name, []).append(err.get("message") or detail)
        return JSON(fields or {"non_field_errors": [detail]}, status_code=400)
    headers = {"WWW-Authenticate": "Token"} if status == 401 else None
    return JSON({"detail": detail}, status_code=status, headers=headers)


errors.register_renderer("/compat/rescale/", render_error)


def route(
    methods: list[str], path: str, *, status_code: int = 200, summary: str = ""
) -> Callable[[H], H]:
    """Register a handler under both API roots; a path without its final '/' works too."""

    def register(handler: H) -> H:
        for prefix in PREFIXES:
            for variant, shown in ((path, True), (path.rstrip("/"), False)):
                if not shown and (variant == path or not variant):
                    continue
                # One route per method: FastAPI names a route's operations after its
                # first method, so PUT and PATCH on one route get the same operation id.
                for method in methods:
                    router.add_api_route(
                        prefix + variant,
                        handler,
                        methods=[method],
                        status_code=status_code,
                        summary=summary,
                        include_in_schema=shown,
                        name=f"rescale_{handler.__name__}",
                    )
        return handler

    return register


def _id(text_id: str, what: str = "job") -> int:
    native = rescale.parse_id(text_id)
    if native is None:
        raise NotFound(f"no {what} '{text_id}'")
    return native


def _date(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _display(word: str) -> dict[str, Any]:
    label, use = rescale.LABELS[word]
    return {"content": word, "labelClass": label, "useLabel": use}


def _run_failed(view: JobView) -> bool:
    return run_failed(view.runs)


def _analyses(view: JobView) -> list[dict[str, Any]]:
    job = view.job
    stored = (job.meta.get("rescale") or {}).get("jobanalyses") or [{}]
    first = dict(stored[0])
    first["command"] = job.command
    first["envVars"] = dict(job.env)
    hardware = dict(first.get("hardware") or {})
    hardware["slots"] = job.target.get("count") or len(view.runs) or 1
    if job.run_timeout is not None:
        hardware["walltime"] = max(1, -(-job.run_timeout // 3600))
    first["hardware"] = hardware
    return [first, *stored[1:]]


def _analysis_names(view: JobView) -> list[str]:
    stored = (view.job.meta.get("rescale") or {}).get("jobanalyses") or []
    names = []
    for item in stored:
        analysis = item.get("analysis") if isinstance(item, dict) else None
        if isinstance(analysis, dict) and (analysis.get("name") or analysis.get("code")):
            names.append(str(analysis.get("name") or analysis.get("code")))
    return names or [CUSTOM_ANALYSIS]


class Renderer:
    """Renders jobs for one request: owners' emails and storage looked up once."""

    def __init__(
        self, owners: dict[int, str], storage: dict[int, int], shares: dict[int, list[str]]
    ) -> None:
        self.owners = owners
        self.storage = storage
        self.shares = shares

    @classmethod
    async def load(cls, svc: Services, who: Principal, views: Sequence[JobView]) -> Renderer:
        members = await accounts_uc.list_members(svc, who)
        storage = {}
        for view in views:
            files = await outputs.list_files(svc, who, view.job.id)
            storage[view.job.id] = sum(f.size for f in files)
        shares = await sharing.shared_with(svc, who, [v.job.id for v in views])
        return cls({m.user_id: m.email for m in members}, storage, shares)

    def summary(self, view: JobView) -> dict[str, Any]:
        job = view.job
        return {
            "clusterStatusDisplay": _display(rescale.cluster_current(job.status)),
            "dateInserted": _date(job.created_at),
            "name": job.name or UNTITLED,
            "analysisNames": _analysis_names(view),
            "storage": self.storage.get(job.id, 0),
            "jobStatus": _display(rescale.current(job.status, _run_failed(view))),
            "sharedWith": self.shares.get(job.id, []),
            "isVisible": True,
            "owner": self.owners.get(job.created_by or 0),
            "id": rescale.render_id(job.id),
        }

    def detail(self, view: JobView) -> dict[str, Any]:
        return {
            **self.summary(view),
            "description": view.job.description,
            "jobanalyses": _analyses(view),
            "jobvariables": [],
            "projectId": (view.job.meta.get("rescale") or {}).get("projectId"),
        }


async def _detail(svc: Services, who: Principal, view: JobView) -> dict[str, Any]:
    return (await Renderer.load(svc, who, [view])).detail(view)


def _page_params(request: Request, svc: Services) -> tuple[int, int, int]:
    q = request.query_params
    try:
        number = int(q.get("page", "1"))
        size = int(q.get("page_size", str(DEFAULT_PAGE_SIZE)))
    except ValueError:
        raise Invalid("page and page_size are whole numbers", "page") from None
    offset, limit = render.page_params(number, size, svc.settings.max_page_size)
    return number, offset, limit


def _paged(
    request: Request, svc: Services, items: Sequence[T], rendered: Callable[[T], Any]
) -> Response:
    number, offset, limit = _page_params(request, svc)
    page = Page(list(items[offset : offset + limit]), len(items))
    return JSON(render.paginated(request, page, number, limit, rendered))


# -- requests


def _analysis(body: dict[str, Any]) -> dict[str, Any]:
    analyses = body.get("jobanalyses")
    if not isinstance(analyses, list) or not analyses or not isinstance(analyses[0], dict):
        raise Invalid("jobanalyses must be a list with at least one analysis", "jobanalyses")
    first: dict[str, Any] = analyses[0]
    return first


def _hardware(analysis: dict[str, Any]) -> tuple[int, int | None]:
    hardware = analysis.get("hardware") or {}
    if not isinstance(hardware, dict):
        raise Invalid("hardware must be an object", "hardware")
    slots = integer(hardware, "slots")
    if slots is not None and slots < 1:
        raise Invalid("hardware.slots must be at least 1", "hardware")
    walltime = integer(hardware, "walltime")
    if walltime is not None and not 1 <= walltime <= MAX_WALLTIME_HOURS:
        raise Invalid(f"hardware.walltime is in hours, 1 to {MAX_WALLTIME_HOURS}", "hardware")
    return slots or 1, walltime


def _meta(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    mine = dict(current.get("rescale") or {})
    if "jobanalyses" in body:
        mine["jobanalyses"] = body["jobanalyses"]
    if "projectId" in body:
        mine["projectId"] = body["projectId"]
    return {**current, "rescale": mine}


def _spec(body: dict[str, Any]) -> JobSpec:
    analysis = _analysis(body)
    slots, walltime = _hardware(analysis)
    return JobSpec(
        target=Target(count=slots),
        command=text(analysis, "command", required=True) or "",
        name=text(body, "name") or UNTITLED,
        description=text(body, "description") or "",
        run_timeout=DEFAULT_RUN_TIMEOUT if walltime is None else walltime * 3600,
        env=string_map(analysis, "envVars", coerce=True) or {},
        meta=_meta(body, {}),
    )


def _changes(body: dict[str, Any], current: JobView) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = text(body, "name") or UNTITLED
    if "description" in body:
        changes["description"] = text(body, "description") or ""
    if "jobanalyses" in body:
        analysis = _analysis(body)
        slots, walltime = _hardware(analysis)
        if "command" in analysis:
            changes["command"] = text(analysis, "command", required=True)
            changes["argv"] = None
        if "envVars" in analysis:
            changes["env"] = string_map(analysis, "envVars", coerce=True) or {}
        if isinstance(analysis.get("hardware"), dict):
            hardware = analysis["hardware"]
            if "slots" in hardware and Target(count=slots).as_json() != current.job.target:
                changes["target"] = Target(count=slots)
            if walltime is not None and walltime * 3600 != current.job.run_timeout:
                changes["run_timeout"] = walltime * 3600
    if "jobanalyses" in body or "projectId" in body:
        changes["meta"] = _meta(body, current.job.meta)
    return changes


# -- routes


@route(["GET"], "/", summary="API root: answers 200 to a valid token")
async def root(request: Request, who: Who) -> Response:
    prefix = request.url.path.rstrip("/")
    return JSON(
        {
            "jobs": f"{base_url(request)}{prefix}/jobs/",
            "files": f"{base_url(request)}{prefix}/files/",
        }
    )


@route(["GET"], "/jobs/", summary="List jobs, newest first")
async def list_jobs(request: Request, who: Who, svc: Svc) -> Response:
    number, offset, limit = _page_params(request, svc)
    page = await uc.list_jobs(svc, who, JobFilter(), offset=offset, limit=limit)
    renderer = await Renderer.load(svc, who, page.items)
    return JSON(render.paginated(request, page, number, limit, renderer.summary))


@route(["POST"], "/jobs/", status_code=201, summary="Save a job without starting it")
async def create_job(request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.create_job(svc, who, _spec(await json_object(request)), draft=True)
    return JSON(await _detail(svc, who, view), status_code=201)


@route(["GET"], "/jobs/{job_id}/", summary="A job")
async def get_job(job_id: str, who: Who, svc: Svc) -> Response:
    return JSON(await _detail(svc, who, await uc.get_job(svc, who, _id(job_id))))


@route(["PUT", "PATCH"], "/jobs/{job_id}/", summary="Change a job (PUT or PATCH)")
async def update_job(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    native = _id(job_id)
    body = await json_object(request)
    current = await uc.get_job(svc, who, native)
    view = await uc.update_job(svc, who, native, _changes(body, current))
    return JSON(await _detail(svc, who, view))


@route(["DELETE"], "/jobs/{job_id}/", status_code=204, summary="Delete a saved or finished job")
async def delete_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_job(svc, who, _id(job_id))
    return Response(status_code=204)


@route(["POST"], "/jobs/{job_id}/submit/", summary="Submit a saved job")
async def submit_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.submit_job(svc, who, _id(job_id))
    return Response(status_code=200)


@route(["POST"], "/jobs/{job_id}/stop/", summary="Stop a job")
async def stop_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.stop_job(svc, who, _id(job_id), "User Terminated")
    return Response(status_code=200)


@route(["POST"], "/jobs/{job_id}/share/", summary="Share a job with a user, by email")
async def share_job(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    body = await json_object(request)
    email = text(body, "email", required=True) or ""
    await sharing.share_job(svc, who, _id(job_id), email, text(body, "message") or "")
    return Response(status_code=200)


def _steps(view: JobView, events: Sequence[Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for e in events:
        if e.to_status is None:
            continue
        status = JobStatus(e.to_status)
        for word, reason in rescale.trail(status, _run_failed(view)):
            steps.append(
                {"status": word, "statusDate": _date(e.created_at), "statusReason": reason}
            )
    steps.reverse()
    return steps


async def _history(svc: Services, who: Principal, job_id: int) -> tuple[JobView, list[Any]]:
    view = await uc.get_job(svc, who, job_id)
    events: list[Any] = []
    while True:
        page = await uc.job_history(svc, who, job_id, offset=len(events), limit=500)
        events.extend(page.items)
        if len(events) >= page.total or not page.items:
            return view, events


@route(["GET"], "/jobs/{job_id}/statuses/", summary="Status history, newest first")
async def statuses(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view, events = await _history(svc, who, _id(job_id))
    return _paged(request, svc, _steps(view, events), lambda s: s)


@route(["GET"], "/jobs/{job_id}/cluster_statuses/", summary="Cluster status history, newest first")
async def cluster_statuses(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    _view, events = await _history(svc, who, _id(job_id))
    steps: list[dict[str, Any]] = []
    for e in events:
        if e.to_status is None:
            continue
        for word in rescale.CLUSTER_TRAIL[JobStatus(e.to_status)]:
            if steps and steps[-1]["status"] == word:
                continue
            steps.append({"status": word, "statusDate": _date(e.created_at), "statusReason": None})
    steps.reverse()
    return _paged(request, svc, steps, lambda s: s)


def _file(request: Request, f: StoredFile) -> dict[str, Any]:
    file_id = rescale.render_id(f.id)
    root = request.url.path.split("/jobs/")[0].split("/files/")[0]
    return {
        "id": file_id,
        "name": f.name.rsplit("/", 1)[-1],
        "path": f"{f.node_name}/{f.name}",
        "relativePath": f"{f.node_name}/{f.name}",
        "dateUploaded": _date(f.created_at),
        "decryptedSize": f.size,
        "downloadUrl": f"{base_url(request)}{root}/files/{file_id}/contents/",
        "isUploaded": True,
        "md5": f.md5,
        "typeId": rescale.OUTPUT_FILE_TYPE,
    }


@route(["GET"], "/jobs/{job_id}/files/", summary="A job's output files")
async def job_files(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    files = await outputs.list_files(svc, who, _id(job_id))
    return _paged(request, svc, files, lambda f: _file(request, f))


@route(["GET"], "/files/{file_id}/", summary="An output file's description")
async def file_info(file_id: str, request: Request, who: Who, svc: Svc) -> Response:
    stored, _data = await outputs.read_file(svc, who, _id(file_id, "file"))
    return JSON(_file(request, stored))


@route(["GET"], "/files/{file_id}/contents/", summary="An output file's bytes")
async def file_contents(file_id: str, who: Who, svc: Svc) -> Response:
    stored, data = await outputs.read_file(svc, who, _id(file_id, "file"))
    name = stored.name.rsplit("/", 1)[-1].replace('"', "")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
