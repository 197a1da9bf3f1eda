"""Xplenty dialect: /compat/xplenty/{account}/api/.

Clusters, jobs, watchers of both, the in-app notifications of the caller, and the
rate limit. Parameters come as JSON, as Rails-style form fields (``cluster[nodes]=2``)
or in the query string (the Ruby client): all three are read. Lists are bare arrays
with ``offset``/``limit``; errors are ``{"message": "..."}``; ids are integers.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import errors
from jobyard.api.auth import principal, services
from jobyard.api.compat import base_url, boolean, integer, json_object, same_org, string_map, text
from jobyard.api.responses import JSON
from jobyard.domain.clusters import ClusterStatus
from jobyard.domain.dialects import xplenty
from jobyard.domain.errors import Invalid, NotFound, RateLimited
from jobyard.domain.jobs import RUN_FAILED, JobStatus
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.records import Cluster, Principal
from jobyard.domain.targets import Target
from jobyard.service import accounts as accounts_uc
from jobyard.service import clusters as cluster_uc
from jobyard.service import jobs as uc
from jobyard.service import notifications as inbox
from jobyard.service import outputs, watchers
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

PREFIX = "/compat/xplenty/{account}/api"
router = APIRouter(prefix=PREFIX, tags=["dialect: Xplenty"])
Svc = Annotated[Services, Depends(services)]
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# Requests per token per hour, counted in this process.
RATE_LIMIT = 5000
RATE_WINDOW = 3600.0
T = TypeVar("T")


def _rate_headers(request: Request) -> dict[str, str]:
    budget = getattr(request.state, "xplenty_budget", None)
    if budget is None:
        return {}
    return {"X-RateLimit-Limit": str(RATE_LIMIT), "X-RateLimit-Remaining": str(budget)}


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    # Xplenty has no 409: a state that forbids the request is 422.
    if status == 409:
        status = 422
    if extra.get("malformed"):
        status = 400
    return JSON({"message": detail}, status_code=status, headers=_rate_headers(request))


errors.register_renderer("/compat/xplenty/", render_error)


async def account_member(
    account: str, request: Request, who: Annotated[Principal, Depends(principal)]
) -> Principal:
    """The caller, in the account named in the URL, within its hourly request budget."""
    same_org(account, who)
    windows: dict[int, tuple[float, int]] = request.app.state.__dict__.setdefault(
        "xplenty_windows", {}
    )
    now = time.monotonic()
    key = who.token_id or -who.user_id
    start, used = windows.get(key, (now, 0))
    if now - start >= RATE_WINDOW:
        start, used = now, 0
    used += 1
    windows[key] = (start, used)
    request.state.xplenty_budget = max(RATE_LIMIT - used, 0)
    if used > RATE_LIMIT:
        raise RateLimited(f"rate limit of {RATE_LIMIT} requests per hour exceeded")
    return who


Who = Annotated[Principal, Depends(account_member)]


def reply(request: Request, content: Any, status_code: int = 200) -> Response:
    if status_code == 204:
        return Response(status_code=204, headers=_rate_headers(request))
    return JSON(content, status_code=status_code, headers=_rate_headers(request))


def _time(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _id(text_id: str, what: str) -> int:
    native = xplenty.parse_id(text_id)
    if native is None:
        raise NotFound(f"{what} {text_id} not found")
    return native


def _api(request: Request, account: str) -> str:
    return f"{base_url(request)}/compat/xplenty/{account}/api"


async def params(request: Request) -> dict[str, Any]:
    """The request's parameters from the query string, form fields or JSON, nested."""
    found = xplenty.nest(request.query_params.multi_items())
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        found.update(xplenty.nest((k, v) for k, v in form.multi_items() if isinstance(v, str)))
    else:
        found.update(await json_object(request))
    return found


def _scoped(found: dict[str, Any], name: str) -> dict[str, Any]:
    """``cluster[nodes]=2`` and ``{"nodes": 2}`` alike: the object's own fields."""
    inner = found.get(name)
    if isinstance(inner, dict):
        return {**{k: v for k, v in found.items() if k != name}, **inner}
    return found


def _window(request: Request) -> tuple[int, int]:
    q = request.query_params
    try:
        offset = int(q.get("offset", "0"))
        limit = int(q.get("limit", str(DEFAULT_LIMIT)))
    except ValueError:
        raise Invalid("offset and limit are whole numbers", "offset") from None
    if offset < 0:
        raise Invalid("offset starts at 0", "offset")
    if not 1 <= limit <= MAX_LIMIT:
        raise Invalid(f"limit is 1 to {MAX_LIMIT}", "limit")
    return offset, limit


