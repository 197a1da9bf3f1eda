"""Chef Push Jobs dialect: /compat/chef/organizations/{org}/pushy/.

Jobs (start, list, get with nodes grouped by state), per-node output, node states,
and the job and organization status feeds as server-sent events replayed from the
event log. Errors are ``{"error": ["message"]}``; ids are 32 hex digits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from starlette.responses import Response, StreamingResponse

from jobyard.api import errors
from jobyard.api.auth import principal, services
from jobyard.api.compat import base_url, boolean, integer, json_object, same_org, string_map, text
from jobyard.api.responses import JSON, dumps
from jobyard.domain.dialects import chef, chef_signing
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Event, Principal
from jobyard.domain.targets import Target
from jobyard.service import chef_keys, outputs
from jobyard.service import feeds as event_log
from jobyard.service import jobs as uc
from jobyard.service import nodes as node_uc
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

PREFIX = "/compat/chef/organizations/{org}/pushy"
router = APIRouter(prefix=PREFIX, tags=["dialect: Chef Push Jobs"])
Svc = Annotated[Services, Depends(services)]
# Push Jobs sends a comment line this often so proxies keep an idle feed open.
KEEPALIVE = 15.0


def _signed_path(request: Request) -> str:
    """The path as the client sent it (still percent-encoded), which is what it signed."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path


async def org_member(org: str, request: Request) -> Principal:
    """The caller: a Chef-signed request (X-Ops-* headers) or any jobyard token."""
    if chef_signing.is_signed(request.headers):
        svc = services(request)
        sig = chef_signing.parse(request.headers)
        who = await chef_keys.authenticate(
            svc,
            org,
            sig,
            method=request.method,
            path=_signed_path(request),
            body=await request.body(),
        )
        request.state.principal = who
    else:
        who = await principal(request)
    same_org(org, who)
    return who


Who = Annotated[Principal, Depends(org_member)]


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    # Push Jobs answers a bad request with 400, never 422; a 401 names the signing
    # protocol versions the client may use, as Chef servers do.
    headers = {"WWW-Authenticate": chef_signing.CHALLENGE} if status == 401 else None
    return JSON({"error": [detail]}, status_code=400 if status == 422 else status, headers=headers)


errors.register_renderer("/compat/chef/", render_error)


def _job_id(text_id: str) -> int:
    native = chef.parse_id(text_id)
    if native is None:
        raise NotFound(f"job '{text_id}' not found")
    return native


def _job_url(request: Request, org: str, job_id: int) -> str:
    return (
        f"{base_url(request)}/compat/chef/organizations/{org}/pushy/jobs/{chef.render_id(job_id)}"
    )


def _summary(view: JobView) -> dict[str, Any]:
    job = view.job
    return {
        "id": chef.render_id(job.id),
        "command": job.command,
        "run_timeout": job.run_timeout,
        "status": chef.JOB_STATUS[job.status],
        "created_at": chef.rfc1123(job.created_at),
        "updated_at": chef.rfc1123(job.updated_at),
    }


def _detail(view: JobView) -> dict[str, Any]:
    nodes: dict[str, list[str]] = {}
    for run in view.runs:
        nodes.setdefault(chef.NODE_STATE[run.status], []).append(run.node_name)
    return {**_summary(view), "nodes": nodes}


def _spec(body: dict[str, Any]) -> JobSpec:
    command = text(body, "command", required=True)
    nodes = body.get("nodes")
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise Invalid("nodes must be a non-empty list of node names", "nodes")
    quorum = body.get("quorum")
    if quorum is not None and not isinstance(quorum, (int, str)):
        raise Invalid("quorum must be a count or a percentage", "quorum")
    run_timeout = integer(body, "run_timeout")
    meta: dict[str, Any] = {}
    for key in ("user", "file"):
        value = text(body, key)
        if value is not None:
            meta[key] = value
    capture = boolean(body, "capture_output")
    return JobSpec(
        target=Target(nodes=tuple(nodes)),
        command=command or "",
        quorum=Quorum.parse(quorum),
        run_timeout=DEFAULT_RUN_TIMEOUT if run_timeout is None else run_timeout,
        env=string_map(body, "env") or {},
        dir=text(body, "dir"),
        capture_output=True if capture is None else capture,
        meta=meta,
    )


