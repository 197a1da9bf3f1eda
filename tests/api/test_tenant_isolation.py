"""Tenant isolation: every route, as every role of one organization, aimed at the other's objects.

Two organizations, ``acme`` and ``rival``, each with a viewer, a user, an admin and an agent
token, and one object of every kind. For each direction (acme attacks rival, rival attacks
acme), every route of the app — native, the five dialects and the dashboard's pages and
forms — is called by each role of the attacking organization with the path parameters of
the *victim's* objects (ids in each dialect's own form, the victim's organization name where
a URL names one) and a body that would do something if it reached them. Three things are
checked after every request:

- no answer is a 5xx;
- no answer carries the victim's hidden canary (a string planted in the victim's commands,
  descriptions, file contents, node tags, cluster and schedule names, webhook URLs — never in
  anything a URL names, so an error message that echoes the URL cannot trip it);
- nothing of the victim's changed: every row of every table that belongs to the victim's
  organization, the victim's users (password hashes included) and their settings are
  fingerprinted once and compared after each request.

A new route is covered without a line here; a new path parameter needs one in ``victim_value``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.domain.dialects import chef, rescale, theeye
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from jobyard.store.schema import metadata
from tests.api.asgi import asgi_request, kragle_fault, schema_app
from tests.conftest import Account, Factory
from tests.web.dashboard import sign_in

ORGS = ("acme", "rival")
ROLES = ("viewer", "user", "admin", "agent")
# Routes whose credential is in the URL itself (a trigger secret): calling them with the
# victim's secret is the victim's own use, not an attack.
CREDENTIAL_IN_URL = ("{secret}",)
# Sign-in and sign-out act on the caller's own session only.
SESSION_ROUTES = {"/login", "/logout", "/compat/kragle/authenticate", "/compat/kragle/login"}
# A route's paths that take no victim object and no victim organization act on the
# caller's own organization: their effects are checked like any other, on the victim's rows.


def hidden(org: str) -> str:
    return f"zq{org}hiddencanaryzq"


@dataclass
class Tenant:
    org: str
    org_id: int
    accounts: dict[str, Account]
    values: dict[str, str] = field(default_factory=dict)
    user_ids: list[int] = field(default_factory=list)
    cookies: dict[str, tuple[str, str]] = field(default_factory=dict)  # role: (cookie, csrf)

    @property
    def canary(self) -> str:
        return hidden(self.org)


async def _ok(app: FastAPI, account: Account, method: str, url: str, body: Any = None) -> Any:
    r = await asgi_request(app, method, url, account.headers, body)
    assert r.status_code < 300, (method, url, r.status_code, r.text)
    return r.json() if r.content else None


async def build_tenant(svc: Services, app: FastAPI, factory: Factory, org: str) -> Tenant:
    await factory.org(org)
    accounts = {
        role: await factory.account(org, Role(role), f"{role}@{org}.test") for role in ROLES
    }
    async with svc.db.read() as tx:
        found = await tx.accounts.org_by_name(org)
        assert found is not None
    t = Tenant(org, found.id, accounts)
    t.user_ids = [a.user_id for a in accounts.values()]
    secret = t.canary
    user = accounts["user"]
    admin = accounts["admin"]
    async with svc.db.begin() as tx:
        now = svc.clock.now()
        for name in (f"{org}-web1", f"{org}-web2"):
            await tx.nodes.upsert(
                found.id, name, {"tags": ["web", secret], "online": True, "busy": False}, now
            )
    node = f"{org}-web1"
    job = await _ok(
        app,
        user,
        "POST",
        "/api/v1/jobs",
        {
            "command": f"echo {secret}",
            "description": secret,
            "nodes": [node],
            "name": f"{org}-draft",
            "draft": True,
        },
    )
    active = await _ok(
        app,
        user,
        "POST",
        "/api/v1/jobs",
        {"command": f"echo {secret}", "nodes": [node], "name": f"{org}-live"},
    )
    key, md5 = svc.files.put(secret.encode())
    async with svc.db.begin() as tx:
        stored = await tx.files.insert(
            {
                "org_id": found.id,
                "job_id": active["id"],
                "node_name": node,
                "name": "out.txt",
                "size": len(secret),
                "md5": md5,
                "storage_key": key,
                "created_at": svc.clock.now(),
            }
        )
    uploaded = await asgi_request(
        app,
        "POST",
        f"/api/v1/files?name=input-{org}.txt",
        user.headers,
        secret.encode(),
        content_type="application/octet-stream",
    )
    assert uploaded.status_code == 201, uploaded.text
    cluster = await _ok(
        app, user, "POST", "/api/v1/clusters", {"name": f"pool-{secret}", "nodes": 1}
    )
    task = await _ok(
        app,
        user,
        "POST",
        "/api/v1/tasks",
        {
            "name": f"{org}-deploy",
            "command": f"echo {secret}",
            "description": secret,
            "target": {"nodes": [node]},
        },
    )
    schedule = await _ok(
        app, user, "POST", "/api/v1/schedules", {"name": f"hourly-{secret}", "period": 3600}
    )
    stack = await _ok(
        app,
        user,
        "POST",
        "/api/v1/stacks",
        {"name": f"{org}-stack", "target": {"nodes": [node]}, "command": f"echo {secret}"},
    )
    trigger = await _ok(
        app,
        user,
        "POST",
        "/api/v1/triggers",
        {
            "name": f"{org}-trigger",
            "schedule_id": schedule["id"],
            "task_id": task["id"],
            "enabled": False,
        },
    )
    chain = await _ok(
        app,
        user,
        "POST",
        "/api/v1/stacks",
        {"name": f"{org}-chain", "target": {"nodes": [node]}, "steps": [{"task": task["id"]}]},
    )
    run = await _ok(app, user, "POST", f"/api/v1/stacks/{chain['id']}/runs", {})
    await _ok(
        app, admin, "POST", "/api/v1/chef-keys", {"name": f"{org}-knife", "email": user.email}
    )
    token = await _ok(app, user, "POST", "/api/v1/tokens", {"name": "spare"})
    hook = await _ok(
        app,
        admin,
        "POST",
        "/api/v1/webhooks",
        {"url": f"http://127.0.0.1:9/{secret}", "event_types": ["job.failed"]},
    )
    await _ok(
        app,
        user,
        "POST",
        f"/api/v1/jobs/{job['id']}/shares",
        {"email": f"viewer@{org}.test"},
    )
    inbox = await _ok(app, accounts["viewer"], "GET", "/api/v1/notifications")
    items = inbox["results"] if isinstance(inbox, dict) else inbox
    deliveries = await _ok(app, accounts["viewer"], "GET", "/api/v1/notifications/deliveries")
    delivered = deliveries["results"] if isinstance(deliveries, dict) else deliveries
    t.values = {
        "job_id": str(job["id"]),
        "active_job_id": str(active["id"]),
        "file_id": str(stored.id),
        "input_file_id": str(uploaded.json()["id"]),
        "cluster_id": str(cluster["id"]),
        "task_id": str(task["id"]),
        "schedule_id": str(schedule["id"]),
        "stack_id": str(stack["id"]),
        "trigger_id": str(trigger["id"]),
        "chain_id": str(chain["id"]),
        "run_id": str(run["id"]),
        "chef-keys.name": f"{org}-knife",
        "token_id": str(token["id"]),
        "subscription_id": str(hook["id"]),
        "notification_id": str(items[0]["id"]) if items else "1",
        "delivery_id": str(delivered[0]["id"]) if delivered else "1",
        "user_id": str(user.user_id),
        "email": accounts["viewer"].email,  # the job is shared with the viewer
        "user_email": user.email,
        "node": node,
        "jobs.name": f"{org}-draft",
        "tasks.name": f"{org}-deploy",
        "stacks.name": f"{org}-stack",
        "triggers.name": f"{org}-trigger",
        "nodes.name": node,
    }
    return t


# -- routes


@dataclass(frozen=True)
class RouteSpec:
    method: str
    path: str


def all_routes(app: FastAPI) -> list[RouteSpec]:
    """Every HTTP route of the app, documented or not (dashboard pages, hidden aliases)."""
    seen: set[tuple[str, str]] = set()

    def walk(routes: Any) -> None:
        for r in routes:
            inner = getattr(r, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            methods = getattr(r, "methods", None)
            path = getattr(r, "path", None)
            if not methods or not path:
                continue
            for m in methods:
                if m != "HEAD":
                    seen.add((m, path))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        walk(app.routes)
    skip = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
    return [
        RouteSpec(m, p)
        for m, p in sorted(seen)
        if p not in skip and p not in SESSION_ROUTES and not any(c in p for c in CREDENTIAL_IN_URL)
    ]


ROUTES = all_routes(schema_app())


def dialect_of(path: str) -> str:
    for name in ("chef", "rescale", "xplenty", "theeye", "kragle"):
        if path.startswith(f"/compat/{name}"):
            return name
    return "api" if path.startswith(("/api/", "/healthz", "/readyz", "/metrics")) else "web"


def _render(dialect: str, ident: str) -> str:
    if dialect == "chef":
        return chef.render_id(int(ident))
    if dialect == "rescale":
        return rescale.render_id(int(ident))
    if dialect == "theeye":
        return theeye.render_id(int(ident))
    return ident


def victim_value(victim: Tenant, route: RouteSpec, param: str) -> str:
    """The victim's object for a path parameter, in the route's dialect."""
    dialect = dialect_of(route.path)
    v = victim.values
    path = route.path
    if param in ("org", "account", "customer"):
        return victim.org
    if param in ("node", "hostname"):
        return v["node"]
    if param in ("stream", "channel"):
        return "stdout"
    if param == "kind":
        return "jobs"
    if param == "name":
        if "/nodes/" in path:
            return v["node"]
        if "/compat/kragle/jobs" in path:
            return v["triggers.name"]
        for collection in ("jobs", "tasks", "stacks", "triggers", "chef-keys"):
            if f"/{collection}/" in path:
                return v[f"{collection}.name"]
        return v["jobs.name"]
    if param in ("job_id", "job", "subject_id", "script"):  # TheEye's script is its job's
        if dialect == "kragle":
            return v["trigger_id"]  # a Kragle "job" binds a stack to a schedule
        key = "active_job_id" if "/output/" in path or "/files" in path else "job_id"
        return _render(dialect, v[key])
    if param == "stack_id" and path.endswith("/runs"):
        return v["chain_id"]
    if param == "package_id":
        return _render(dialect, v["task_id"])
    if param == "file_id":
        if path == "/api/v1/files/{file_id}":  # an uploaded input file, not an output
            return v["input_file_id"]
        return _render(dialect, v["file_id"])
    if param in v:
        return _render(dialect, v[param])
    raise AssertionError(
        f"{route.method} {route.path}: no victim value for {{{param}}}; teach victim_value"
    )


def victim_url(victim: Tenant, route: RouteSpec) -> str:
    url = route.path
    for part in re.findall(r"\{[^}]+\}", route.path):
        name = part[1:-1].split(":")[0]
        url = url.replace(part, victim_value(victim, route, name), 1)
    return url


def attack_body(victim: Tenant, route: RouteSpec) -> Any:
    """A body that would change something of the victim's if the route let it through."""
    v = victim.values
    p = route.path
    m = route.method
    if m not in ("POST", "PUT", "PATCH"):
        return None
    if p == "/api/v1/members":
        # An existing user of the victim's organization, with a password: the takeover.
        return {"email": v["user_email"], "role": "admin", "password": "pwned-by-the-other-org"}
    if p == "/api/v1/triggers":
        return {
            "name": "stolen",
            "schedule_id": int(v["schedule_id"]),
            "task_id": int(v["task_id"]),
            "enabled": True,
        }
    if p.endswith("/shares"):
        return {"email": v["email"]}
    if p.endswith(("/share", "/share/")):
        return {"sharedWith": [v["email"]]}
    if p == "/compat/kragle/jobs":
        return {
            "name": "stolen",
            "stack_id": int(v["stack_id"]),
            "schedule_id": int(v["schedule_id"]),
            "enabled": True,
        }
    if p.startswith("/compat/kragle/jobs/"):
        return {"name": "renamed-by-the-other-org", "enabled": True}
    if p.startswith("/compat/kragle/schedules"):
        return {"name": "renamed-by-the-other-org", "config": {"period": 60}}
    if p.startswith(("/compat/kragle/stacks", "/compat/kragle/blockstacks")):
        return {"name": "stolen", "command": "true", "nodes": [v["node"]]}
    if p.startswith("/compat/theeye") and p.endswith("/job"):
        return {"task": theeye.render_id(int(v["task_id"]))}
    if p.startswith("/compat/theeye") and p.endswith("/input"):
        return {"args": ["x"]}
    if p.startswith("/compat/xplenty") and p.endswith("/jobs"):
        return {"cluster_id": int(v["cluster_id"]), "package_id": int(v["task_id"])}
    if p.startswith("/compat/xplenty") and "/clusters" in p:
        return {"nodes": 3, "name": "renamed-by-the-other-org"}
    if p.startswith("/compat/rescale") and m == "POST" and p.rstrip("/").endswith("/jobs"):
        return {
            "name": "stolen",
            "jobanalyses": [
                {
                    "analysis": {"code": "user_included", "version": "0"},
                    "command": "true",
                    "hardware": {"coreType": "emerald", "coresPerSlot": 1, "slots": 1},
                }
            ],
        }
    if p.startswith("/compat/rescale") and m in ("PUT", "PATCH"):
        return {"name": "renamed-by-the-other-org"}
    if p.startswith("/compat/chef") and p.endswith("/jobs"):
        return {"command": "true", "nodes": [v["node"]]}
    if p.endswith("/jobs") or p.endswith("/jobs/"):
        return {"command": "true", "nodes": [v["node"]], "name": "stolen"}
    if "/watchers" in p:
        return {}
    return NATIVE_BODIES.get((m, p), {})


