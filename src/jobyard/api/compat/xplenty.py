"""Xplenty dialect: /compat/xplenty/{account}/api/.

Clusters, jobs, watchers of jobs and clusters, the in-app notifications of the caller,
and the rate limit; packages (native tasks) and schedules (native triggers) are read in
``xplenty_packages``. Running a job runs a package on a cluster, its variables as the
task's arguments. How requests are read and answered (parameters in JSON, form fields or
the query string; bare-array lists; ``{"message"}`` errors) is ``xplenty_requests``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from jobyard.api.compat import base_url, boolean, integer, string_map, text
from jobyard.api.compat import xplenty_packages as packages
from jobyard.api.compat import xplenty_views as views
from jobyard.api.compat.xplenty_requests import (
    PREFIX,
    RATE_LIMIT,
    Svc,
    Who,
    api_url,
    arrange,
    every,
    ident,
    links_of,
    member_names,
    order,
    params,
    reply,
    scoped,
    set_total,
    window,
)
from jobyard.domain.clusters import ClusterStatus
from jobyard.domain.dialects import xplenty
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.jobs import JobStatus
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.outputs import STREAMS
from jobyard.domain.records import Cluster, Principal
from jobyard.domain.targets import Target
from jobyard.service import clusters as cluster_uc
from jobyard.service import jobs as uc
from jobyard.service import notifications as inbox
from jobyard.service import outputs, watchers
from jobyard.service import tasks as tasks_uc
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

router = APIRouter(prefix=PREFIX, tags=["dialect: Xplenty"])
router.include_router(packages.router)


# -- clusters


def _cluster(
    request: Request, account: str, c: Cluster, running: int, names: dict[int, str]
) -> dict[str, Any]:
    url = f"{api_url(request, account)}/clusters/{c.id}"
    return {
        "id": c.id,
        "name": c.name,
        "description": c.description,
        "status": xplenty.CLUSTER_STATUS[ClusterStatus(c.status)],
        "owner_id": c.created_by,
        "nodes": c.desired_nodes,
        "type": c.type,
        "created_at": views.time_text(c.created_at),
        "updated_at": views.time_text(c.updated_at),
        "available_since": views.time_text(c.available_since),
        "terminated_at": views.time_text(c.terminated_at),
        "running_jobs_count": running,
        "terminate_on_idle": c.terminate_on_idle,
        "time_to_idle": c.time_to_idle,
        "url": url,
        "html_url": f"{base_url(request)}/clusters/{c.id}",
        "creator": views.creator(links_of(request, account), c.created_by, names),
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
    names = await member_names(svc, who)
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
    body = scoped(await params(request), "cluster")
    changes = _cluster_changes(body)
    if changes.get("nodes") is None:
        raise Invalid("nodes is required: the number of nodes in the cluster", "nodes")
    cluster_type = text(body, "type") or "production"
    cluster = await cluster_uc.create_cluster(
        svc,
        who,
        changes.get("name") or f"cluster-{secrets.token_hex(3)}",
        changes["nodes"],
        description=changes.get("description") or "",
        type=cluster_type,
        terminate_on_idle=bool(changes.get("terminate_on_idle", False)),
        time_to_idle=changes.get("time_to_idle", 3600),
    )
    rendered = await _render_clusters(request, account, svc, who, [cluster])
    return reply(request, rendered[0], 201)


@router.get("/clusters", summary="List clusters")
async def list_clusters(account: str, request: Request, who: Who, svc: Svc) -> Response:
    status = request.query_params.get("status", "all")
    if status != "all" and status not in xplenty.CLUSTER_FILTER:
        raise Invalid(f"status is all or one of {', '.join(xplenty.CLUSTER_FILTER)}", "status")
    wanted = None if status == "all" else list(xplenty.CLUSTER_FILTER[status])
    items = arrange(request, await cluster_uc.list_clusters(svc, who, wanted))
    return reply(request, await _render_clusters(request, account, svc, who, items))


@router.get("/clusters/{cluster_id}", summary="A cluster")
async def get_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    cluster = await cluster_uc.get_cluster(svc, who, ident(cluster_id, "cluster"))
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


@router.put("/clusters/{cluster_id}", summary="Change or resize a cluster")
async def update_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    changes = _cluster_changes(scoped(await params(request), "cluster"))
    cluster = await cluster_uc.update_cluster(svc, who, ident(cluster_id, "cluster"), changes)
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


@router.delete("/clusters/{cluster_id}", summary="Terminate a cluster (pending_terminate)")
async def terminate_cluster(
    account: str, cluster_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    cluster = await cluster_uc.terminate_cluster(svc, who, ident(cluster_id, "cluster"))
    return reply(request, (await _render_clusters(request, account, svc, who, [cluster]))[0])


# -- jobs


async def _render_jobs(
    request: Request,
    account: str,
    svc: Services,
    who: Principal,
    found: Sequence[JobView],
    status: str | None = None,
) -> list[dict[str, Any]]:
    names = await member_names(svc, who)
    out = []
    for view in found:
        count = len(await outputs.list_files(svc, who, view.job.id))
        out.append(views.job(links_of(request, account), view, count, names, status))
    return out


def _variables(body: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    return (
        string_map(body, "variables", coerce=True) or {},
        string_map(body, "dynamic_variables", coerce=True) or {},
    )


def _command_spec(body: dict[str, Any], cluster: Cluster, command: str) -> JobSpec:
    """A job of a command given in the request (a jobyard extension: no package needed)."""
    variables, dynamic = _variables(body)
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
            }
        },
    )


def _package_id(body: dict[str, Any]) -> int | None:
    """The package to run: ``package_id``, or ``job_id`` as PyPI ``xplenty`` 1.x sends it."""
    for key in ("package_id", "job_id"):
        if body.get(key) not in (None, ""):
            value = integer(body, key, coerce=True)
            if value is None or value < 1:
                raise NotFound(f"package {body[key]} not found")
            return value
    return None


async def _run_package(
    svc: Services, who: Principal, body: dict[str, Any], cluster: Cluster, package_id: int
) -> JobView:
    """Run the task on the cluster's nodes; the variables are its arguments, by name."""
    variables, dynamic = _variables(body)
    try:
        task = await tasks_uc.get_task(svc, who, package_id)
    except NotFound:
        raise NotFound(f"package {package_id} not found") from None
    return await tasks_uc.run_task(
        svc, who, task.id, {**variables, **dynamic}, target=Target(cluster=cluster.name)
    )