@router.post("/jobs", status_code=201, summary="Start a job")
async def start_job(org: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.create_job(svc, who, _spec(await json_object(request)))
    uri = _job_url(request, org, view.job.id)
    return JSON(
        {"id": chef.render_id(view.job.id), "uri": uri},
        status_code=201,
        headers={"Location": uri},
    )


@router.get("/jobs", summary="List jobs, newest first")
async def list_jobs(who: Who, svc: Svc) -> Response:
    out: list[dict[str, Any]] = []
    size = svc.settings.max_page_size
    while True:
        page = await uc.list_jobs(svc, who, JobFilter(), offset=len(out), limit=size)
        out.extend(_summary(v) for v in page.items)
        if len(page.items) < size or len(out) >= page.total:
            return JSON(out)


@router.get("/jobs/{job_id}", summary="A job, with its nodes grouped by state")
async def get_job(job_id: str, who: Who, svc: Svc) -> Response:
    return JSON(_detail(await uc.get_job(svc, who, _job_id(job_id))))


@router.get("/jobs/{job_id}/output/{node}/{channel}", summary="A node's stdout or stderr")
async def output(job_id: str, node: str, channel: str, who: Who, svc: Svc) -> Response:
    if channel not in ("stdout", "stderr"):
        raise NotFound(f"no output channel '{channel}': use stdout or stderr")
    run = await outputs.node_output(svc, who, _job_id(job_id), node)
    data = run.stdout if channel == "stdout" else run.stderr
    return Response(data.encode(), media_type="application/octet-stream")


def _node_state(name: str, online: bool, busy: bool) -> dict[str, str]:
    return {
        "node_name": name,
        "status": "online" if online else "offline",
        "availability": "available" if online and not busy else "unavailable",
    }


@router.get("/node_states", summary="Every node's status and availability")
async def node_states(who: Who, svc: Svc) -> Response:
    nodes = await node_uc.list_nodes(svc, who)
    return JSON([_node_state(n.name, n.online, n.busy) for n in nodes])


@router.get("/node_states/{node}", summary="One node's status (unknown nodes are offline)")
async def node_state(node: str, who: Who, svc: Svc) -> Response:
    found = await node_uc.find_node(svc, who, node)
    if found is None:
        return JSON(_node_state(node, False, False))
    return JSON(_node_state(found.name, found.online, found.busy))


# -- server-sent events


def _sse(name: str, event_id: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (name.encode(), event_id.encode(), dumps(data))


def _last_id(header: str | None) -> int | None:
    if header is None or not (header.strip().isascii() and header.strip().isdigit()):
        return None
    return int(header.strip())


def _start_data(view: JobView, actor: str | None) -> dict[str, Any]:
    job = view.job
    nodes = len(view.runs) or len(job.target.get("nodes", []))
    return {
        "command": job.command,
        "run_timeout": job.run_timeout,
        "user": actor,
        "quorum": Quorum.parse(job.quorum).required(nodes),
        "node_count": nodes,
    }


async def _wait(queue: asyncio.Queue[Any]) -> bool:
    """Wait for a wake-up on the hub; False when the keepalive interval passed first."""
    try:
        await asyncio.wait_for(queue.get(), timeout=KEEPALIVE)
    except TimeoutError:
        return False
    while not queue.empty():
        queue.get_nowait()
    return True


async def _job_feed(
    svc: Services, who: Principal, view: JobView, after: int
) -> AsyncIterator[bytes]:
    job_id = view.job.id
    finished_before = view.job.status.terminal
    async with svc.hub.subscribe(f"job:{job_id}") as queue:
        done = False
        while True:
            batch = await uc.job_events(svc, who, job_id, after)
            for e in batch:
                after = e.id
                chunk = _job_feed_event(e, view)
                if chunk is not None:
                    done = done or chunk[0] == "job_complete"
                    yield _sse(chunk[0], str(e.id), chunk[1])
            if batch and len(batch) >= 500:
                continue
            if done or finished_before:
                break
            if not await _wait(queue):
                yield b":\n\n"
    if finished_before:
        final = await uc.get_job(svc, who, job_id)
        summary = {"timestamp": chef.feed_timestamp(final.job.updated_at), **_detail(final)}
        yield _sse("summary", f"{after}.summary", summary)


def _job_feed_event(e: Event, view: JobView) -> tuple[str, dict[str, Any]] | None:
    out = chef.feed_event(e.kind, e.type, e.from_status, e.to_status, e.node_name)
    if out is None:
        return None
    name, data = out
    if name == "start":
        data = _start_data(view, e.actor)
    return name, {"timestamp": chef.feed_timestamp(e.created_at), **data}


@router.get("/jobs_status_feed/{job_id}", summary="Server-sent events of one job")
async def job_feed(
    job_id: str,
    who: Who,
    svc: Svc,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    view = await uc.get_job(svc, who, _job_id(job_id))
    after = _last_id(last_event_id) or 0
    return StreamingResponse(
        _job_feed(svc, who, view, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _org_feed(
    svc: Services, who: Principal, after: int, history: bool
) -> AsyncIterator[bytes]:
    async with svc.hub.subscribe(f"org:{who.org_id}") as queue:
        if history:
            stamp = chef.feed_timestamp(svc.clock.now())
            yield _sse("start_of_history", f"{after}.history", {"timestamp": stamp})
        while True:
            batch = await event_log.org_events(svc, who, after)
            for e in batch:
                after = e.id
                chunk = await _org_feed_event(svc, who, e)
                if chunk is not None:
                    yield _sse(chunk[0], str(e.id), chunk[1])
            if len(batch) >= 500:
                continue
            if not await _wait(queue):
                yield b":\n\n"


async def _org_feed_event(
    svc: Services, who: Principal, e: Event
) -> tuple[str, dict[str, Any]] | None:
    if e.kind != "job" or e.job_id is None:
        return None
    out = chef.feed_event(e.kind, e.type, e.from_status, e.to_status, e.node_name)
    if out is None or out[0] not in chef.ORG_FEED_EVENTS:
        return None
    name, data = out
    if name == "start":
        with contextlib.suppress(NotFound):
            data = _start_data(await uc.get_job(svc, who, e.job_id), e.actor)
    stamp = chef.feed_timestamp(e.created_at)
    return name, {"timestamp": stamp, "job": chef.render_id(e.job_id), **data}


@router.get("/jobs_status_feed", summary="Server-sent events of every job of the organization")
async def org_feed(
    who: Who,
    svc: Svc,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Response:
    newest = await event_log.last_event_id(svc)
    history = False
    if last_event_id is None:
        after = newest
    else:
        known = _last_id(last_event_id)
        # An id this server never gave: say so, then replay what the log still holds.
        history = known is None or known > newest
        after = 0 if history or known is None else known
    return StreamingResponse(
        _org_feed(svc, who, after, history),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
