"""TheEye dialect: /compat/theeye/ — V1 routes ``/{customer}/job...`` and V2 routes
``/job...?customer=``.

People list, read, create (from a task), cancel, approve, reject and answer jobs; an
agent credential polls ``GET /{customer}/job?hostname=H`` for its next job (its script at
``/{customer}/script/{id}/download``) and finishes it with ``PUT /{customer}/job/{id}``.
Ids are 24 hex digits; words come from ``domain/dialects/theeye.py``; errors are
``{message, code, statusCode}``.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api.auth import agent_principal, principal, services, token_from
from jobyard.api.compat import decode_json, json_object, same_org
from jobyard.api.compat import theeye_views as views
from jobyard.api.hooks import client_of
from jobyard.api.responses import JSON
from jobyard.domain.accounts import Role
from jobyard.domain.dialects import theeye
from jobyard.domain.errors import Conflict, Forbidden, Invalid, NotFound
from jobyard.domain.records import Principal
from jobyard.service import approvals, history, hooks, polling, provenance
from jobyard.service import jobs as uc
from jobyard.service import tasks as tasks_uc
from jobyard.service.context import Services
from jobyard.service.jobs import JobView
from jobyard.store.jobs import JobFilter

PREFIX = "/compat/theeye"
router = APIRouter(prefix=PREFIX, tags=["dialect: TheEye"])
Svc = Annotated[Services, Depends(services)]
Caller = Callable[..., Awaitable[Principal]]


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    # TheEye answers bad input with 400.
    shown = 400 if status == 422 else status
    code = theeye.ERROR_CODE.get(shown)
    if code is None:
        try:
            code = http.HTTPStatus(shown).phrase.replace(" ", "")
        except ValueError:
            code = ""
    return JSON({"message": detail, "code": code, "statusCode": shown}, status_code=shown)


# Failures under this prefix are answered by render_error (composed in api/app.py).
ERRORS_UNDER = PREFIX + "/"


def org_in_path(caller: Caller) -> Caller:
    """V1: the organization in the path (``/{customer}/...``) must be the credential's."""

    async def member(customer: str, who: Principal = Depends(caller)) -> Principal:
        same_org(customer, who)
        return who

    return member


def org_in_query(caller: Caller) -> Caller:
    """V2: ``?customer=`` names the organization; without it, the credential's own."""

    async def member(request: Request, who: Principal = Depends(caller)) -> Principal:
        customer = request.query_params.get("customer")
        if customer is not None:
            same_org(customer, who)
        return who

    return member


# People only (an agent credential answers 403), and the routes theeye-agent calls (an
# agent credential is admitted too).
Who = Annotated[Principal, Depends(org_in_path(principal))]
WhoV2 = Annotated[Principal, Depends(org_in_query(principal))]
Agent = Annotated[Principal, Depends(org_in_path(agent_principal))]
AgentV2 = Annotated[Principal, Depends(org_in_query(agent_principal))]


def need(who: Principal, credential: str) -> None:
    """TheEye's ``requireCredential``: at least this credential (agents stand apart)."""
    if not who.role.at_least(theeye.CREDENTIAL[credential]):
        raise Forbidden(f"forbidden: this needs the {credential} credential")


def native_id(text: str, what: str) -> int:
    """A TheEye id: malformed answers 400 ("job id is invalid", as the supervisor's param
    resolver says); well formed but naming nothing here, 404."""
    if not theeye.well_formed_id(text):
        raise Invalid(f"{what} id is invalid: an id is 24 hex digits", what)
    native = theeye.parse_id(text)
    if native is None:
        raise NotFound(f"{what} {text} not found")
    return native


def job_id(text: str) -> int:
    return native_id(text, "job")


async def publish(svc: Services, who: Principal, view: JobView) -> dict[str, Any]:
    found = await provenance.origins(svc, [view])
    return views.for_item(who, view, found)


# -- people: list, read, lifecycle, cancel


async def list_jobs(svc: Services, who: Principal, q: views.ListQuery) -> list[dict[str, Any]]:
    need(who, "viewer")
    if q.impossible:
        return []
    flt = JobFilter(statuses=q.statuses, name=q.where.get("name"), node=q.where.get("hostname"))
    out: list[dict[str, Any]] = []
    size = svc.settings.max_page_size
    offset = 0
    while len(out) < q.limit:
        page = await uc.list_jobs(
            svc, who, flt, sort=q.sort, descending=q.descending, offset=offset, limit=size
        )
        own = [v for v in page.items if v.job.org_id == who.org_id]
        found = await provenance.origins(svc, own)
        for view in own:
            item = views.for_item(who, view, found)
            if q.matches(item):
                out.append(q.project(item))
                if len(out) >= q.limit:
                    break
        offset += len(page.items)
        if len(page.items) < size or offset >= page.total:
            break
    return out