# Bodies valid for the native object routes: a refusal must come from who is asking,
# never from a body the route would refuse anyway.
NATIVE_BODIES: dict[tuple[str, str], Any] = {
    ("PUT", "/api/v1/jobs/{job_id}"): {"command": "true", "nodes": ["x"]},
    ("PATCH", "/api/v1/jobs/{job_id}"): {"description": "changed by the other org"},
    ("PATCH", "/api/v1/tasks/{task_id}"): {"description": "changed by the other org"},
    ("PATCH", "/api/v1/stacks/{stack_id}"): {"command": "echo changed"},
    ("PATCH", "/api/v1/schedules/{schedule_id}"): {"period": 60},
    ("PATCH", "/api/v1/triggers/{trigger_id}"): {"enabled": True},
    ("PATCH", "/api/v1/clusters/{cluster_id}"): {"nodes": 3},
    ("PATCH", "/api/v1/webhooks/{subscription_id}"): {"url": "http://127.0.0.1:9/changed"},
    ("POST", "/api/v1/jobs/{job_id}/input"): {"arguments": {"env": "prod"}},
    ("PUT", "/api/v1/notifications/settings"): {"kinds": {"job.failed": {"email": True}}},
    ("POST", "/api/v1/tokens"): {"name": "minted"},
    ("POST", "/api/v1/clusters"): {"name": "pool2", "nodes": 1},
    ("POST", "/api/v1/tasks"): {"name": "t2", "command": "true", "target": {"nodes": ["x"]}},
    ("POST", "/api/v1/schedules"): {"name": "s2", "period": 60},
    ("POST", "/api/v1/stacks"): {"name": "k2", "target": {"nodes": ["x"]}, "command": "true"},
    ("POST", "/api/v1/webhooks"): {
        "url": "http://127.0.0.1:9/other",
        "event_types": ["job.failed"],
    },
    ("POST", "/api/v1/schedules/preview"): {"period": 300},
}


