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

from jobyard.api import render
from jobyard.api.auth import principal, services
from jobyard.api.compat import base_url, integer, json_object, string_map, text
from jobyard.api.files import receive_upload
from jobyard.api.responses import JSON
from jobyard.api.streams import download
from jobyard.domain.dialects import rescale
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.outcomes import run_failed
from jobyard.domain.records import Page, Principal, StoredFile
from jobyard.domain.targets import Target
from jobyard.service import accounts as accounts_uc
from jobyard.service import clusters as clusters_uc
from jobyard.service import inputs, outputs, sharing
from jobyard.service import jobs as uc
from jobyard.service import nodes as nodes_uc
from jobyard.service import tasks as tasks_uc
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
CUSTOM_CODE = "user_included"
CUSTOM_VERSION = "0"
TASK_VERSION = "latest"
ANY_CORE = "any"
INPUT_FILE_TYPE = 1
INVALID_PAGE = "Invalid page."
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


# Failures under this prefix are answered by render_error (composed in api/app.py).
ERRORS_UNDER = "/compat/rescale/"


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


def _input_json(base: str, d: dict[str, Any]) -> dict[str, Any]:
    file_id = rescale.render_id(int(d["id"]))
    return {
        "id": file_id,
        "name": d.get("name"),
        "decryptedSize": d.get("size"),
        "typeId": INPUT_FILE_TYPE,
        "isUploaded": True,
        "downloadUrl": f"{base}/files/{file_id}/contents/",
    }


def _analyses(view: JobView, base: str) -> list[dict[str, Any]]:
    job = view.job
    stored = (job.meta.get("rescale") or {}).get("jobanalyses") or [{}]
    first = dict(stored[0])
    first["command"] = job.command
    first["envVars"] = dict(job.env)
    first["inputFiles"] = [_input_json(base, d) for d in job.meta.get("input_files") or []]
    first.setdefault("useMpi", False)
    first.setdefault("templateTasks", [])
    first.setdefault("flags", {})
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
        self,
        owners: dict[int, str],
        storage: dict[int, int],
        shares: dict[int, list[str]],
        base: str = "",
    ) -> None:
        self.owners = owners
        self.storage = storage
        self.shares = shares
        self.base = base  # the API root, for file links

    @classmethod
    async def load(
        cls, svc: Services, who: Principal, views: Sequence[JobView], base: str = ""
    ) -> Renderer:
        members = await accounts_uc.list_members(svc, who)
        storage = {}
        for view in views:
            files = await outputs.list_files(svc, who, view.job.id)
            storage[view.job.id] = sum(f.size for f in files)
        shares = await sharing.shared_with(svc, who, [v.job.id for v in views])
        return cls({m.user_id: m.email for m in members}, storage, shares, base)

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
        mine = view.job.meta.get("rescale") or {}
        return {
            **self.summary(view),
            "description": view.job.description,
            "jobanalyses": _analyses(view, self.base),
            "jobvariables": [],
            "projectId": mine.get("projectId"),
            # Fields of Rescale's job that jobyard has no use for, at their neutral values.
            "paramFile": None,
            "caseFile": None,
            "isTemplateDryRun": False,
            "includeNominalRun": False,
            "monteCarlo": False,
            "isLowPriority": bool(mine.get("isLowPriority", False)),
            "archiveFilters": [],
            "resourceFilters": [],
            "expectedRuns": len(view.runs) or None,
            "autoTerminateCluster": True,
        }


def _root(request: Request) -> str:
    """This request's API root (``/compat/rescale/api`` or ``.../api/v2``), absolute."""
    path = request.url.path
    prefix = PREFIXES[1] if path.startswith(PREFIXES[1]) else PREFIXES[0]
    return f"{base_url(request)}{prefix}"


async def _detail(svc: Services, who: Principal, view: JobView, request: Request) -> dict[str, Any]:
    return (await Renderer.load(svc, who, [view], _root(request))).detail(view)


def _page_params(request: Request, svc: Services) -> tuple[int, int, int]:
    """DRF's page-number paging: a page that is not a positive number is 404 "Invalid
    page."; a page_size that is not one falls back to the default, a large one to the cap."""
    q = request.query_params
    try:
        number = int(q.get("page", "1"))
    except ValueError:
        raise NotFound(INVALID_PAGE) from None
    if number < 1 or number > render.MAX_PAGE:
        raise NotFound(INVALID_PAGE)
    try:
        size = int(q.get("page_size", str(DEFAULT_PAGE_SIZE)))
    except ValueError:
        size = DEFAULT_PAGE_SIZE
    size = DEFAULT_PAGE_SIZE if size < 1 else min(size, svc.settings.max_page_size)
    offset, limit = render.page_params(number, size, svc.settings.max_page_size)
    return number, offset, limit


