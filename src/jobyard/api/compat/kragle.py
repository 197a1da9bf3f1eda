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

from jobyard.api import errors
from jobyard.api.auth import services, token_from
from jobyard.api.compat import json_object
from jobyard.api.ids import is_id
from jobyard.api.responses import JSON
from jobyard.domain.dialects import kragle
from jobyard.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from jobyard.domain.records import Page, Principal
from jobyard.domain.targets import Target
from jobyard.domain.triggers import SavedSchedule, Stack, Trigger
from jobyard.service import accounts, sessions
from jobyard.service import schedules as schedules_uc
from jobyard.service import stacks as stacks_uc
from jobyard.service import triggers as triggers_uc
from jobyard.service.context import Services
from jobyard.service.cookies import SessionCodec

PREFIX = "/compat/kragle"
COOKIE = "kragle_session"
router = APIRouter(prefix=PREFIX, tags=["dialect: Kragle"])
Svc = Annotated[Services, Depends(services)]


def render_error(request: Request, status: int, detail: str, extra: dict[str, Any]) -> Response:
    named = extra.get("kragle_code")
    if named is None and extra.get("malformed"):
        named = kragle.BAD_JSON
    code = kragle.code_of(status, named)
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return JSON(
        {"code": code, "msg": kragle.message(code, detail)}, status_code=500, headers=headers
    )


errors.register_renderer(PREFIX + "/", render_error)


# -- who is asking


def codec(svc: Services) -> SessionCodec:
    found = svc.runtime.get("kragle.codec")
    if found is None:
        found = svc.runtime["kragle.codec"] = SessionCodec.from_settings(svc.settings)
    assert isinstance(found, SessionCodec)
    return found


@dataclass
class Call:
    """One authenticated request: who asks, and its payload (inline auth unwrapped)."""

    who: Principal
    body: dict[str, Any]


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
        who = await sessions.sign_in(svc, login, password, client=_client(request), org_name=org)
        payload = body["payload"]
        if not isinstance(payload, dict):
            raise Invalid("payload must be a JSON object", "payload", malformed=True)
        return Call(who, payload)
    secret = token_from(request)
    if secret:
        return Call(await accounts.authenticate(svc, secret), body)
    session = codec(svc).loads(request.cookies.get(COOKIE))
    if session is None or session.user_id is None or session.org is None:
        raise Unauthenticated(
            "log in first (POST /authenticate with username or email and password), "
            "use inline auth, or send an API token"
        )
    return Call(await sessions.resume(svc, session.user_id, session.org), body)


Caller = Annotated[Call, Depends(call)]


async def _authenticate(request: Request, svc: Services) -> Response:
    body = await json_object(request)
    login, password, org = _login_fields(body)
    who = await sessions.sign_in(svc, login, password, client=_client(request), org_name=org)
    c = codec(svc)
    cookie = c.set_cookie(
        COOKIE, c.signed_in(who.user_id, who.org_name), path=PREFIX, same_site="Strict"
    )
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


# -- stacks


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


def stack(found: Stack, jobs: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    return {
        "id": found.id,
        "owner": found.created_by,
        "name": found.name,
        "webhook": None,
        "webhook_method": None,
        "webhook_token": None,
        "blocks": [],
        "jobs": jobs.get(found.id, []),
        # What jobyard runs: the stack's task or command, where, with what environment.
        "description": found.description,
        "task_id": found.task_id,
        "command": found.command,
        "target": found.target.as_json(),
        "env": dict(found.env),
    }


async def _list_stacks(request: Request, c: Call, svc: Services) -> Response:
    number = page_number(request)
    page = await stacks_uc.list_stacks(svc, c.who, offset(number), kragle.PAGE_SIZE)
    jobs = await _jobs_by_stack(svc, c.who)
    return JSON(paged("stacks", number, page, lambda s: stack(s, jobs)))


def _target(body: dict[str, Any]) -> Target:
    given = body.get("target")
    if given is None:
        given = {k: body[k] for k in ("nodes", "tags", "cluster", "count") if k in body}
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
}


async def _create_stack(c: Call, svc: Services) -> Response:
    body = c.body
    only(body, _STACK_KEYS)
    name = name_of(body)
    if not name:
        raise Invalid("name is required", "name")
    command = body.get("command")
    if command is not None and not isinstance(command, str):
        raise Invalid("command must be a string", "command")
    env = body.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise Invalid("env must be an object of names to strings", "env")
    description = body.get("description") or ""
    if not isinstance(description, str):
        raise Invalid("description must be a string", "description")
    schedule_id = whole(body, "schedule_id")
    try:
        created = await stacks_uc.create_stack(
            svc,
            c.who,
            name,
            _target(body),
            env=env,
            description=description,
            task_id=whole(body, "task_id"),
            command=command,
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
    return JSON({"id": created.id})


async def _stack_by_id(stack_id: str, c: Call, svc: Services) -> Response:
    found = await stacks_uc.get_stack(svc, c.who, object_id(stack_id, "stack"))
    return JSON(stack(found, await _jobs_by_stack(svc, c.who)))


async def _stack_by_name(name: str, c: Call, svc: Services) -> Response:
    found = await stacks_uc.get_stack_by_name(svc, c.who, name)
    return JSON(stack(found, await _jobs_by_stack(svc, c.who)))


async def list_stacks(request: Request, c: Caller, svc: Svc) -> Response:
    return await _list_stacks(request, c, svc)


async def stack_by_id(stack_id: str, c: Caller, svc: Svc) -> Response:
    return await _stack_by_id(stack_id, c, svc)


async def stack_by_name(name: str, c: Caller, svc: Svc) -> Response:
    return await _stack_by_name(name, c, svc)


async def create_stack(c: Caller, svc: Svc) -> Response:
    return await _create_stack(c, svc)


# Kragle's own path is /blockstacks; /stacks is the same resource under its plain name.
for _root in ("/stacks", "/blockstacks"):
    _shown = _root == "/stacks"
    for _path, _handler, _method, _summary in (
        ("", list_stacks, "GET", "Stacks, ten a page"),
        ("/byid/{stack_id}", stack_by_id, "GET", "A stack by id"),
        ("/byname/{name}", stack_by_name, "GET", "A stack by name"),
        ("", create_stack, "POST", "Create a stack"),
    ):
        router.add_api_route(
            _root + _path,
            _handler,
            methods=[_method],
            summary=_summary,
            include_in_schema=_shown,
            name=f"kragle_{_handler.__name__}{'' if _shown else '_blockstacks'}",
        )