@router.post("/jobs", status_code=201, summary="Run a package on a cluster")
async def run_job(account: str, request: Request, who: Who, svc: Svc) -> Response:
    body = scoped(await params(request), "job")
    cluster_id = integer(body, "cluster_id", coerce=True)
    if cluster_id is None:
        raise Invalid("cluster_id is required", "cluster_id")
    package_id = _package_id(body)
    command = text(body, "command")
    if package_id is not None and command:
        raise Invalid("give the package to run (package_id) or a command, not both", "command")
    if package_id is None and not command:
        raise Invalid("package_id is required: the package (task) to run", "package_id")
    cluster = await cluster_uc.get_cluster(svc, who, cluster_id)
    if package_id is not None:
        view = await _run_package(svc, who, body, cluster, package_id)
    else:
        assert command is not None
        view = await uc.create_job(svc, who, _command_spec(body, cluster, command))
    return reply(request, (await _render_jobs(request, account, svc, who, [view]))[0], 201)


@router.get("/jobs", summary="List jobs")
async def list_jobs(account: str, request: Request, who: Who, svc: Svc) -> Response:
    offset, limit = window(request)
    sort, descending, since = order(request)
    status = request.query_params.get("status", "all")
    if status != "all" and status not in xplenty.JOB_FILTER:
        raise Invalid(f"status is all or one of {', '.join(xplenty.JOB_WORDS)}", "status")
    statuses = () if status == "all" else tuple(s.value for s in xplenty.JOB_FILTER[status])
    if status != "all" and not statuses:
        set_total(request, 0)
        return reply(request, [])
    flt = JobFilter(
        statuses=statuses,
        created_after=since if sort == "created" else None,
        updated_after=since if sort == "updated" else None,
    )
    key = "created_at" if sort == "created" else "updated_at"
    if JobStatus.COMPLETE.value in statuses:
        # complete shows as completed or failed by its runs: keep exactly the word asked for.
        every_view = await every(
            lambda o, n: uc.list_jobs(
                svc, who, flt, sort=key, descending=descending, offset=o, limit=n
            )
        )
        chosen = [v for v in every_view if views.job_word(v) == status]
        set_total(request, len(chosen))
        items = chosen[offset : offset + limit]
    else:
        page = await uc.list_jobs(
            svc, who, flt, sort=key, descending=descending, offset=offset, limit=limit
        )
        set_total(request, page.total)
        items = page.items
    return reply(request, await _render_jobs(request, account, svc, who, items))