def _page_json(request: Request, page: Page[T], number: int, limit: int, rendered: Any) -> Response:
    if number > 1 and (number - 1) * limit >= page.total:
        raise NotFound(INVALID_PAGE)
    return JSON(render.paginated(request, page, number, limit, rendered))


def _paged(
    request: Request, svc: Services, items: Sequence[T], rendered: Callable[[T], Any]
) -> Response:
    number, offset, limit = _page_params(request, svc)
    page = Page(list(items[offset : offset + limit]), len(items))
    return _page_json(request, page, number, limit, rendered)


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


def _core_code(analysis: dict[str, Any]) -> str | None:
    hardware = analysis.get("hardware")
    core = hardware.get("coreType") if isinstance(hardware, dict) else None
    if isinstance(core, dict):
        core = core.get("code")
    if core is None:
        return None
    if not isinstance(core, str) or not core.strip():
        raise Invalid("hardware.coreType is a core type code (see coretypes/)", "hardware")
    return core.strip()


async def _target(svc: Services, who: Principal, analysis: dict[str, Any], slots: int) -> Target:
    """coreType → where the job runs: a cluster of that name, else nodes with that tag, else
    (``any``, or a code jobyard has no hardware for, such as Rescale's own) any node."""
    code = _core_code(analysis)
    if code and code != ANY_CORE:
        kind = (await _catalogue_kinds(svc, who)).get(code)
        if kind == "cluster":
            return Target(cluster=code, count=slots)
        if kind == "tag":
            return Target(tags=(code,), count=slots)
    return Target(count=slots)


async def _check_analysis(svc: Services, who: Principal, analysis: dict[str, Any]) -> None:
    """The analysis must name software of analyses/ (and one of its versions), when given."""
    software = analysis.get("analysis")
    if software is None:
        return
    if not isinstance(software, dict):
        raise Invalid("analysis is an object {code, version}", "jobanalyses")
    code, version = software.get("code"), software.get("version")
    if code is None:
        return
    known = {a["code"]: a for a in await _software(svc, who)}
    if not isinstance(code, str) or code not in known:
        raise Invalid(f"analysis code {code!r} is not one of analyses/ ", "jobanalyses")
    versions = [v["versionCode"] for v in known[code]["versions"]]
    if version is not None and version not in versions and str(version) not in versions:
        raise Invalid(
            f"analysis {code} has no version {version!r}: use one of {', '.join(versions)}",
            "jobanalyses",
        )


async def _inputs(svc: Services, who: Principal, analysis: dict[str, Any]) -> list[Any] | None:
    """inputFiles ([{id}] or [id], Rescale ids) → the job's input file descriptors."""
    raw = analysis.get("inputFiles")
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise Invalid("inputFiles is a list of files ({id})", "inputFiles")
    ids: list[int] = []
    for item in raw:
        ref = item.get("id") if isinstance(item, dict) else item
        native = rescale.parse_id(ref) if isinstance(ref, str) else None
        if native is None:
            raise Invalid(f"inputFiles: {ref!r} is not a file id", "inputFiles")
        ids.append(native)
    try:
        return await inputs.resolve(svc, who, ids)
    except Invalid as exc:
        raise Invalid(exc.detail.replace("input file ", "file "), "inputFiles") from None