def form_body(victim: Tenant, route: RouteSpec) -> dict[str, str]:
    v = victim.values
    return {
        "email": v["user_email"],
        "role": "admin",
        "password": "pwned-by-the-other-org",
        "name": "renamed-by-the-other-org",
        "command": "rm -rf /",
        "nodes": v["node"],
        "decision": "approve",
        "nodes_wanted": "5",
        "size": "5",
        "org": victim.org,
    }


# -- the victim's fingerprint


VOLATILE = {"last_used_at"}


async def fingerprint(svc: Services, victim: Tenant) -> dict[str, str]:
    out: dict[str, str] = {}
    async with svc.db.read() as tx:
        for table in metadata.sorted_tables:
            cols = table.c
            if "org_id" in cols:
                where = cols.org_id == victim.org_id
            elif table.name == "users":
                where = cols.id.in_(victim.user_ids)
            elif table.name == "organizations":
                where = cols.id == victim.org_id
            elif "user_id" in cols:
                where = cols.user_id.in_(victim.user_ids)
            else:
                continue
            keep = [c for c in cols if c.name not in VOLATILE]
            rows = (await tx.conn.execute(sa.select(*keep).where(where))).all()
            text = repr(sorted(repr(tuple(r)) for r in rows))
            out[table.name] = hashlib.sha256(text.encode()).hexdigest()
    return out