def _order(request: Request) -> tuple[str, bool, dt.datetime | None]:
    q = request.query_params
    sort = q.get("sort", "created")
    if sort not in ("created", "updated"):
        raise Invalid("sort is created or updated", "sort")
    direction = q.get("direction", "desc")
    if direction not in ("asc", "desc"):
        raise Invalid("direction is asc or desc", "direction")
    since = q.get("since")
    when = None
    if since:
        try:
            when = dt.datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise Invalid("since is an ISO 8601 time", "since") from None
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return sort, direction == "desc", when


def _creator(request: Request, account: str, user_id: int | None, names: dict[int, str]) -> Any:
    if user_id is None:
        return None
    return {
        "type": "User",
        "id": user_id,
        "display_name": names.get(user_id),
        "url": f"{_api(request, account)}/user",
    }


async def _names(svc: Services, who: Principal) -> dict[int, str]:
    return {m.user_id: m.display_name for m in await accounts_uc.list_members(svc, who)}


# -- clusters


def _cluster(
    request: Request, account: str, c: Cluster, running: int, names: dict[int, str]
) -> dict[str, Any]:
    url = f"{_api(request, account)}/clusters/{c.id}"
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "status": xplenty.CLUSTER_STATUS[ClusterStatus(c.status)],
        "owner_id": c.created_by,
        "nodes": c.desired_nodes,
        "type": c.type,
        "created_at": _time(c.created_at),
        "updated_at": _time(c.updated_at),
        "available_since": _time(c.available_since),
        "terminated_at": _time(c.terminated_at),
        "running_jobs_count": running,
        "terminate_on_idle": c.terminate_on_idle,
        "time_to_idle": c.time_to_idle,
        "url": url,
        "html_url": f"{base_url(request)}/clusters/{c.id}",
        "creator": _creator(request, account, c.created_by, names),
    }


async def _running_counts(svc: Services, who: Principal) -> dict[int, int]:
    """Active jobs per cluster id."""
    active = [JobStatus.NEW, JobStatus.VOTING, JobStatus.RUNNING]
    page = await uc.list_jobs(
        svc, who, JobFilter(statuses=active), offset=0, limit=svc.settings.max_page_size
    )
    counts: dict[int, int] = {}
    for view in page.items:
        if view.job.cluster_id is not None:
            counts[view.job.cluster_id] = counts.get(view.job.cluster_id, 0) + 1
    return counts


async def _render_clusters(
    request: Request, account: str, svc: Services, who: Principal, items: Sequence[Cluster]
) -> list[dict[str, Any]]:
    counts = await _running_counts(svc, who)
    names = await _names(svc, who)
    return [_cluster(request, account, c, counts.get(c.id, 0), names) for c in items]