@router.get("/jobs/{job_id}", summary="A job")
async def get_job(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, ident(job_id, "job"))
    return reply(request, (await _render_jobs(request, account, svc, who, [view]))[0])


@router.delete("/jobs/{job_id}", summary="Stop a job (pending_stoppage)")
async def stop_job(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.stop_job(svc, who, ident(job_id, "job"))
    rendered = await _render_jobs(request, account, svc, who, [view], xplenty.STOP_REQUESTED)
    return reply(request, rendered[0])


@router.get("/jobs/{job_id}/variables", summary="A job's variables")
async def job_variables(
    account: str, job_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    view = await uc.get_job(svc, who, ident(job_id, "job"))
    given, dynamic = views.variables(view)
    # The documented shape: a flat map of the variables the job ran with.
    return reply(request, {**given, **dynamic})


@router.get("/jobs/{job_id}/log", summary="A job's output log")
async def job_log(account: str, job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, ident(job_id, "job"))
    kept = await outputs.job_streams(svc, view.runs)
    parts = []
    for run in view.runs:
        out, err = (kept.get((run.node_name, s), "") for s in STREAMS)
        parts.append(f"== {run.node_name} ({run.status.value}) ==\n{out}{err}")
    url = f"{api_url(request, account)}/jobs/{view.job.id}/log"
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
    native = ident(subject_id, what)
    done = await watchers.watch(svc, who, what, native)
    url = f"{api_url(request, account)}/{kind}/{native}"
    return reply(request, {"created_at": views.time_text(done.created_at), f"{what}_url": url}, 201)


@router.delete("/{kind}/{subject_id}/watchers", status_code=204, summary="Stop watching")
async def unwatch(
    account: str, kind: str, subject_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    what = _watch_kind(kind)
    await watchers.unwatch(svc, who, what, ident(subject_id, what))
    return reply(request, None, 204)


@router.get("/{kind}/{subject_id}/watchers", summary="Who watches a job or cluster")
async def list_watchers(
    account: str, kind: str, subject_id: str, request: Request, who: Who, svc: Svc
) -> Response:
    what = _watch_kind(kind)
    found = await watchers.list_watchers(svc, who, what, ident(subject_id, what))
    return reply(request, [{"id": w.user_id, "display_name": w.display_name} for w in found])


# -- the caller


@router.get("/user/notifications", summary="The caller's in-app notifications")
async def notifications(request: Request, who: Who, svc: Svc) -> Response:
    offset, limit = window(request)
    page = await inbox.list_notifications(svc, who, order="time", offset=offset, limit=limit)
    set_total(request, page.total)
    return reply(
        request,
        [
            {
                "id": n.id,
                "title": n.title,
                "message": n.message,
                "last_read_at": views.time_text(n.read_at),
                "created_at": views.time_text(n.created_at),
                "updated_at": views.time_text(n.updated_at),
            }
            for n in page.items
        ],
    )


@router.get("/rate_limit_status", summary="The caller's remaining requests this hour")
async def rate_limit_status(request: Request, who: Who) -> Response:
    remaining = request.state.xplenty_budget
    return reply(request, {"limits": {"limit": RATE_LIMIT, "remaining": remaining}})
