"""Kragle dialect: /compat/kragle/ (Kragle's ``https://kragle.io/api/v1``).

Kragle *jobs* are native triggers (a stack on a schedule, ``do_run`` = enabled, ``do_del``
= queued for deletion); *schedules* and *stacks* are the native ones. Lists come in pages
of ten (``{count, pagesize, page, <items>}``, ``page`` from 1). Ids are integers.

Who is asking: a session cookie from ``POST /authenticate`` (email or username, and
password), "inline auth" (``{"auth": {...}, "payload": {...}}``), or a jobyard API token.
Every error is an HTTP 500 with ``{"code": n, "msg": "..."}`` (``domain/dialects/kragle``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from jobyard.api import auth
from jobyard.api.compat import json_object
from jobyard.api.hooks import client_of
from jobyard.api.ids import is_id
from jobyard.api.responses import JSON
from jobyard.domain.chains import parse_target
from jobyard.domain.dialects import kragle
from jobyard.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from jobyard.domain.records import Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.triggers import SavedSchedule, Stack, Trigger
from jobyard.service import schedules as schedules_uc
from jobyard.service import sessions, stack_hooks
from jobyard.service import stacks as stacks_uc
from jobyard.service import tasks as tasks_uc
from jobyard.service import triggers as triggers_uc
from jobyard.service.context import Services
from jobyard.service.cookies import SessionCodec

PREFIX = "/compat/kragle"
COOKIE = "kragle_session"
router = APIRouter(prefix=PREFIX, tags=["dialect: Kragle"])
Svc = Annotated[Services, Depends(auth.services)]


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    named = extra.get("kragle_code")
    if named is None and extra.get("malformed"):
        named = kragle.BAD_JSON
    code = kragle.code_of(status, named)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    # Kragle answers every fault with 500, but a refused sign-in rate is a 429 (with the same
    # body) so that clients and proxies can back off by the status and Retry-After.
    return JSON(
        {"code": code, "msg": kragle.message(code, detail)},
        status_code=429 if status == 429 else 500,
        headers=headers,
    )


# Failures under this prefix are answered by render_error (composed in api/app.py).
ERRORS_UNDER = PREFIX + "/"


# -- who is asking


def codec(svc: Services) -> SessionCodec:
    found = svc.runtime.codecs.get("kragle")
    if found is None:
        found = svc.runtime.codecs["kragle"] = SessionCodec.from_settings(svc.settings)
    return found


@dataclass
class Call:
    """One authenticated request: who asks, and its payload (inline auth unwrapped)."""

    who: Principal
    body: dict[str, Any]


def _login_fields(auth: Any) -> tuple[str, str, str | None]:
    if not isinstance(auth, dict):
        raise Invalid("auth must be an object {username or email, password}", "auth")
    login = auth.get("username") or auth.get("email")
    password = auth.get("password")
    org = auth.get("organization")
    if not isinstance(login, str) or not isinstance(password, str) or not login or not password:
        raise Unauthenticated("send username (or email) and password")
    if org is not None and not isinstance(org, str):
        raise Invalid("organization must be a name", "organization")
    return login, password, org


async def _body(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "HEAD", "DELETE"):
        return {}
    return await json_object(request)


async def call(request: Request, svc: Svc) -> Call:
    """FastAPI dependency: the caller and the payload, or a Kragle error."""
    body = await _body(request)
    if "auth" in body and "payload" in body:
        login, password, org = _login_fields(body["auth"])
        who = await sessions.sign_in(svc, login, password, client=client_of(request), org_name=org)
        payload = body["payload"]
        if not isinstance(payload, dict):
            raise Invalid("payload must be a JSON object", "payload", malformed=True)
        return Call(who, payload)
    secret = auth.token_from(request)
    if secret:
        return Call(await auth.authenticate(svc, secret), body)
    signed_in = await _signed_in(request, svc)
    if signed_in is None:
        raise Unauthenticated(
            "log in first (POST /authenticate with username or email and password), "
            "use inline auth, or send an API token"
        )
    return Call(signed_in, body)


async def _signed_in(request: Request, svc: Services) -> Principal | None:
    """Who the log-in cookie stands for (None: no cookie, or a session that ended)."""
    session = codec(svc).loads(request.cookies.get(COOKIE))
    if session is None:
        return None
    return (await sessions.restore(svc, session))[1]


Caller = Annotated[Call, Depends(call)]


async def _authenticate(request: Request, svc: Services) -> Response:
    body = await json_object(request)
    login, password, org = _login_fields(body)
    who = await sessions.sign_in(svc, login, password, client=client_of(request), org_name=org)
    session = await sessions.open_session(svc, who)
    cookie = codec(svc).set_cookie(COOKIE, session, path=PREFIX, same_site="Strict")
    return JSON({"code": 0, "user_id": who.user_id}, headers={"Set-Cookie": cookie})


@router.post("/authenticate", summary="Log in: a session cookie for later calls")
async def authenticate(request: Request, svc: Svc) -> Response:
    return await _authenticate(request, svc)


@router.post("/login", summary="Log in (the older path)")
async def login(request: Request, svc: Svc) -> Response:
    return await _authenticate(request, svc)


# -- reading the request


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 10**9:
        raise Invalid(f"page must be a whole number from 1, not {raw!r}", "page", kragle_code=1)
    return int(raw)


def object_id(text: str, what: str) -> int:
    if not is_id(text):
        raise NotFound(f"no {what} {text!r}: a {what} id is a whole number")
    return int(text)


def only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"unknown key {unknown[0]!r}: use {', '.join(sorted(allowed))}", unknown[0])


def whole(body: dict[str, Any], key: str, *, required: bool = False) -> int | None:
    value = body.get(key)
    if value is None:
        if required:
            raise Invalid(f"{key} is required", key)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not is_id(str(value)):
        raise Invalid(f"{key} must be an id (a whole number)", key)
    return value


def flag(body: dict[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false", key)
    return value


def name_of(body: dict[str, Any]) -> str | None:
    value = body.get("name")
    if value is not None and not isinstance(value, str):
        raise Invalid("name must be a string", "name")
    return value


async def _all(fetch: Any) -> list[Any]:
    """Every item of a paged native list."""
    out: list[Any] = []
    while True:
        page: Page[Any] = await fetch(len(out), 100)
        out.extend(page.items)
        if not page.items or len(out) >= page.total:
            return out


def paged(key: str, number: int, page: Page[Any], render: Any) -> dict[str, Any]:
    return {
        "count": page.total,
        "pagesize": kragle.PAGE_SIZE,
        "page": number,
        key: [render(item) for item in page.items],
    }


def offset(number: int) -> int:
    return (number - 1) * kragle.PAGE_SIZE


# -- jobs (native triggers)


def job(trigger: Trigger) -> dict[str, Any]:
    return {
        "id": trigger.id,
        "name": trigger.name,
        "stack": trigger.stack_id,
        "schedule": trigger.schedule_id,
        "do_run": trigger.enabled,
    }


@router.get("/jobs", summary="Your jobs, ten a page")
async def list_jobs(request: Request, c: Caller, svc: Svc) -> Response:
    number = page_number(request)
    page = await triggers_uc.list_triggers(svc, c.who, offset(number), kragle.PAGE_SIZE)
    return JSON(paged("jobs", number, page, job))


@router.get("/jobs/byid/{job_id}", summary="A job by id")
async def job_by_id(job_id: str, c: Caller, svc: Svc) -> Response:
    return JSON(job(await triggers_uc.get_trigger(svc, c.who, object_id(job_id, "job"))))


@router.get("/jobs/byname/{name}", summary="A job by name")
async def job_by_name(name: str, c: Caller, svc: Svc) -> Response:
    return JSON(job(await triggers_uc.get_trigger_by_name(svc, c.who, name)))


async def _name_taken(svc: Services, who: Principal, name: str | None, own: int | None) -> bool:
    if name is None:
        return False
    try:
        found = await triggers_uc.get_trigger_by_name(svc, who, name)
    except NotFound:
        return False
    return found.id != own


@router.post("/jobs", summary="Create a job: a stack on a schedule")
async def create_job(c: Caller, svc: Svc) -> Response:
    body = c.body
    only(body, {"schedule_id", "stack_id", "name", "enabled"})
    schedule_id = whole(body, "schedule_id", required=True)
    stack_id = whole(body, "stack_id", required=True)
    assert schedule_id is not None and stack_id is not None
    name = name_of(body)
    try:
        trigger = await triggers_uc.create_trigger(
            svc,
            c.who,
            schedule_id=schedule_id,
            stack_id=stack_id,
            name=name,
            enabled=flag(body, "enabled") or False,
        )
    except Conflict as exc:
        code = kragle.JOB_EXISTS if await _name_taken(svc, c.who, name, None) else None
        raise Conflict(exc.detail, kragle_code=code) from None
    return JSON({"id": trigger.id})


@router.put("/jobs/{job_id}", summary="Change a job (what is not sent stays)")
async def update_job(job_id: str, c: Caller, svc: Svc) -> Response:
    native = object_id(job_id, "job")
    body = c.body
    only(body, {"schedule_id", "stack_id", "name", "enabled"})
    changes: dict[str, Any] = {}
    for key in ("schedule_id", "stack_id"):
        value = whole(body, key)
        if value is not None:
            changes[key] = value
    if "name" in body:
        changes["name"] = name_of(body)
    enabled = flag(body, "enabled")
    if enabled is not None:
        changes["enabled"] = enabled
    try:
        trigger = await triggers_uc.update_trigger(svc, c.who, native, changes)
    except Conflict as exc:
        taken = await _name_taken(svc, c.who, changes.get("name"), native)
        raise Conflict(exc.detail, kragle_code=kragle.JOB_EXISTS if taken else None) from None
    return JSON(
        {
            "owner": trigger.created_by,
            "name": trigger.name,
            "stack": trigger.stack_id,
            "schedule": trigger.schedule_id,
            "do_run": trigger.enabled,
            "do_del": trigger.do_del,
        }
    )


@router.delete("/jobs/{job_id}", summary="Delete a job, or queue it for deletion")
async def delete_job(job_id: str, c: Caller, svc: Svc) -> Response:
    native = object_id(job_id, "job")
    outcome = await triggers_uc.delete_trigger(svc, c.who, native)
    return JSON({outcome.value: native})


# -- schedules


def schedule(saved: SavedSchedule) -> dict[str, Any]:
    return {
        "id": saved.id,
        "name": saved.name,
        "once": kragle.is_once(saved.schedule),
        "config": kragle.config_of(saved.schedule),
    }


@router.get("/schedules", summary="Schedules, ten a page")
async def list_schedules(request: Request, c: Caller, svc: Svc) -> Response:
    number = page_number(request)
    page = await schedules_uc.list_schedules(svc, c.who, offset(number), kragle.PAGE_SIZE)
    return JSON(paged("schedules", number, page, schedule))


@router.get("/schedules/byid/{schedule_id}", summary="A schedule by id")
async def schedule_by_id(schedule_id: str, c: Caller, svc: Svc) -> Response:
    native = object_id(schedule_id, "schedule")
    return JSON(schedule(await schedules_uc.get_schedule(svc, c.who, native)))


@router.post("/schedules", summary="Create a schedule")
async def create_schedule(c: Caller, svc: Svc) -> Response:
    body = c.body
    only(body, {"config", "name", "once"})
    if "config" not in body:
        raise Invalid("config is required: {period: seconds} or {timestamp: unix}", "config")
    timing = kragle.schedule_from(body["config"], flag(body, "once") or False)
    saved = await schedules_uc.create_schedule(svc, c.who, timing, name=name_of(body))
    return JSON({"id": saved.id})


@router.put("/schedules/{schedule_id}", summary="Change a schedule")
async def update_schedule(schedule_id: str, c: Caller, svc: Svc) -> Response:
    native = object_id(schedule_id, "schedule")
    body = c.body
    only(body, {"config", "name", "once"})
    current = await schedules_uc.get_schedule(svc, c.who, native)
    changes: dict[str, Any] = {}
    once = flag(body, "once")
    if "config" in body or once is not None:
        config = body.get("config", kragle.config_of(current.schedule))
        if once is None:
            once = kragle.is_once(current.schedule)
        changes = dataclasses.asdict(kragle.schedule_from(config, once))
    saved = await schedules_uc.update_schedule(svc, c.who, native, changes, name=name_of(body))
    return JSON(schedule(saved))


# -- stacks: a stack's blocks are the steps of its chain (a block names a jobyard task)


async def _jobs_by_stack(svc: Services, who: Principal) -> dict[int, list[dict[str, Any]]]:
    triggers = await _all(lambda o, n: triggers_uc.list_triggers(svc, who, o, n))
    timings = {
        s.id: s for s in await _all(lambda o, n: schedules_uc.list_schedules(svc, who, o, n))
    }
    out: dict[int, list[dict[str, Any]]] = {}
    for t in triggers:
        if t.stack_id is None:
            continue
        saved = timings.get(t.schedule_id)
        out.setdefault(t.stack_id, []).append(
            {
                "id": t.id,
                "name": t.name,
                "do_run": t.enabled,
                "schedule": kragle.config_of(saved.schedule) if saved else None,
            }
        )
    return out


def blocks(found: Stack, names: dict[int, str], *, full: bool) -> list[dict[str, Any]]:
    """A stack's steps as Kragle blocks; an instance id is the step's position (from 1)."""
    out: list[dict[str, Any]] = []
    for i, step in enumerate(found.steps):
        block: dict[str, Any] = {"id": i + 1, "type": names.get(step.task_id, str(step.task_id))}
        if full:
            block["conversion"] = kragle.conversion_out(step.arguments or {})
            block["state"] = {"input": {}, "output": {}}
            if step.name is not None:
                block["name"] = step.name
        out.append(block)
    return out


def public_stack(found: Stack, names: dict[int, str]) -> dict[str, Any]:
    """What anyone may read of a public stack (Kragle's unauthenticated shape)."""
    return {
        "id": found.id,
        "owner": found.created_by,
        "name": found.name,
        "webhook": found.webhook,
        "webhook_method": found.webhook_method,
        "blocks": blocks(found, names, full=False),
    }


def stack(
    found: Stack, jobs: dict[int, list[dict[str, Any]]], names: dict[int, str] | None = None
) -> dict[str, Any]:
    return {
        **public_stack(found, names or {}),
        # The token is shown once (create, token_refresh); reads show its first characters.
        "webhook_token": None,
        "webhook_token_prefix": found.webhook_prefix,
        "blocks": blocks(found, names or {}, full=True),
        "jobs": jobs.get(found.id, []),
        "public": found.public,
        # What jobyard runs: the stack's task or command, where, with what environment.
        "description": found.description,
        "task_id": found.task_id,
        "command": found.command,
        "target": found.target.as_json(),
        "env": dict(found.env),
    }


async def _task_names(svc: Services, who: Principal) -> dict[int, str]:
    return {
        t.id: t.name
        for t in await _all(lambda o, n: tasks_uc.list_tasks(svc, who, offset=o, limit=n))
    }


# -- who reads: a caller, or nobody (public stacks of the organization the URL or the
# deployment names)


@dataclass
class Reader:
    call: Call | None
    org_id: int | None  # the organization whose public stacks an anonymous reader sees


async def reader(request: Request, svc: Svc) -> Reader:
    """FastAPI dependency: the signed-in caller, or an anonymous reader of one
    organization's public stacks (``?organization=NAME``, else ``JOBYARD_KRAGLE_ORG``)."""
    anonymous = (
        not auth.token_from(request)
        and codec(svc).loads(request.cookies.get(COOKIE)) is None
        and request.method == "GET"
    )
    if not anonymous:
        return Reader(await call(request, svc), None)
    name = request.query_params.get("organization") or svc.settings.kragle_org
    if not name:
        raise Unauthenticated(
            "log in first (POST /authenticate), send an API token, or name the organization "
            "whose public stacks to read (?organization=NAME)"
        )
    return Reader(None, await stacks_uc.public_org(svc, name))


Readers = Annotated[Reader, Depends(reader)]


async def _list_stacks(request: Request, r: Reader, svc: Services) -> Response:
    number = page_number(request)
    if r.call is None:
        assert r.org_id is not None
        page, names = await stacks_uc.list_public_stacks(
            svc, r.org_id, offset(number), kragle.PAGE_SIZE
        )
        return JSON(paged("stacks", number, page, lambda s: public_stack(s, names)))
    c = r.call
    page = await stacks_uc.list_stacks(svc, c.who, offset(number), kragle.PAGE_SIZE)
    jobs = await _jobs_by_stack(svc, c.who)
    names = await _task_names(svc, c.who)
    return JSON(paged("stacks", number, page, lambda s: stack(s, jobs, names)))


async def _read_one(
    r: Reader, svc: Services, *, stack_id: int | None, name: str | None
) -> Response:
    if r.call is None:
        assert r.org_id is not None
        found, names = await stacks_uc.get_public_stack(svc, r.org_id, stack_id, name)
        return JSON(public_stack(found, names))
    c = r.call
    if stack_id is not None:
        found = await stacks_uc.get_stack(svc, c.who, stack_id)
    else:
        assert name is not None
        found = await stacks_uc.get_stack_by_name(svc, c.who, name)
    names = await _task_names(svc, c.who)
    return JSON(stack(found, await _jobs_by_stack(svc, c.who), names))


def _target(body: dict[str, Any], required: bool = True) -> Target | None:
    given = body.get("target")
    if given is None:
        given = {k: body[k] for k in ("nodes", "tags", "cluster", "count") if k in body}
    if not given and not required:
        return None
    if not isinstance(given, dict) or not given:
        raise Invalid("a stack needs a target: target {nodes | tags | cluster}, or nodes", "target")
    unknown = sorted(set(given) - {"nodes", "tags", "cluster", "count"})
    if unknown:
        raise Invalid(f"unknown key {unknown[0]!r} in target: use nodes, tags, cluster", "target")
    for key in ("nodes", "tags"):
        value = given.get(key)
        if value is not None and (
            not isinstance(value, list) or not all(isinstance(v, str) for v in value)
        ):
            raise Invalid(f"{key} must be a list of names", key)
    cluster = given.get("cluster")
    if cluster is not None and not isinstance(cluster, str):
        raise Invalid("cluster must be a name", "cluster")
    count = given.get("count")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
        raise Invalid("count must be a whole number", "count")
    return Target.from_json(given)


_STACK_KEYS = {
    "name",
    "command",
    "task_id",
    "target",
    "nodes",
    "tags",
    "cluster",
    "count",
    "env",
    "description",
    "schedule_id",
    "enabled",
    "blocks",
    "webhook",
    "webhook_method",
    "needs_approval",
    "public",
}


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Invalid(f"{key} must be a string", key)
    return value


async def _blocks_in(svc: Services, who: Principal, body: dict[str, Any]) -> Any:
    """The chain that ``blocks`` asks for (native steps), or None without blocks."""
    if "blocks" not in body:
        return None
    steps = kragle.steps_from_blocks(body["blocks"])
    known = set((await _task_names(svc, who)).values())
    for i, step in enumerate(steps):
        if step["task"] not in known:
            raise Invalid(
                f"blocks[{i}]: no block (jobyard task) named {step['task']!r}",
                "blocks",
                kragle_code=kragle.NO_SUCH_BLOCK,
            )
    return steps


async def _default_target(svc: Services, who: Principal, steps: Any) -> Target:
    """A stack of blocks without a target runs each block where its task runs."""
    by_name = {
        t.name: t for t in await _all(lambda o, n: tasks_uc.list_tasks(svc, who, offset=o, limit=n))
    }
    targets: list[Target] = []
    for i, step in enumerate(steps):
        own = parse_target(step.get("target"), f"blocks[{i}]")
        task = by_name[step["task"]]
        if own is None and task.spec.target is None:
            raise Invalid(
                f"task {task.name!r} has no target: give the stack a target (nodes, tags or "
                "cluster)",
                "target",
            )
        where = own or task.spec.target
        assert where is not None
        step["target"] = where.as_json()
        targets.append(where)
    return targets[0]


async def _create_stack(c: Call, svc: Services) -> Response:
    body = c.body
    only(body, _STACK_KEYS)
    name = name_of(body)
    if not name:
        raise Invalid("name is required", "name")
    command = _text(body, "command")
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise Invalid("env must be an object of names to strings", "env")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise Invalid("description must be a string", "description")
    schedule_id = whole(body, "schedule_id")
    flag(body, "needs_approval")
    public = flag(body, "public") or False
    mode, method = stack_hooks.check_webhook(_text(body, "webhook"), _text(body, "webhook_method"))
    steps = await _blocks_in(svc, c.who, body)
    target = _target(body, required=steps is None)
    if target is None:
        target = await _default_target(svc, c.who, steps)
    token, hook = stack_hooks.webhook_values(mode, method, False)
    if schedule_id is not None:
        await schedules_uc.get_schedule(svc, c.who, schedule_id)
    try:
        created = await stacks_uc.create_stack(
            svc,
            c.who,
            name,
            target,
            env=env,
            description=description,
            task_id=whole(body, "task_id"),
            command=command,
            steps=steps,
            extra={**hook, "public": public},
        )
    except Conflict as exc:
        raise Conflict(exc.detail, kragle_code=kragle.STACK_EXISTS) from None
    if schedule_id is not None:
        # Kragle's shortcut: an initial job for the new stack.
        await triggers_uc.create_trigger(
            svc,
            c.who,
            schedule_id=schedule_id,
            stack_id=created.id,
            enabled=flag(body, "enabled") or False,
        )
    out: dict[str, Any] = {"id": created.id}
    if token is not None:
        out["webhook_token"] = token  # shown this once
    return JSON(out)


async def list_stacks(request: Request, r: Readers, svc: Svc) -> Response:
    return await _list_stacks(request, r, svc)


async def stack_by_id(stack_id: str, r: Readers, svc: Svc) -> Response:
    return await _read_one(r, svc, stack_id=object_id(stack_id, "stack"), name=None)


async def stack_by_name(name: str, r: Readers, svc: Svc) -> Response:
    return await _read_one(r, svc, stack_id=None, name=name)


async def create_stack(c: Caller, svc: Svc) -> Response:
    return await _create_stack(c, svc)


# Kragle's own path is /blockstacks; /stacks is the same resource under its plain name.
for _root in ("/stacks", "/blockstacks"):
    _shown = _root == "/stacks"
    for _path, _handler, _method, _summary in (
        ("", list_stacks, "GET", "Stacks, ten a page (public ones without a log-in)"),
        ("/byid/{stack_id}", stack_by_id, "GET", "A stack by id"),
        ("/byname/{name}", stack_by_name, "GET", "A stack by name"),
        ("", create_stack, "POST", "Create a stack (blocks: its chain of steps)"),
    ):
        router.add_api_route(
            _root + _path,
            _handler,
            methods=[_method],
            summary=_summary,
            include_in_schema=_shown,
            name=f"kragle_{_handler.__name__}{'' if _shown else '_blockstacks'}",
        )


@router.put("/blockstacks/{stack_id}", summary="Change a stack (what is not sent stays)")
async def update_stack(stack_id: str, c: Caller, svc: Svc) -> Response:
    native = object_id(stack_id, "stack")
    body = c.body
    only(body, _STACK_KEYS - {"task_id", "command"})
    current = await stacks_uc.get_stack(svc, c.who, native)
    changes: dict[str, Any] = {}
    name = name_of(body)
    if name is not None:
        changes["name"] = name
    if "blocks" in body:
        changes["steps"] = await _blocks_in(svc, c.who, body)
    target = _target(body, required=False)
    if target is not None:
        changes["target"] = target
    if "env" in body:
        env = body["env"] or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise Invalid("env must be an object of names to strings", "env")
        changes["env"] = env
    public = flag(body, "public")
    if public is not None:
        changes["public"] = public
    flag(body, "needs_approval")
    schedule_id = whole(body, "schedule_id")
    hook_given = "webhook" in body or "webhook_method" in body
    mode = _text(body, "webhook") if "webhook" in body else current.webhook
    method = _text(body, "webhook_method") if "webhook_method" in body else current.webhook_method
    if hook_given:
        stack_hooks.check_webhook(mode, method)
    if schedule_id is not None:
        await schedules_uc.get_schedule(svc, c.who, schedule_id)
    try:
        updated = await stacks_uc.update_stack(svc, c.who, native, changes) if changes else current
    except Conflict as exc:
        raise Conflict(exc.detail, kragle_code=kragle.STACK_EXISTS) from None
    token = None
    if hook_given:
        hooked = await stack_hooks.set_webhook(svc, c.who, native, mode, method)
        updated, token = hooked.stack, hooked.token
    if schedule_id is not None:
        await triggers_uc.create_trigger(
            svc,
            c.who,
            schedule_id=schedule_id,
            stack_id=native,
            enabled=flag(body, "enabled") or False,
        )
    jobs = await _jobs_by_stack(svc, c.who)
    return JSON(
        {
            "id": updated.id,
            "owner": updated.created_by,
            "name": updated.name,
            "is_approved": updated.public,
            "needs_approval": False,
            "webhook": updated.webhook,
            "webhook_method": updated.webhook_method,
            "webhook_token": token,
            "instances": [i + 1 for i in range(len(updated.steps))],
            "jobs": [j["id"] for j in jobs.get(updated.id, [])],
        }
    )


def _wait(request: Request, svc: Services) -> float:
    raw = request.query_params.get("wait")
    if raw is None:
        return svc.settings.kragle_exec_wait
    if not (raw.isascii() and raw.isdigit()) or int(raw) > 300:
        raise Invalid(
            f"wait is a whole number of seconds up to 300, not {raw!r}", "wait", kragle_code=1
        )
    return float(raw)


async def _exec(request: Request, stack_id: str, c: Call, svc: Services) -> Response:
    wait = _wait(request, svc)
    try:
        started = await stack_hooks.run_stack(svc, c.who, object_id(stack_id, "stack"))
    except stack_hooks.NotStarted as exc:
        return JSON({"error": exc.detail})
    outcome = await stack_hooks.wait_for(svc, started, wait)
    if outcome.ended and not outcome.ok:
        return JSON({"error": outcome.reason or "a block failed", **_ids(started)})
    out: dict[str, Any] = {"success": outcome.executed, **_ids(started)}
    if not outcome.ended:
        out["running"] = True
    return JSON(out)


def _ids(started: stack_hooks.Started) -> dict[str, Any]:
    """jobyard's names for what ran: the stack run (a chain) and its first job."""
    return {"stack_run_id": started.run_id, "job_id": started.job_id}


async def exec_stack(request: Request, stack_id: str, c: Caller, svc: Svc) -> Response:
    return await _exec(request, stack_id, c, svc)


@router.get("/blockstacks/hook/token_refresh/{stack_id}", summary="A new webhook token")
async def token_refresh(stack_id: str, c: Caller, svc: Svc) -> Response:
    done = await stack_hooks.refresh_token(svc, c.who, object_id(stack_id, "stack"))
    return JSON({"token": done.token})


def _values(items: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
        else:
            out[key] = value
    return out


async def _hook(request: Request, stack_id: str, svc: Services) -> Response:
    native = object_id(stack_id, "stack")
    query = [(k, v) for k, v in request.query_params.multi_items() if k not in ("token", "wait")]
    form: dict[str, Any] = {}
    body: Any = {}
    kind = request.headers.get("content-type", "")
    if request.method == "POST":
        if kind.startswith("application/json"):
            body = await json_object(request)
        elif kind.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = _values([(k, str(v)) for k, v in (await request.form()).multi_items()])
    who = None
    secret = auth.token_from(request) if request.headers.get("authorization") else None
    if secret:
        who = await auth.authenticate(svc, secret)
    else:
        who = await _signed_in(request, svc)
    hidden = {"authorization", "cookie", "x-webhook-token"}
    try:
        started = await stack_hooks.run_by_webhook(
            svc,
            native,
            request.method,
            token=request.query_params.get("token") or request.headers.get("x-webhook-token"),
            who=who,
            client=client_of(request),
            hook_input={
                "GET": _values(query),
                "POST": form,
                "JSON": body,
                "HEADERS": {k: v for k, v in request.headers.items() if k.lower() not in hidden},
            },
        )
    except stack_hooks.NotStarted as exc:
        return JSON({"status": 1, "err": exc.detail})
    outcome = await stack_hooks.wait_for(svc, started, _wait(request, svc))
    if outcome.ended and not outcome.ok:
        return JSON({"status": 1, "err": outcome.reason or "a block failed"})
    if not outcome.ended:
        return JSON({"status": 0, "result": None, "running": True, **_ids(started)})
    return JSON({"status": 0, "result": outcome.output})


async def hook(request: Request, stack_id: str, svc: Svc) -> Response:
    return await _hook(request, stack_id, svc)


# exec and webhooks answer GET and POST: one route per method (one operation id each).
for _method in ("GET", "POST"):
    router.add_api_route(
        "/blockstacks/exec/{stack_id}",
        exec_stack,
        methods=[_method],
        summary="Run a stack now; answers once it ends",
        name=f"kragle_exec_stack_{_method.lower()}",
    )
    router.add_api_route(
        "/blockstacks/hook/{stack_id}",
        hook,
        methods=[_method],
        summary="Call a stack's webhook (with its method)",
        name=f"kragle_hook_{_method.lower()}",
    )