def _cluster_changes(body: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if body.get("nodes") is not None:
        changes["nodes"] = integer(body, "nodes", coerce=True)
    for key in ("name", "description"):
        if body.get(key) is not None:
            changes[key] = text(body, key)
    if body.get("terminate_on_idle") is not None:
        changes["terminate_on_idle"] = boolean(body, "terminate_on_idle", coerce=True)
    if body.get("time_to_idle") is not None:
        changes["time_to_idle"] = integer(body, "time_to_idle", coerce=True)
    return changes


@router.post("/clusters", status_code=201, summary="Create a cluster (status pending)")
async def create_cluster(account: str, request: Request, who: Who, svc: Svc) -> Response:
    body = _scoped(await params(request), "cluster")
    changes = _cluster_changes(body)
    cluster_type = text(body, "type") or "production"
    cluster = await cluster_uc.create_cluster(
        svc,
        who,
        changes.get("name") or f"cluster-{secrets.token_hex(3)}",
        changes.get("nodes", 1),
        description=changes.get("description") or "",
        type=cluster_type,
        terminate_on_idle=bool(changes.get("terminate_on_idle", False)),
        time_to_idle=changes.get("time_to_idle", 3600),
    )
    rendered = await _render_clusters(request, account, svc, who, [cluster])
    return reply(request, rendered[0], 201)


@router.get("/clusters", summary="List clusters")
async def list_clusters(account: str, request: Request, who: Who, svc: Svc) -> Response:
    offset, limit = _window(request)
    sort, descending, since = _order(request)
    status = request.query_params.get("status", "all")
    if status != "all" and status not in xplenty.CLUSTER_FILTER:
        raise Invalid(f"status is all or one of {', '.join(xplenty.CLUSTER_FILTER)}", "status")
    wanted = None if status == "all" else list(xplenty.CLUSTER_FILTER[status])
    items = await cluster_uc.list_clusters(svc, who, wanted)
    key: Callable[[Cluster], Any] = (
        (lambda c: (c.created_at, c.id)) if sort == "created" else (lambda c: (c.updated_at, c.id))
    )
    if since is not None:
        items = [c for c in items if (c.created_at if sort == "created" else c.updated_at) >= since]
    items = sorted(items, key=key, reverse=descending)[offset : offset + limit]
    return reply(request, await _render_clusters(request, account, svc, who, items))


@router.get("/clusters/{cluster_id}", summary="A cluster")
async def get_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    cluster = await cluster_uc.get_cluster(svc, who, _id(cluster_id, "cluster"))
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


@router.put("/clusters/{cluster_id}", summary="Change or resize a cluster")
async def update_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    changes = _cluster_changes(_scoped(await params(request), "cluster"))
    cluster = await cluster_uc.update_cluster(svc, who, _id(cluster_id, "cluster"), changes)
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


@router.delete("/clusters/{cluster_id}", summary="Terminate a cluster (pending_terminate)")
async def terminate_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    cluster = await cluster_uc.terminate_cluster(svc, who, _id(cluster_id, "cluster"))
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


# -- jobs


def _run_failed(view: JobView) -> bool:
    return any(r.status in RUN_FAILED for r in view.runs)


def _progress(view: JobView) -> float:
    if view.job.status.terminal:
        return 1.0
    if not view.runs:
        return 0.0
    return round(sum(1 for r in view.runs if r.status.terminal) / len(view.runs), 4)


def _job(
    request: Request,
    account: str,
    view: JobView,
    outputs_count: int,
    names: dict[int, str],
    status: str | None = None,
) -> dict[str, Any]:
    job = view.job
    word = status or xplenty.job_status(job.status, _run_failed(view))
    mine = job.meta.get("xplenty") or {}
    url = f"{_api(request, account)}/jobs/{job.id}"
    runtime = 0
    if job.started_at is not None:
        end = job.finished_at or dt.datetime.now(dt.UTC)
        runtime = max(int((end - job.started_at).total_seconds()), 0)
    failed = word == "failed"
    reasons = [
        f"{r.node_name}: {r.reason or r.status.value}" for r in view.runs if r.status in RUN_FAILED
    ]
    return {
        "id": job.id,
        "status": word,
        "variables": mine.get("variables", dict(job.env)),
        "dynamic_variables": mine.get("dynamic_variables", {}),
        "owner_id": job.created_by,
        "progress": _progress(view),
        "outputs_count": outputs_count,
        "outputs": [],
        "started_at": _time(job.started_at),
        "created_at": _time(job.created_at),
        "failed_at": _time(job.finished_at) if failed else None,
        "completed_at": _time(job.finished_at) if word == "completed" else None,
        "updated_at": _time(job.updated_at),
        "cluster_id": job.cluster_id if job.cluster_id is not None else mine.get("cluster_id"),
        "package_id": job.task_id,
        "errors": "; ".join(reasons)
        if failed and reasons
        else (job.status.value if failed else None),
        "runtime_in_seconds": runtime,
        "url": url,
        "html_url": f"{base_url(request)}/jobs/{job.id}",
        "creator": _creator(request, account, job.created_by, names),
        "log_url": f"{url}/log",
    }


async def _render_jobs(
    request: Request,
    account: str,
    svc: Services,
    who: Principal,
    views: Sequence[JobView],
    status: str | None = None,
) -> list[dict[str, Any]]:
    names = await _names(svc, who)
    out = []
    for view in views:
        count = len(await outputs.list_files(svc, who, view.job.id))
        out.append(_job(request, account, view, count, names, status))
    return out


def _job_spec(body: dict[str, Any], cluster: Cluster) -> JobSpec:
    variables = string_map(body, "variables", coerce=True) or {}
    dynamic = string_map(body, "dynamic_variables", coerce=True) or {}
    command = text(body, "command")
    if not command:
        raise Invalid(
            "packages are not available on this server yet: give the command to run "
            "('command') with cluster_id",
            "package_id",
        )
    return JobSpec(
        target=Target(cluster=cluster.name),
        command=command,
        run_timeout=DEFAULT_RUN_TIMEOUT,
        env={**variables, **dynamic},
        meta={
            "xplenty": {
                "variables": variables,
                "dynamic_variables": dynamic,
                "cluster_id": cluster.id,
                "package_id": body.get("package_id"),
            }
        },
    )


@router.post("/jobs", status_code=201, summary="Run a package on a cluster")
async def run_job(account: str, request: Request, who: Who, svc: Svc) -> Response:
    body = _scoped(await params(request), "job")
    cluster_id = integer(body, "cluster_id", coerce=True)
    if cluster_id is None:
        raise Invalid("cluster_id is required", "cluster_id")
    cluster = await cluster_uc.get_cluster(svc, who, cluster_id)
    view = await uc.create_job(svc, who, _job_spec(body, cluster))
    return reply(request, (await _render_jobs(request, account, svc, who, [view]))[0], 201)


@router.get("/jobs", summary="List jobs")
async def list_jobs(account: str, request: Request, who: Who, svc: Svc) -> Response:
    offset, limit = _window(request)
    sort, descending, since = _order(request)
    status = request.query_params.get("status", "all")
    if status != "all" and status not in xplenty.JOB_FILTER:
        raise Invalid(f"status is all or one of {', '.join(xplenty.JOB_WORDS)}", "status")
    statuses = () if status == "all" else tuple(s.value for s in xplenty.JOB_FILTER[status])
    if status != "all" and not statuses:
        return reply(request, [])
    flt = JobFilter(
        statuses=statuses,
        created_after=since if sort == "created" else None,
        updated_after=since if sort == "updated" else None,
    )
    page = await uc.list_jobs(
        svc,
        who,
        flt,
        sort="created_at" if sort == "created" else "updated_at",
        descending=descending,
        offset=offset,
        limit=limit,
    )
    return reply(request, await _render_jobs(request, account, svc, who, page.items))


@router.get("/jobs/{job_id}", summary="A job")
async def get_job(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, _id(job_id, "job"))
    return reply(request, (await _render_jobs(request, account, svc, who, [view]))[0])


@router.delete("/jobs/{job_id}", summary="Stop a job (pending_stoppage)")
async def stop_job(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.stop_job(svc, who, _id(job_id, "job"))
    rendered = await _render_jobs(request, account, svc, who, [view], xplenty.STOP_REQUESTED)
    return reply(request, rendered[0])


@router.get("/jobs/{job_id}/variables", summary="A job's variables")
async def job_variables(
    account: str, job_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    view = await uc.get_job(svc, who, _id(job_id, "job"))
    mine = view.job.meta.get("xplenty") or {}
    variables = {**mine.get("variables", dict(view.job.env)), **mine.get("dynamic_variables", {})}
    url = f"{_api(request, account)}/jobs/{view.job.id}/variables"
    return reply(request, {"variables": variables, "url": url})


@router.get("/jobs/{job_id}/log", summary="A job's output log")
async def job_log(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, _id(job_id, "job"))
    parts = []
    for run in view.runs:
        parts.append(f"== {run.node_name} ({run.status.value}) ==\n{run.stdout}{run.stderr}")
    url = f"{_api(request, account)}/jobs/{view.job.id}/log"
    return reply(request, {"body": "\n".join(parts), "url": url})


# -- watchers


def _watch_kind(kind: str) -> str:
    if kind == "jobs":
        return "job"
    if kind == "clusters":
        return "cluster"
    raise NotFound(f"no watchers of {kind}")


@router.post("/{kind}/{subject_id}/watchers", status_code=201, summary="Watch a job or cluster")
async def watch(
    account: str, kind: str, subject_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    what = _watch_kind(kind)
    native = _id(subject_id, what)
    done = await watchers.watch(svc, who, what, native)
    url = f"{_api(request, account)}/{kind}/{native}"
    return reply(request, {"created_at": _time(done.created_at), f"{what}_url": url}, 201)


@router.delete("/{kind}/{subject_id}/watchers", status_code=204, summary="Stop watching")
async def unwatch(
    account: str, kind: str, subject_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    what = _watch_kind(kind)
    await watchers.unwatch(svc, who, what, _id(subject_id, what))
    return reply(request, None, 204)


@router.get("/{kind}/{subject_id}/watchers", summary="Who watches a job or cluster")
async def list_watchers(
    account: str, kind: str, subject_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    what = _watch_kind(kind)
    found = await watchers.list_watchers(svc, who, what, _id(subject_id, what))
    return reply(request, [{"id": w.user_id, "display_name": w.display_name} for w in found])


# -- the caller


@router.get("/user/notifications", summary="The caller's in-app notifications")
async def notifications(request: Request, who: Who, svc: Svc) -> Response:
    offset, limit = _window(request)
    page = await inbox.list_notifications(svc, who, order="time", offset=offset, limit=limit)
    return reply(
        request,
        [
            {
                "id": n.id,
                "title": n.title,
                "message": n.message,
                "last_read_at": _time(n.read_at),
                "created_at": _time(n.created_at),
                "updated_at": _time(n.updated_at),
            }
            for n in page.items
        ],
    )


@router.get("/rate_limit_status", summary="The caller's remaining requests this hour")
async def rate_limit_status(request: Request, who: Who) -> Response:
    remaining = request.state.xplenty_budget
    return reply(request, {"limits": {"limit": RATE_LIMIT, "remaining": remaining}})