async def agent_queue(svc: Services, who: Principal, request: Request) -> Response:
    hostname = request.query_params.get("hostname")
    if not hostname:
        raise Invalid("host is required: send ?hostname=<this node's name>", "hostname")
    view = await polling.poll_next_job(svc, who, hostname)
    jobs = []
    if view is not None:
        found = await provenance.origins(svc, [view])
        jobs.append(
            views.agent_job(view, found.get(view.job.id, provenance.NO_ORIGIN), who.org_name)
        )
    return JSON({"jobs": jobs})


async def jobs_or_next(svc: Services, who: Principal, request: Request) -> Response:
    """A person's list of jobs; an agent credential's next job."""
    if who.role is Role.AGENT:
        return await agent_queue(svc, who, request)
    return JSON(await list_jobs(svc, who, views.list_query(request.query_params)))


@router.get("/{customer}/job", summary="List jobs (an agent credential: its next job)")
async def get_jobs(request: Request, who: Agent, svc: Svc) -> Response:
    return await jobs_or_next(svc, who, request)


@router.get("/job", summary="List jobs (V2)")
async def get_jobs_v2(request: Request, who: AgentV2, svc: Svc) -> Response:
    return await jobs_or_next(svc, who, request)


async def read_job(svc: Services, who: Principal, text_id: str) -> dict[str, Any]:
    need(who, "viewer")
    return await publish(svc, who, await uc.get_job(svc, who, job_id(text_id)))


@router.get("/{customer}/job/{job}", summary="A job")
async def get_job(job: str, who: Who, svc: Svc) -> Response:
    return JSON(await read_job(svc, who, job))


@router.get("/job/{job}", summary="A job (V2)")
async def get_job_v2(job: str, who: WhoV2, svc: Svc) -> Response:
    return JSON(await read_job(svc, who, job))


async def read_lifecycle(svc: Services, who: Principal, text_id: str) -> str:
    need(who, "user")
    view = await uc.get_job(svc, who, job_id(text_id))
    found = await provenance.origins(svc, [view])
    return views.lifecycle_of(view, found.get(view.job.id, provenance.NO_ORIGIN))


@router.get("/{customer}/job/{job}/lifecycle", summary="A job's lifecycle word")
async def get_lifecycle(job: str, who: Who, svc: Svc) -> Response:
    return JSON(await read_lifecycle(svc, who, job))


@router.get("/job/{job}/lifecycle", summary="A job's lifecycle word (V2)")
async def get_lifecycle_v2(job: str, who: WhoV2, svc: Svc) -> Response:
    return JSON(await read_lifecycle(svc, who, job))


async def cancel(svc: Services, who: Principal, text_id: str) -> Response:
    need(who, "viewer")
    native = job_id(text_id)
    view = await uc.get_job(svc, who, native)
    found = await provenance.origins(svc, [view])
    word = views.lifecycle_of(view, found.get(native, provenance.NO_ORIGIN))
    if word not in theeye.IN_PROGRESS_LIFECYCLES:
        raise Invalid(
            f'cannot cancel job. current state lifecycle "{word}" does not allow the transition'
        )
    try:
        await uc.stop_job(svc, who, native, reason=f"canceled by {who.actor}", record_stopper=True)
    except Conflict as exc:
        raise Invalid(
            f"cannot cancel job. current state does not allow the transition: {exc.detail}"
        ) from None
    return Response(status_code=204)


@router.put("/{customer}/job/{job}/cancel", status_code=204, summary="Cancel a job")
async def cancel_job(job: str, who: Who, svc: Svc) -> Response:
    return await cancel(svc, who, job)


@router.put("/job/{job}/cancel", status_code=204, summary="Cancel a job (V2)")
async def cancel_job_v2(job: str, who: WhoV2, svc: Svc) -> Response:
    return await cancel(svc, who, job)


# -- agents: finish a job, download its script, keep alive


def _result(body: dict[str, Any]) -> polling.PolledResult:
    payload = body.get("result")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise Invalid("result must be an object {state, data}", "result")
    state = payload.get("state")
    if state is not None and not isinstance(state, str):
        raise Invalid("result.state must be a string such as success or failure", "state")
    data = payload.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise Invalid("result.data must be an object", "data")
    code = data.get("code")
    exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    killed = data.get("killed") is True
    stdout = data.get("stdout")
    stderr = data.get("stderr")
    if stdout is None and stderr is None:
        stdout = data.get("log")
    kept = {k: v for k, v in data.items() if k not in ("stdout", "stderr", "log")}
    if killed and state is None:
        state = theeye.TIMEOUT
    return polling.PolledResult(
        succeeded=not killed and theeye.result_succeeded(state, exit_code),
        exit_code=exit_code,
        state=state,
        data=kept,
        stdout=stdout if isinstance(stdout, str) else "",
        stderr=stderr if isinstance(stderr, str) else "",
    )