# -- the world


@dataclass
class World:
    svc: Services
    app: FastAPI
    tenants: dict[str, Tenant]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("tenants")
    shutil.copyfile(sqlite_template, root / "jobyard.db")
    settings = Settings(
        data_dir=root / "data",
        public_url="http://testserver",
        webhook_allow_private=True,
        smtp_host="127.0.0.1",
        smtp_port=9,
        # Kragle's exec and webhooks answer at once (no agent runs what they start here).
        kragle_exec_wait=0,
    )
    url = f"sqlite:///{root / 'jobyard.db'}"
    svc = Services(db=Database(url), settings=settings.replace(database_url=url))
    app = create_app(services=svc, migrate=False, run_loops=False)
    factory = Factory(svc)
    tenants = {org: await build_tenant(svc, app, factory, org) for org in ORGS}
    transport = httpx.ASGITransport(app=app)
    for tenant in tenants.values():
        for role in ("viewer", "user", "admin"):
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                csrf = await sign_in(c, tenant.accounts[role].email)
                cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
                tenant.cookies[role] = (cookie, csrf)
    try:
        yield World(svc, app, tenants)
    finally:
        await svc.db.close()


def test_the_walk_covers_every_surface() -> None:
    kinds = {dialect_of(r.path) for r in ROUTES}
    assert kinds >= {"api", "web", "chef", "rescale", "xplenty", "theeye", "kragle"}, kinds
    writes = [r for r in ROUTES if r.method != "GET"]
    assert len(writes) > 50, len(writes)


