"""Chef Push Jobs dialect: /compat/chef/organizations/{org}/pushy/.

Jobs (start, list, get with nodes grouped by state), per-node output, node states,
and the job and organization status feeds as server-sent events replayed from the
event log. Errors are ``{"error": ["message"]}``; ids are 32 hex digits.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api.auth import admit, principal, services, services_of
from jobyard.api.compat import base_url, json_object, same_org, string_map, text
from jobyard.api.responses import JSON
from jobyard.api.sse import event_stream, frame, job_finished
from jobyard.domain.dialects import chef, chef_signing
from jobyard.domain.errors import Invalid, NotFound
from jobyard.domain.jobspec import DEFAULT_RUN_TIMEOUT, JobSpec
from jobyard.domain.quorum import Quorum
from jobyard.domain.records import Event, Node, Principal
from jobyard.domain.targets import Target
from jobyard.service import chef_keys, feeds, outputs
from jobyard.service import jobs as uc
from jobyard.service import nodes as node_uc
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

PREFIX = "/compat/chef/organizations/{org}/pushy"
router = APIRouter(prefix=PREFIX, tags=["dialect: Chef Push Jobs"])
Svc = Annotated[Services, Depends(services)]


def _signed_path(request: Request) -> str:
    """The path as the client sent it (still percent-encoded), which is what it signed."""
    raw = request.scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else request.url.path


async def org_member(org: str, request: Request) -> Principal:
    """The caller: a Chef-signed request (X-Ops-* headers) or any jobyard token."""
    if chef_signing.is_signed(request.headers):
        svc = services_of(request)
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
        admit(who)  # a Chef key registered for an agent is no person
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


# Failures under this prefix are answered by render_error (composed in api/app.py).
ERRORS_UNDER = "/compat/chef/"


def _job_id(text_id: str) -> int:
    native = chef.parse_id(text_id)
    if native is None:
        raise NotFound(f"job '{text_id}' not found")
    return native


def _job_url(request: Request, org: str, job_id: int) -> str:
    return (
        f"{base_url(request)}/compat/chef/organizations/{org}/pushy/jobs/{chef.render_id(job_id)}"
    )


def _summary(view: JobView, include_file: bool = False) -> dict[str, Any]:
    job = view.job
    return {
        "id": chef.render_id(job.id),
        "command": job.command,
        "run_timeout": job.run_timeout,
        "status": chef.JOB_STATUS[job.status],
        "created_at": chef.rfc1123(job.created_at),
        "updated_at": chef.rfc1123(job.updated_at),
        **_options(view, include_file),
    }


def _options(view: JobView, include_file: bool = False) -> dict[str, Any]:
    job = view.job
    env = job.env if job.env or job.meta.get("env_given") else None
    return chef.job_options(
        job.meta.get("user"),
        job.dir,
        env,
        job.capture_output,
        job.meta.get("file"),
        include_file=include_file,
    )


def _detail(view: JobView, include_file: bool = False) -> dict[str, Any]:
    nodes: dict[str, list[str]] = {}
    for run in view.runs:
        nodes.setdefault(chef.NODE_STATE[run.status], []).append(run.node_name)
    return {**_summary(view, include_file), "nodes": nodes}


# The body's keys and the message Push Jobs answers for a wrong one (pushy_jobs_resource).
_KEYS = {
    "command",
    "nodes",
    "run_timeout",
    "quorum",
    "user",
    "dir",
    "env",
    "file",
    "capture_output",
}


def _spec(body: dict[str, Any]) -> JobSpec:
    unknown = sorted(set(body) - _KEYS)
    if unknown:
        raise Invalid(f"invalid key supplied: {', '.join(unknown)}", unknown[0])
    command = body.get("command")
    if not isinstance(command, str) or not command:
        raise Invalid("invalid command supplied", "command")
    nodes = body.get("nodes")
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise Invalid("at least one node must be supplied", "nodes")
    quorum = body.get("quorum")
    if quorum is not None and (isinstance(quorum, bool) or not isinstance(quorum, (int, str))):
        raise Invalid("invalid type supplied for quorum (expected a number)", "quorum")
    run_timeout = body.get("run_timeout")
    if isinstance(run_timeout, float) and run_timeout.is_integer():
        run_timeout = int(run_timeout)
    if run_timeout is not None and (
        isinstance(run_timeout, bool) or not isinstance(run_timeout, int)
    ):
        raise Invalid("invalid type supplied for run_timeout (expected a number)", "run_timeout")
    capture = body.get("capture_output", False)
    if not isinstance(capture, bool):
        raise Invalid("invalid type supplied for capture_output (expected a boolean)", "capture")
    meta: dict[str, Any] = {}
    for key in ("user", "file"):
        value = text(body, key)
        if value is not None:
            meta[key] = value
    if "file" in meta:
        chef.check_file(meta["file"])
    if "env" in body:
        meta["env_given"] = True
    return JobSpec(
        target=Target(nodes=tuple(nodes)),
        command=command,
        quorum=Quorum.parse(quorum),
        run_timeout=DEFAULT_RUN_TIMEOUT if run_timeout is None else run_timeout,
        env=string_map(body, "env") or {},
        dir=text(body, "dir"),
        capture_output=capture,
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
async def get_job(job_id: str, who: Who, svc: Svc, include_file: str | None = None) -> Response:
    view = await uc.get_job(svc, who, _job_id(job_id))
    return JSON(_detail(view, include_file == "true"))


@router.get("/jobs/{job_id}/output/{node}/{channel}", summary="A node's stdout or stderr")
async def output(job_id: str, node: str, channel: str, who: Who, svc: Svc) -> Response:
    if channel not in ("stdout", "stderr"):
        raise NotFound(f"no output channel '{channel}': use stdout or stderr")
    native = _job_id(job_id)
    data = await outputs.read_stream(svc, who, native, node, channel)
    if not (await uc.get_job(svc, who, native)).job.capture_output:
        # Push Jobs keeps no output of a job started without capture_output.
        raise NotFound(f"job '{job_id}' was started without capture_output: no output kept")
    return Response(data.encode(), media_type="application/octet-stream")


def _node_state(name: str, node: Node | None) -> dict[str, str]:
    online = node is not None and node.online
    return {
        "node_name": name,
        "status": "online" if online else "offline",
        # The dispatcher's own rule: "available" only when the next job's commit is acked.
        "availability": node.availability.word if node is not None else "unavailable",
    }


@router.get("/node_states", summary="Every node's status and availability")
async def node_states(who: Who, svc: Svc) -> Response:
    nodes = await node_uc.list_nodes(svc, who)
    return JSON([_node_state(n.name, n) for n in nodes])


@router.get("/node_states/{node}", summary="One node's status (unknown nodes are offline)")
async def node_state(node: str, who: Who, svc: Svc) -> Response:
    found = await node_uc.find_node(svc, who, node)
    if found is None:
        return JSON(_node_state(node, None))
    return JSON(_node_state(found.name, found))


# -- server-sent events: the native machinery (api/sse.py) with Push Jobs' words.
# The real server's path is job_status_feed; its docs print jobs_status_feed: both work.


def _start_data(view: JobView, actor: str | None) -> dict[str, Any]:
    job = view.job
    nodes = len(view.runs) or len(job.target.get("nodes", []))
    data: dict[str, Any] = {
        "command": job.command,
        "run_timeout": job.run_timeout,
        "quorum": Quorum.parse(job.quorum).required(nodes),
        "node_count": nodes,
        "user": actor,
    }
    # pushy_job_state's start event: job_user, dir, env, file_specified, capture.
    options = _options(view)
    for key, name in (
        ("user", "job_user"),
        ("dir", "dir"),
        ("env", "env"),
        ("file_specified", "file_specified"),
        ("capture_output", "capture"),
    ):
        if key in options:
            data[name] = options[key]
    return data


def _feed_event(e: Event) -> tuple[str, dict[str, Any]] | None:
    out = chef.feed_event(e.kind, e.type, e.from_status, e.to_status, e.node_name, e.reason)
    if out is None:
        return None
    name, data = out
    return name, {"timestamp": chef.feed_timestamp(e.created_at), **data}


def _org_last_id(request: Request, newest: int) -> tuple[int, bool]:
    """Where the organization feed starts, and whether it replays history.

    Without Last-Event-ID it starts now; with an id this server never gave, it says
    ``start_of_history`` and replays what the event log holds.
    """
    header = request.headers.get("last-event-id")
    if header is None:
        return newest, False
    raw = header.strip()
    known = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
    if known is None or known > newest:
        return 0, True
    return known, False


async def job_feed(job_id: str, request: Request, who: Who, svc: Svc) -> Response:
    view = await uc.get_job(svc, who, _job_id(job_id))  # 404 before the stream starts
    native = view.job.id

    def render(e: Event) -> list[tuple[str | None, Any]]:
        chunk = _feed_event(e)
        if chunk is None:
            return []
        name, data = chunk
        if name == "start":
            data = {"timestamp": data["timestamp"], **_start_data(view, e.actor)}
        return [(name, data)]

    async def summary() -> list[bytes]:
        final = await uc.get_job(svc, who, native)
        data = {"timestamp": chef.feed_timestamp(final.job.updated_at), **_detail(final)}
        return [frame(None, "summary", data)]

    return event_stream(
        request,
        f"job:{native}",
        lambda after: uc.job_events(svc, who, native, after),
        render,
        until=job_finished,
        closed=summary if view.job.status.terminal else None,
    )


async def org_feed(request: Request, who: Who, svc: Svc) -> Response:
    feeds.check_reader(who)  # 403 before the stream starts
    after, history = _org_last_id(request, await feeds.last_event_id(svc))
    prologue = []
    if history:
        stamp = chef.feed_timestamp(svc.clock.now())
        prologue.append(frame(None, "start_of_history", {"timestamp": stamp}))

    async def render(e: Event) -> list[tuple[str | None, Any]]:
        if e.kind != "job" or e.job_id is None:
            return []
        chunk = _feed_event(e)
        if chunk is None or chunk[0] not in chef.ORG_FEED_EVENTS:
            return []
        name, data = chunk
        if name == "start":
            with contextlib.suppress(NotFound):
                start = _start_data(await uc.get_job(svc, who, e.job_id), e.actor)
                data = {"timestamp": data["timestamp"], **start}
        return [(name, {"timestamp": data["timestamp"], "job": chef.render_id(e.job_id), **data})]

    return event_stream(
        request,
        f"org:{who.org_id}",
        lambda since: feeds.org_events(svc, who, since),
        render,
        after=after,
        prologue=prologue,
    )


for _path in ("/job_status_feed", "/jobs_status_feed"):
    router.add_api_route(
        f"{_path}/{{job_id}}",
        job_feed,
        methods=["GET"],
        summary="Server-sent events of one job",
        operation_id=f"chef{_path.replace('/', '_')}_job",
    )
    router.add_api_route(
        _path,
        org_feed,
        methods=["GET"],
        summary="Server-sent events of every job of the organization",
        operation_id=f"chef{_path.replace('/', '_')}_org",
    )