@router.put("/{customer}/job/{job}", summary="Finish a job (agent)")
async def finish_job(job: str, request: Request, who: Agent, svc: Svc) -> Response:
    if who.role is not Role.AGENT:
        raise Forbidden("forbidden: only an agent credential finishes a job")
    body = await json_object(request)
    hostname = request.query_params.get("hostname") or body.get("hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise Invalid("hostname must be a string", "hostname")
    view = await polling.finish_polled_job(svc, who, hostname, job_id(job), _result(body))
    found = await provenance.origins(svc, [view])
    return JSON(views.job(view, found.get(view.job.id, provenance.NO_ORIGIN), who.org_name))


@router.get("/{customer}/script/{script}/download", summary="The script of a job (agent)")
async def download_script(script: str, who: Agent, svc: Svc) -> Response:
    view = await polling.handed_job(svc, who, native_id(script, "script"))
    return Response(views.script_of(view).encode(), media_type="application/octet-stream")


@router.put("/{customer}/agent/{hostname}", summary="Agent keep-alive")
async def keep_alive(hostname: str, who: Agent, svc: Svc) -> Response:
    await polling.agent_alive(svc, who, hostname)
    return JSON({})


# -- agents: a token, registration, configuration (what theeye-agent does when it starts)

# What the supervisor adds to a registration answer (config.agent.core_workers.host_ping).
HOST_PING = {"type": "keepAlive", "looptime": 30000}


@router.post("/token", summary="An access token for a client id and secret (agent)")
async def access_token(
    request: Request, who: Annotated[Principal, Depends(agent_principal)]
) -> Response:
    """theeye-agent asks for a token with HTTP Basic (client id, client secret) first. A
    jobyard credential is both: the answer is the token it presented, as a JSON string."""
    presented = token_from(request)
    assert presented is not None  # principal() authenticated it
    return JSON(presented)


async def register(svc: Services, who: Principal, hostname: str) -> Response:
    node = await polling.register_agent(svc, who, hostname)
    return JSON(
        {
            "resource_id": theeye.render_id(node.id),
            "host_id": theeye.render_id(node.id),
            **HOST_PING,
        }
    )


@router.post("/{customer}/host/{hostname}", summary="Register an agent's host")
async def register_host(hostname: str, who: Agent, svc: Svc) -> Response:
    return await register(svc, who, hostname)


@router.post("/host/{hostname}", summary="Register an agent's host (V2)")
async def register_host_v2(hostname: str, who: AgentV2, svc: Svc) -> Response:
    return await register(svc, who, hostname)


@router.get("/{customer}/agent/{hostname}/config", summary="An agent's workers")
async def agent_config(hostname: str, who: Agent, svc: Svc) -> Response:
    """The workers the supervisor configures on the host (its monitors): jobyard runs no
    monitors, so none; the agent's job listener is its own (local) worker."""
    await polling.registered_node(svc, who, hostname)
    return JSON({"workers": []})


# -- people: create from a task, approve, reject, input


def task_id(text: Any) -> int:
    if not isinstance(text, str):
        raise Invalid("task id is invalid: an id is 24 hex digits", "task")
    return native_id(text, "task")


def task_arguments(body: Any, query: Any) -> Any:
    """TheEye's ``task_arguments``: values, or ``{order, label, value}`` objects, in order;
    the body itself may be the list."""
    if isinstance(body, list):
        given: Any = body
    else:
        given = body.get("task_arguments")
        if given is None:
            given = query
    if given is None:
        return []
    if not isinstance(given, list):
        raise Invalid("task_arguments must be a list of values", "task_arguments")
    if all(isinstance(a, dict) and "value" in a for a in given) and given:
        ordered = sorted(given, key=lambda a: a.get("order", 0) if isinstance(a, dict) else 0)
        return [a["value"] for a in ordered]
    return list(given)


async def _body(request: Request) -> Any:
    """A JSON object, or a bare list (TheEye takes the arguments list as the body)."""
    raw = await request.body()
    if raw.strip().startswith(b"["):
        return decode_json(raw)
    return await json_object(request)


async def create(svc: Services, who: Principal, request: Request) -> Response:
    need(who, "user")
    body = await _body(request)
    query = request.query_params
    task = body.get("task") if isinstance(body, dict) else None
    task = task if task is not None else query.get("task")
    if task is None:
        raise Invalid("task is required: the id of the task to run", "task")
    if isinstance(task, dict):
        task = task.get("id")
    query_args = query.getlist("task_arguments") or None
    view = await tasks_uc.run_task(svc, who, task_id(task), task_arguments(body, query_args))
    data = await publish(svc, who, view)
    data["user"] = {"id": theeye.render_id(who.user_id), "username": who.email, "email": who.email}
    return JSON(data)


@router.post("/{customer}/job", summary="Run a task: a new job")
async def create_job(request: Request, who: Who, svc: Svc) -> Response:
    return await create(svc, who, request)


@router.post("/job", summary="Run a task: a new job (V2)")
async def create_job_v2(request: Request, who: WhoV2, svc: Svc) -> Response:
    return await create(svc, who, request)


async def decide(svc: Services, who: Principal, text_id: str, approve: bool) -> Response:
    need(who, "viewer")
    await approvals.decide(svc, who, job_id(text_id), approve)
    return Response(status_code=204)


@router.put("/job/{job}/approve", status_code=204, summary="Approve an approval job")
async def approve_v2(job: str, who: WhoV2, svc: Svc) -> Response:
    return await decide(svc, who, job, True)


@router.put("/job/{job}/reject", status_code=204, summary="Reject an approval job")
async def reject_v2(job: str, who: WhoV2, svc: Svc) -> Response:
    return await decide(svc, who, job, False)


@router.put("/{customer}/job/{job}/approve", status_code=204, summary="Approve (V1)")
async def approve(job: str, who: Who, svc: Svc) -> Response:
    return await decide(svc, who, job, True)


@router.put("/{customer}/job/{job}/reject", status_code=204, summary="Reject (V1)")
async def reject(job: str, who: Who, svc: Svc) -> Response:
    return await decide(svc, who, job, False)


async def give_input(svc: Services, who: Principal, text_id: str, request: Request) -> Response:
    need(who, "user")
    native = job_id(text_id)
    body = await json_object(request)
    args = body.get("args")
    if args is None:
        args = []
    if not isinstance(args, list):
        raise Invalid("args must be a list of values", "args")
    try:
        view = await approvals.give_input(svc, who, native, args)
    except Conflict as exc:
        # TheEye answers input to a job that is not waiting with 400.
        raise Invalid(f"only on hold jobs allowed: {exc.detail}", "job") from None
    return JSON(await publish(svc, who, await uc.get_job(svc, who, view.job.id)))


@router.put("/job/{job}/input", summary="Give a waiting job its input")
async def input_v2(job: str, request: Request, who: WhoV2, svc: Svc) -> Response:
    return await give_input(svc, who, job, request)


@router.put("/{customer}/job/{job}/input", summary="Give a waiting job its input (V1)")
async def input_v1(job: str, request: Request, who: Who, svc: Svc) -> Response:
    return await give_input(svc, who, job, request)


# -- anonymous runs, history


@router.post("/job/secret/{secret}", summary="Run a task by its secret (anonymous)")
async def run_by_secret(secret: str, request: Request, svc: Svc) -> Response:
    query = request.query_params
    customer = query.get("customer")
    if not customer:
        raise Forbidden("organization is required: send ?customer=<organization name>")
    task = query.get("task")
    if not task:
        raise Invalid("task is required: send ?task=<task id>", "task")
    body = await _body(request)
    client = client_of(request)
    try:
        view = await hooks.run_by_secret(
            svc,
            secret,
            task_arguments(body, query.getlist("task_arguments") or None),
            client=client,
            org_name=customer,
            task_id=task_id(task),
        )
    except NotFound:
        raise Forbidden("invalid secret") from None
    found = await provenance.origins(svc, [view])
    data = views.job(view, found.get(view.job.id, provenance.NO_ORIGIN), customer)
    data["user"] = {"id": None, "username": None, "email": None}
    return JSON(data)


@router.delete("/job/finished", summary="Delete finished jobs (admin)")
async def delete_finished(request: Request, who: WhoV2, svc: Svc) -> Response:
    need(who, "admin")
    query = request.query_params
    kind = query.get("type")
    if kind is not None and "Task" not in kind:
        raise Invalid("Entity type not found: use type=Task&id=<task id>", "type")
    task = task_id(query.get("id")) if kind is not None else None
    await history.delete_finished_jobs(svc, who, task_id=task)
    return JSON({})