async def _attack(
    world: World, attacker: Tenant, role: str, route: RouteSpec, victim: Tenant
) -> httpx.Response | None:
    url = victim_url(victim, route)
    if dialect_of(route.path) == "web":
        if role == "agent":
            return None  # agent tokens have no dashboard session
        cookie, csrf = attacker.cookies[role]
        headers = {"cookie": cookie, "x-csrf-token": csrf}
        if route.method == "GET":
            return await asgi_request(world.app, "GET", url, headers, None)
        form = {**form_body(victim, route), "csrf_token": csrf}
        return await asgi_request(
            world.app,
            route.method,
            url,
            headers,
            urlencode(form).encode(),
            content_type="application/x-www-form-urlencoded",
        )
    body = attack_body(victim, route)
    return await asgi_request(world.app, route.method, url, attacker.accounts[role].headers, body)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("attacker_org", "victim_org"), [("acme", "rival"), ("rival", "acme")])
@pytest.mark.parametrize("role", ROLES)
async def test_no_cross_tenant_effect(
    world: World, attacker_org: str, victim_org: str, role: str
) -> None:
    attacker = world.tenants[attacker_org]
    victim = world.tenants[victim_org]
    baseline = await fingerprint(world.svc, victim)
    problems: list[str] = []
    for route in ROUTES:
        r = await _attack(world, attacker, role, route, victim)
        if r is None:
            continue
        where = f"{route.method} {route.path} as {attacker_org} {role}"
        if r.status_code >= 500 and not kragle_fault(route.path, r):
            problems.append(f"{where}: {r.status_code} {r.text[:200]}")
        if victim.canary in r.text:
            problems.append(f"{where}: answered {r.status_code} with the victim's data")
        after = await fingerprint(world.svc, victim)
        if after != baseline:
            changed = sorted(k for k in after if after[k] != baseline.get(k))
            problems.append(f"{where}: answered {r.status_code} and changed {changed}")
            baseline = after  # report each effect once, at the route that caused it
    assert not problems, "cross-tenant effects:\n" + "\n".join(problems)