def _meta(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    mine = dict(current.get("rescale") or {})
    if "jobanalyses" in body:
        mine["jobanalyses"] = body["jobanalyses"]
    if "projectId" in body:
        mine["projectId"] = body["projectId"]
    if "isLowPriority" in body:
        mine["isLowPriority"] = bool(body["isLowPriority"])
    return {**current, "rescale": mine}


async def _spec(svc: Services, who: Principal, body: dict[str, Any]) -> JobSpec:
    analysis = _analysis(body)
    slots, walltime = _hardware(analysis)
    await _check_analysis(svc, who, analysis)
    meta = _meta(body, {})
    files = await _inputs(svc, who, analysis)
    if files:
        meta["input_files"] = files
    return JobSpec(
        target=await _target(svc, who, analysis, slots),
        command=text(analysis, "command", required=True) or "",
        name=text(body, "name") or UNTITLED,
        description=text(body, "description") or "",
        run_timeout=DEFAULT_RUN_TIMEOUT if walltime is None else walltime * 3600,
        env=string_map(analysis, "envVars", coerce=True) or {},
        meta=meta,
    )


async def _changes(
    svc: Services, who: Principal, body: dict[str, Any], current: JobView
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "name" in body:
        changes["name"] = text(body, "name") or UNTITLED
    if "description" in body:
        changes["description"] = text(body, "description") or ""
    files = None
    if "jobanalyses" in body:
        analysis = _analysis(body)
        slots, walltime = _hardware(analysis)
        await _check_analysis(svc, who, analysis)
        files = await _inputs(svc, who, analysis)
        if "command" in analysis:
            changes["command"] = text(analysis, "command", required=True)
            changes["argv"] = None
        if "envVars" in analysis:
            changes["env"] = string_map(analysis, "envVars", coerce=True) or {}
        if isinstance(analysis.get("hardware"), dict):
            hardware = analysis["hardware"]
            if "slots" in hardware or "coreType" in hardware:
                target = await _target(svc, who, analysis, slots)
                if target.as_json() != current.job.target:
                    changes["target"] = target
            if walltime is not None and walltime * 3600 != current.job.run_timeout:
                changes["run_timeout"] = walltime * 3600
    if "jobanalyses" in body or "projectId" in body or "isLowPriority" in body:
        changes["meta"] = _meta(body, current.job.meta)
        if files is not None:
            changes["meta"]["input_files"] = files
    return changes


# -- the catalogue: software (analyses/) and hardware (coretypes/) from jobyard's own model


async def _software(svc: Services, who: Principal) -> list[dict[str, Any]]:
    """Custom software (the command runs as given), then one analysis per script task."""
    out = [
        {
            "code": CUSTOM_CODE,
            "name": CUSTOM_ANALYSIS,
            "description": "Run your own command on jobyard's nodes.",
            "vendorName": "jobyard",
            "versions": [
                {"id": CUSTOM_VERSION, "version": CUSTOM_VERSION, "versionCode": CUSTOM_VERSION}
            ],
        }
    ]
    offset = 0
    while True:
        page = await tasks_uc.list_tasks(svc, who, type="script", offset=offset, limit=100)
        for task in page.items:
            out.append(
                {
                    "code": task.name,
                    "name": task.name,
                    "description": task.spec.description,
                    "vendorName": "jobyard task",
                    "versions": [
                        {"id": TASK_VERSION, "version": TASK_VERSION, "versionCode": TASK_VERSION}
                    ],
                }
            )
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return out


async def _catalogue_kinds(svc: Services, who: Principal) -> dict[str, str]:
    """Core type code → cluster | tag (a cluster wins over a tag of the same name)."""
    kinds: dict[str, str] = {}
    for node in await nodes_uc.list_nodes(svc, who):
        for tag in node.tags:
            kinds.setdefault(tag, "tag")
    for cluster in await clusters_uc.list_clusters(svc, who):
        kinds[cluster.name] = "cluster"
    return kinds


async def _hardware_catalogue(svc: Services, who: Principal) -> list[dict[str, Any]]:
    """``any`` first (any node), then each cluster, then each node tag."""
    nodes = await nodes_uc.list_nodes(svc, who)
    kinds = await _catalogue_kinds(svc, who)

    def count(code: str | None, kind: str) -> int:
        if kind == "cluster":
            return sum(1 for n in nodes if n.cluster == code)
        if kind == "tag":
            return sum(1 for n in nodes if code in n.tags)
        return len(nodes)

    entries = [
        (ANY_CORE, "any"),
        *sorted(kinds.items(), key=lambda kv: (kv[1] != "cluster", kv[0])),
    ]
    out = []
    for order, (code, kind) in enumerate(entries):
        size = count(code, kind)
        label = {"any": "Any node", "cluster": f"Cluster {code}", "tag": f"Nodes tagged {code}"}
        out.append(
            {
                "code": code,
                "name": label[kind],
                "description": f"{size} node(s) now",
                "displayOrder": order,
                "isDeprecated": False,
                "isPrimary": kind == "any",
                "cores": list(range(1, max(size, 1) + 1)),
                # jobyard runs on machines you own: no price per core-hour.
                "price": "0.00",
                "lowPriorityPrice": "0.00",
                "processorInfo": "",
                "memory": None,
                "storage": None,
            }
        )
    return out


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
    return _page_json(request, page, number, limit, renderer.summary)


@route(["POST"], "/jobs/", status_code=201, summary="Save a job without starting it")
async def create_job(request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.create_job(
        svc, who, await _spec(svc, who, await json_object(request)), draft=True
    )
    return JSON(await _detail(svc, who, view, request), status_code=201)


@route(["GET"], "/jobs/{job_id}/", summary="A job")
async def get_job(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    return JSON(await _detail(svc, who, await uc.get_job(svc, who, _id(job_id)), request))


@route(["PUT", "PATCH"], "/jobs/{job_id}/", summary="Change a job (PUT or PATCH)")
async def update_job(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    native = _id(job_id)
    body = await json_object(request)
    current = await uc.get_job(svc, who, native)
    view = await uc.update_job(svc, who, native, await _changes(svc, who, body, current))
    return JSON(await _detail(svc, who, view, request))


@route(["DELETE"], "/jobs/{job_id}/", status_code=204, summary="Delete a saved or finished job")
async def delete_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.delete_job(svc, who, _id(job_id))
    return Response(status_code=204)


@route(["POST"], "/jobs/{job_id}/submit/", summary="Submit a saved job")
async def submit_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.submit_job(svc, who, _id(job_id))
    return Response(status_code=200)


@route(["POST"], "/jobs/{job_id}/stop/", status_code=202, summary="Stop a job (202: accepted)")
async def stop_job(job_id: str, who: Who, svc: Svc) -> Response:
    await uc.stop_job(svc, who, _id(job_id), "User Terminated")
    return Response(status_code=202)


@route(["POST"], "/jobs/{job_id}/share/", summary="Share a job with a user, by email")
async def share_job(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    body = await json_object(request)
    email = text(body, "email", required=True) or ""
    message = text(body, "message") or ""
    await sharing.share_job(svc, who, _id(job_id), email, message)
    return JSON({"email": email, "message": message})


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
    output = f.kind != "input"
    path = f"{f.node_name}/{f.name}" if output else f.name
    return {
        "id": file_id,
        "name": f.name.rsplit("/", 1)[-1],
        "path": path,
        "relativePath": path,
        "dateUploaded": _date(f.created_at),
        "decryptedSize": f.size,
        "downloadUrl": f"{_root(request)}/files/{file_id}/contents/",
        "isUploaded": True,
        "isDeleted": False,
        "md5": f.md5,
        "typeId": rescale.OUTPUT_FILE_TYPE if output else INPUT_FILE_TYPE,
        "sharedWith": [],
    }


@route(["GET"], "/jobs/{job_id}/files/", summary="A job's output files")
async def job_files(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    files = await outputs.list_files(svc, who, _id(job_id))
    return _paged(request, svc, files, lambda f: _file(request, f))


@route(["GET"], "/jobs/{job_id}/runs/", summary="A job's runs (one per node)")
async def job_runs(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, _id(job_id))
    runs: list[dict[str, Any]] = [
        {
            "id": str(order),
            "displayOrder": order,
            "name": run.node_name,
            "type": 0,  # Rescale's "nominal" run: jobyard has no parameter sweeps
            "isOptimization": False,
            "parentRunId": None,
            "variables": [],
            "status": run.status.value,
            "dateStarted": _date(run.started_at),
            "dateCompleted": _date(run.finished_at),
        }
        for order, run in enumerate(view.runs, start=1)
    ]
    return _paged(request, svc, runs, lambda r: r)


@route(["POST"], "/files/contents/", status_code=201, summary="Upload an input file (multipart)")
async def upload_file(request: Request, who: Who, svc: Svc) -> Response:
    stored = await receive_upload(request, svc, who, field="file")
    return JSON(_file(request, stored), status_code=201)


@route(["GET"], "/files/", summary="Your uploaded files, newest first")
async def list_files(request: Request, who: Who, svc: Svc) -> Response:
    number, offset, limit = _page_params(request, svc)
    items, total = await inputs.list_inputs(svc, who, offset, limit)
    return _page_json(request, Page(items, total), number, limit, lambda f: _file(request, f))


@route(["GET"], "/files/{file_id}/", summary="A file's description")
async def file_info(file_id: str, request: Request, who: Who, svc: Svc) -> Response:
    stored, _path = await outputs.locate_file(svc, who, _id(file_id, "file"))
    return JSON(_file(request, stored))


@route(["GET"], "/files/{file_id}/contents/", summary="A file's bytes")
async def file_contents(file_id: str, who: Who, svc: Svc) -> Response:
    stored, path = await outputs.locate_file(svc, who, _id(file_id, "file"))
    return download(stored, path)


@route(["GET"], "/analyses/", summary="Software: custom commands and the organization's tasks")
async def analyses(request: Request, who: Who, svc: Svc) -> Response:
    return _paged(request, svc, await _software(svc, who), lambda a: a)


@route(["GET"], "/coretypes/", summary="Hardware: any node, each cluster, each node tag")
async def coretypes(request: Request, who: Who, svc: Svc) -> Response:
    return _paged(request, svc, await _hardware_catalogue(svc, who), lambda c: c)