# Native object routes that refuse even the owner's admin here, for the object's state.
OWNER_REFUSED = {
    # the notification is the viewer's own: nobody else sees it
    ("GET", "/api/v1/notifications/{notification_id}"),
    ("POST", "/api/v1/notifications/{notification_id}/read"),
    # the job is a script job, not an approval
    ("POST", "/api/v1/jobs/{job_id}/approve"),
    ("POST", "/api/v1/jobs/{job_id}/reject"),
}


def control_order(route: RouteSpec) -> tuple[int, int, int, int]:
    """Deletions last, the deepest first; before them the native API, then the dialects,
    then the dashboard: so every route still finds the objects it names."""
    surface = dialect_of(route.path)
    rank = 0 if surface == "api" else 2 if surface == "web" else 1
    deletes = route.method == "DELETE" or route.path.endswith(("/delete", "/remove"))
    sweeping = "{" not in route.path  # e.g. delete every finished job: after the others
    return (int(deletes), rank, int(sweeping), -route.path.count("/"))


@pytest.mark.asyncio(loop_scope="module")
async def test_the_walk_would_see_an_effect(world: World) -> None:
    """The control: the same walk by the victim's own admin reads the canary and changes
    rows on every surface, so the checks above are able to fail. Runs last: it changes
    the world."""
    victim = world.tenants["acme"]
    read: set[str] = set()
    changed: set[str] = set()
    baseline = await fingerprint(world.svc, victim)
    refused: list[str] = []
    for route in sorted(ROUTES, key=control_order):
        r = await _attack(world, victim, "admin", route, victim)
        if r is not None and r.status_code == 403:  # routes for agents (TheEye's script)
            r = await _attack(world, victim, "agent", route, victim)
        if r is None:
            continue
        if victim.canary in r.text:
            read.add(dialect_of(route.path))
        if (
            dialect_of(route.path) == "api"
            and "{" in route.path
            and r.status_code in (400, 401, 403, 404, 422)
            and (route.method, route.path) not in OWNER_REFUSED
        ):
            refused.append(f"{route.method} {route.path}: {r.status_code} {r.text[:120]}")
        after = await fingerprint(world.svc, victim)
        if after != baseline:
            changed.add(dialect_of(route.path))
            baseline = after
    surfaces = {"api", "web", "chef", "rescale", "xplenty", "theeye", "kragle"}
    # The owner's admin is let through every native object route (or refused for the
    # state of the object, 409): so the attackers' refusals came from who was asking.
    assert not refused, "\n".join(refused)
    assert read >= surfaces - {"kragle", "xplenty"}, sorted(surfaces - read)
    assert changed >= {"api", "web", "rescale", "theeye", "kragle", "xplenty"}, sorted(
        surfaces - changed
    )
