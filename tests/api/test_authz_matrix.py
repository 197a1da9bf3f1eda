"""The authorization walker: every route of /openapi.json, as every kind of caller.

For each (method, path) in the OpenAPI document (except /compat/... and web pages), the
request is sent as each caller in ``CALLERS``: anonymous, an admin of another organization
(the outsider, using the first organization's object ids), an agent credential, a viewer,
a second user (not the owner of the objects), the user who owns the objects, an admin.
Each answer is checked against ``EXPECTATIONS``.

The database is restored from a snapshot before each request that follows a write, so every
caller meets the same world, whatever the callers before it did.

Adding a route? Add one line to ``EXPECTATIONS`` (start from a preset such as ``READ_OBJ``
or ``ADMIN``, adjust with ``but(...)``); if its path has a new parameter, teach
``World.build`` to make one such object and ``World.value`` to find it; if it needs a body,
add it to ``BODIES``. ``JOBYARD_AUTHZ_SHOW=1 pytest tests/api/test_authz_matrix.py -s``
prints what each caller got.

Outcomes: ``OK`` 2xx; ``PASS`` allowed through, whatever the answer (for routes whose
success needs a state the walker does not build, e.g. approving a job that is not waiting
for approval): anything but 401/403/404 and never 5xx; ``401``; ``403``; ``404``.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from jobyard.api.app import create_app
from jobyard.domain.accounts import Role
from jobyard.service import outbox
from jobyard.service.context import Services
from jobyard.settings import Settings
from jobyard.store import Database
from tests.api.asgi import asgi_request, schema_app
from tests.conftest import Account, Factory

OK = "ok"
PASS = "pass"
CALLERS = ("anonymous", "outsider", "agent", "viewer", "user2", "user", "admin")
Expect = dict[str, object]


def expect(
    *,
    anonymous: object = 401,
    outsider: object,
    agent: object,
    viewer: object,
    user2: object,
    user: object,
    admin: object,
) -> Expect:
    return {
        "anonymous": anonymous,
        "outsider": outsider,
        "agent": agent,
        "viewer": viewer,
        "user2": user2,
        "user": user,
        "admin": admin,
    }


def but(base: Expect, **changes: object) -> Expect:
    unknown = set(changes) - set(CALLERS)
    assert not unknown, f"unknown callers {unknown}"
    return {**base, **changes}


# Presets. "Objects" are the first organization's, created by ``user`` unless noted.
PUBLIC = expect(anonymous=OK, outsider=OK, agent=OK, viewer=OK, user2=OK, user=OK, admin=OK)
SIGNED_IN = but(PUBLIC, anonymous=401)
# Any person signed in: an agent token is only an agent (docs/decisions.md, token scope).
PEOPLE = but(SIGNED_IN, agent=403)
# Read the organization's collection (the outsider reads its own, empty, collection).
READ = expect(outsider=OK, agent=403, viewer=OK, user2=OK, user=OK, admin=OK)
# Read one object of the first organization.
READ_OBJ = but(READ, outsider=404)
# Create something in one's own organization.
CREATE = expect(outsider=OK, agent=403, viewer=403, user2=OK, user=OK, admin=OK)
# Change an object: its creator (user) or an admin; another user does not see it as theirs.
OWN_OBJ = expect(outsider=404, agent=403, viewer=403, user2=404, user=OK, admin=OK)
# Admins only (on the caller's own organization).
ADMIN = expect(outsider=OK, agent=403, viewer=403, user2=403, user=403, admin=OK)
# Admins only, on an object of the first organization.
ADMIN_OBJ = but(ADMIN, outsider=404)
# Each person's own things (notifications, settings): anyone signed in but agents.
MINE = expect(outsider=OK, agent=403, viewer=OK, user2=OK, user=OK, admin=OK)

EXPECTATIONS: dict[tuple[str, str], Expect] = {
    # -- health
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # -- accounts
    ("GET", "/api/v1/me"): SIGNED_IN,
    ("GET", "/api/v1/tokens"): PEOPLE,
    ("POST", "/api/v1/tokens"): PEOPLE,  # an agent mints no tokens
    # the token is the user's own: they or an admin revoke it; others do not see it
    ("DELETE", "/api/v1/tokens/{token_id}"): expect(
        outsider=404, agent=403, viewer=404, user2=404, user=OK, admin=OK
    ),
    ("GET", "/api/v1/members"): READ,
    ("POST", "/api/v1/members"): ADMIN,
    ("DELETE", "/api/v1/members/{user_id}"): ADMIN_OBJ,
    # -- Chef identities (admins; the outsider names a member it does not have)
    ("GET", "/api/v1/chef-keys"): ADMIN,
    ("POST", "/api/v1/chef-keys"): but(ADMIN, outsider=404),
    ("DELETE", "/api/v1/chef-keys/{name}"): ADMIN_OBJ,
    # -- jobs
    ("POST", "/api/v1/jobs"): CREATE,
    ("GET", "/api/v1/jobs"): READ,
    ("GET", "/api/v1/jobs/by-name/{name}"): READ_OBJ,
    ("GET", "/api/v1/jobs/{job_id}"): READ_OBJ,
    ("PUT", "/api/v1/jobs/{job_id}"): OWN_OBJ,
    ("PATCH", "/api/v1/jobs/{job_id}"): OWN_OBJ,
    ("DELETE", "/api/v1/jobs/{job_id}"): OWN_OBJ,
    ("POST", "/api/v1/jobs/{job_id}/submit"): OWN_OBJ,
    # the walker's job is a draft: stopping it is refused with 409, after authorization
    ("POST", "/api/v1/jobs/{job_id}/stop"): but(OWN_OBJ, user=PASS, admin=PASS),
    ("GET", "/api/v1/jobs/{job_id}/history"): READ_OBJ,
    ("GET", "/api/v1/jobs/{job_id}/runs"): READ_OBJ,
    ("DELETE", "/api/v1/jobs/finished"): ADMIN,
    # -- job output (an active job with a node run and an uploaded file)
    ("GET", "/api/v1/jobs/{job_id}/events"): READ_OBJ,
    ("GET", "/api/v1/events"): READ,
    ("GET", "/api/v1/jobs/{job_id}/output/{node}/{stream}"): READ_OBJ,
    ("GET", "/api/v1/jobs/{job_id}/files"): READ_OBJ,
    ("GET", "/api/v1/files/{file_id}/contents"): READ_OBJ,
    # -- input files (the walker's JSON body names no file: refused after authorization)
    ("POST", "/api/v1/files"): expect(
        outsider=PASS, agent=403, viewer=403, user2=PASS, user=PASS, admin=PASS
    ),
    ("GET", "/api/v1/files"): READ,
    ("GET", "/api/v1/files/{file_id}"): READ_OBJ,
    # -- approvals and input (the approval job names the viewer as its only approver;
    # the user requested it and may not approve it)
    ("POST", "/api/v1/jobs/{job_id}/approve"): expect(
        outsider=404, agent=403, viewer=OK, user2=403, user=403, admin=403
    ),
    ("POST", "/api/v1/jobs/{job_id}/reject"): expect(
        outsider=404, agent=403, viewer=OK, user2=403, user=403, admin=403
    ),
    ("GET", "/api/v1/jobs/{job_id}/input"): READ_OBJ,
    ("POST", "/api/v1/jobs/{job_id}/input"): but(OWN_OBJ, user2=OK),
    # -- nodes and clusters (any user manages a cluster: clusters are shared pools)
    ("GET", "/api/v1/nodes"): READ,
    ("GET", "/api/v1/nodes/{name}"): READ_OBJ,
    ("GET", "/api/v1/nodes/{name}/history"): READ_OBJ,
    ("POST", "/api/v1/clusters"): CREATE,
    ("GET", "/api/v1/clusters"): READ,
    ("GET", "/api/v1/clusters/{cluster_id}"): READ_OBJ,
    ("PATCH", "/api/v1/clusters/{cluster_id}"): but(OWN_OBJ, user2=OK),
    ("DELETE", "/api/v1/clusters/{cluster_id}"): but(OWN_OBJ, user2=OK),
    ("GET", "/api/v1/clusters/{cluster_id}/history"): READ_OBJ,
    # -- tasks, schedules, stacks, triggers (made by the user; any user may run them)
    ("POST", "/api/v1/tasks"): CREATE,
    ("GET", "/api/v1/tasks"): READ,
    ("GET", "/api/v1/tasks/by-name/{name}"): READ_OBJ,
    ("GET", "/api/v1/tasks/{task_id}"): READ_OBJ,
    ("PATCH", "/api/v1/tasks/{task_id}"): OWN_OBJ,
    # a trigger uses the task: deleting it is refused with 409, after authorization
    ("DELETE", "/api/v1/tasks/{task_id}"): but(OWN_OBJ, user=PASS, admin=PASS),
    ("POST", "/api/v1/tasks/{task_id}/run"): but(OWN_OBJ, user2=OK),
    ("POST", "/api/v1/tasks/{task_id}/secret"): OWN_OBJ,
    ("DELETE", "/api/v1/tasks/{task_id}/secret"): OWN_OBJ,
    ("POST", "/api/v1/hooks/{secret}"): PUBLIC,  # the secret is the credential
    ("POST", "/api/v1/schedules"): CREATE,
    ("GET", "/api/v1/schedules"): READ,
    ("POST", "/api/v1/schedules/preview"): PEOPLE,  # arithmetic only, nothing saved
    ("GET", "/api/v1/schedules/{schedule_id}"): READ_OBJ,
    ("PATCH", "/api/v1/schedules/{schedule_id}"): OWN_OBJ,
    ("DELETE", "/api/v1/schedules/{schedule_id}"): but(OWN_OBJ, user=PASS, admin=PASS),
    ("GET", "/api/v1/schedules/{schedule_id}/next"): READ_OBJ,
    ("POST", "/api/v1/stacks"): CREATE,
    ("GET", "/api/v1/stacks"): READ,
    ("GET", "/api/v1/stacks/by-name/{name}"): READ_OBJ,
    ("GET", "/api/v1/stacks/{stack_id}"): READ_OBJ,
    ("PATCH", "/api/v1/stacks/{stack_id}"): OWN_OBJ,
    ("DELETE", "/api/v1/stacks/{stack_id}"): OWN_OBJ,
    ("POST", "/api/v1/stacks/{stack_id}/run"): but(OWN_OBJ, user2=OK),
    ("POST", "/api/v1/stacks/{stack_id}/runs"): but(OWN_OBJ, user2=OK),
    ("GET", "/api/v1/stacks/{stack_id}/runs"): READ_OBJ,
    ("GET", "/api/v1/stack-runs"): READ,
    ("GET", "/api/v1/stack-runs/{run_id}"): READ_OBJ,
    ("GET", "/api/v1/stack-runs/{run_id}/events"): READ_OBJ,
    ("POST", "/api/v1/stack-runs/{run_id}/stop"): but(OWN_OBJ, user2=OK),
    ("POST", "/api/v1/triggers"): but(CREATE, outsider=404),  # names the org's schedule
    ("GET", "/api/v1/triggers"): READ,
    ("GET", "/api/v1/triggers/by-name/{name}"): READ_OBJ,
    ("GET", "/api/v1/triggers/{trigger_id}"): READ_OBJ,
    ("PATCH", "/api/v1/triggers/{trigger_id}"): OWN_OBJ,
    ("DELETE", "/api/v1/triggers/{trigger_id}"): OWN_OBJ,
    ("POST", "/api/v1/triggers/{trigger_id}/run"): but(OWN_OBJ, user2=OK),
    ("GET", "/api/v1/triggers/{trigger_id}/fires"): READ_OBJ,
    # -- watchers and shares (the job and cluster are the user's; the job is shared with
    # user2; {user_id} is the user)
    ("GET", "/api/v1/jobs/{job_id}/watchers"): READ_OBJ,
    ("POST", "/api/v1/jobs/{job_id}/watchers"): READ_OBJ,
    ("DELETE", "/api/v1/jobs/{job_id}/watchers"): READ_OBJ,
    ("DELETE", "/api/v1/jobs/{job_id}/watchers/{user_id}"): but(OWN_OBJ, user2=403),
    ("GET", "/api/v1/clusters/{cluster_id}/watchers"): READ_OBJ,
    ("POST", "/api/v1/clusters/{cluster_id}/watchers"): READ_OBJ,
    ("DELETE", "/api/v1/clusters/{cluster_id}/watchers"): READ_OBJ,
    ("GET", "/api/v1/stack-runs/{run_id}/watchers"): READ_OBJ,
    ("POST", "/api/v1/stack-runs/{run_id}/watchers"): READ_OBJ,
    ("DELETE", "/api/v1/stack-runs/{run_id}/watchers"): READ_OBJ,
    ("DELETE", "/api/v1/clusters/{cluster_id}/watchers/{user_id}"): but(OWN_OBJ, user2=403),
    ("GET", "/api/v1/jobs/{job_id}/shares"): READ_OBJ,
    ("POST", "/api/v1/jobs/{job_id}/shares"): OWN_OBJ,
    # the recipient (user2) may give a share back
    ("DELETE", "/api/v1/jobs/{job_id}/shares/{email}"): but(OWN_OBJ, user2=OK),
    # -- notifications: each person's own (the notification and delivery are user2's;
    # retrying a delivery that has not failed is refused with 409, after authorization)
    ("GET", "/api/v1/notifications"): MINE,
    ("GET", "/api/v1/notifications/unread-count"): MINE,
    ("POST", "/api/v1/notifications/read-all"): MINE,
    ("GET", "/api/v1/notifications/settings"): MINE,
    ("PUT", "/api/v1/notifications/settings"): MINE,
    ("GET", "/api/v1/notifications/deliveries"): MINE,
    ("GET", "/api/v1/notifications/stream"): MINE,
    ("GET", "/api/v1/notifications/{notification_id}"): expect(
        outsider=404, agent=403, viewer=404, user2=OK, user=404, admin=404
    ),
    ("POST", "/api/v1/notifications/{notification_id}/read"): expect(
        outsider=404, agent=403, viewer=404, user2=OK, user=404, admin=404
    ),
    ("POST", "/api/v1/notifications/deliveries/{delivery_id}/retry"): expect(
        outsider=404, agent=403, viewer=404, user2=PASS, user=404, admin=PASS
    ),
    # -- retention policy (admins set it)
    ("GET", "/api/v1/retention"): READ,
    ("PUT", "/api/v1/retention"): ADMIN,
    # -- definitions as files (jobyard apply)
    ("GET", "/api/v1/definitions/managed"): READ,
    ("PUT", "/api/v1/definitions/managed"): CREATE,
    ("GET", "/api/v1/definitions/schema"): PUBLIC,
    # -- webhooks (admins)
    ("GET", "/api/v1/webhooks/event-types"): PEOPLE,
    ("GET", "/api/v1/webhooks"): ADMIN,
    ("POST", "/api/v1/webhooks"): ADMIN,
    ("GET", "/api/v1/webhooks/{subscription_id}"): ADMIN_OBJ,
    ("PATCH", "/api/v1/webhooks/{subscription_id}"): ADMIN_OBJ,
    ("DELETE", "/api/v1/webhooks/{subscription_id}"): ADMIN_OBJ,
    ("GET", "/api/v1/webhooks/{subscription_id}/deliveries"): ADMIN_OBJ,
}

# Request bodies; a route without one sends {} when it takes a body.
BODIES: dict[tuple[str, str], Callable[[World], Any]] = {
    ("POST", "/api/v1/tokens"): lambda w: {"name": "walker"},
    ("POST", "/api/v1/members"): lambda w: {"email": "new@acme.test", "role": "viewer"},
    ("POST", "/api/v1/chef-keys"): lambda w: {"name": "walker", "email": "user@acme.test"},
    # web1 is the first organization's node: others pre-declare it
    ("POST", "/api/v1/jobs"): lambda w: {
        "command": "true",
        "nodes": ["web1"],
        "draft": True,
        "allow_unknown_nodes": True,
    },
    ("PUT", "/api/v1/jobs/{job_id}"): lambda w: {"command": "true", "nodes": ["web2"]},
    ("PATCH", "/api/v1/jobs/{job_id}"): lambda w: {"description": "changed"},
    ("POST", "/api/v1/jobs/{job_id}/input"): lambda w: {"arguments": {"env": "prod"}},
    ("POST", "/api/v1/jobs/{job_id}/shares"): lambda w: {"email": "viewer@acme.test"},
    ("POST", "/api/v1/clusters"): lambda w: {"name": "pool2"},
    ("POST", "/api/v1/tasks"): lambda w: {
        "name": "build",
        "command": "true",
        "target": {"nodes": ["web1"]},
    },
    ("POST", "/api/v1/schedules"): lambda w: {"name": "daily", "period": 86400},
    ("POST", "/api/v1/schedules/preview"): lambda w: {"period": 300},
    ("POST", "/api/v1/stacks"): lambda w: {
        "name": "api",
        "target": {"nodes": ["web1"]},
        "command": "true",
    },
    ("POST", "/api/v1/triggers"): lambda w: {
        "name": "again",
        "schedule_id": int(w.values["schedule_id"]),
        "task_id": int(w.values["task_id"]),
        "enabled": False,
    },
    ("POST", "/api/v1/webhooks"): lambda w: {
        "url": "http://127.0.0.1:9/other",
        "event_types": ["job.failed"],
    },
    ("PUT", "/api/v1/notifications/settings"): lambda w: {"kinds": {"job.failed": {"email": True}}},
    ("PUT", "/api/v1/retention"): lambda w: {"keep_jobs_days": 30},
    ("PUT", "/api/v1/definitions/managed"): lambda w: {
        "source": "ops.yaml",
        "kinds": {"tasks": ["deploy"]},
    },
}


# Routes that need another object than the default for a parameter: param -> value key.
ROUTE_VALUES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/api/v1/jobs/{job_id}/output/{node}/{stream}"): {"job_id": "active_job_id"},
    ("GET", "/api/v1/jobs/{job_id}/files"): {"job_id": "active_job_id"},
    ("GET", "/api/v1/files/{file_id}"): {"file_id": "input_file_id"},
    ("POST", "/api/v1/jobs/{job_id}/approve"): {"job_id": "approval_job_id"},
    ("POST", "/api/v1/jobs/{job_id}/reject"): {"job_id": "approval_job_id"},
    ("GET", "/api/v1/jobs/{job_id}/input"): {"job_id": "input_job_id"},
    ("POST", "/api/v1/jobs/{job_id}/input"): {"job_id": "input_job_id"},
    ("POST", "/api/v1/stacks/{stack_id}/runs"): {"stack_id": "chain_stack_id"},
}


@dataclass
class World:
    """The first organization's accounts and objects, built through the API where possible."""

    svc: Services
    app: FastAPI
    accounts: dict[str, Account]
    values: dict[str, str] = field(default_factory=dict)
    snapshot_dir: Path | None = None

    async def call(self, caller: str, method: str, url: str, body: Any = None) -> httpx.Response:
        account = self.accounts.get(caller)
        headers = {"Authorization": f"Bearer {account.token}"} if account else {}
        return await asgi_request(self.app, method, url, headers, body)

    async def ok(self, caller: str, method: str, url: str, body: Any = None) -> Any:
        r = await self.call(caller, method, url, body)
        assert r.status_code < 300, (method, url, r.status_code, r.text)
        return r.json() if r.content else None

    async def build(self) -> None:
        """One object of each kind, in the first organization."""
        user, admin = "user", "admin"
        async with self.svc.db.begin() as tx:
            org = await tx.accounts.org_by_name("acme")
            assert org is not None
            now = self.svc.clock.now()
            for name in ("web1", "web2"):
                await tx.nodes.upsert(
                    org.id, name, {"tags": ["web"], "online": True, "busy": False}, now
                )
        job = await self.ok(
            user,
            "POST",
            "/api/v1/jobs",
            {"command": "true", "nodes": ["web1"], "name": "nightly", "draft": True},
        )
        self.values["job_id"] = str(job["id"])
        self.values["jobs.name"] = "nightly"
        self.values["nodes.name"] = "web1"
        self.values["node"] = "web1"
        self.values["stream"] = "stdout"
        active = await self.ok(
            user, "POST", "/api/v1/jobs", {"command": "true", "nodes": ["web1"], "name": "live"}
        )
        self.values["active_job_id"] = str(active["id"])
        token = await self.ok(user, "POST", "/api/v1/tokens", {"name": "spare"})
        self.values["token_id"] = str(token["id"])
        self.values["user_id"] = str(self.accounts[user].user_id)
        # Files an agent uploaded (stored directly: uploads come over the agent protocol).
        key, md5 = self.svc.files.put(b"hello")
        async with self.svc.db.begin() as tx:
            stored = await tx.files.insert(
                {
                    "org_id": org.id,
                    "job_id": active["id"],
                    "node_name": "web1",
                    "name": "out.txt",
                    "size": 5,
                    "md5": md5,
                    "storage_key": key,
                    "created_at": self.svc.clock.now(),
                }
            )
        self.values["file_id"] = str(stored.id)
        r = await self.call(user, "POST", "/api/v1/files?name=in.txt", b"input")
        assert r.status_code == 201, r.text
        self.values["input_file_id"] = str(r.json()["id"])
        # Scheduling objects, made by the user.
        cluster = await self.ok(user, "POST", "/api/v1/clusters", {"name": "pool", "nodes": 1})
        self.values["cluster_id"] = str(cluster["id"])
        task = await self.ok(
            user,
            "POST",
            "/api/v1/tasks",
            {"name": "deploy", "command": "true", "target": {"nodes": ["web1"]}},
        )
        self.values["task_id"] = str(task["id"])
        self.values["tasks.name"] = "deploy"
        secret = await self.ok(user, "POST", f"/api/v1/tasks/{task['id']}/secret")
        self.values["secret"] = str(secret["secret"])
        schedule = await self.ok(
            user, "POST", "/api/v1/schedules", {"name": "hourly", "period": 3600}
        )
        self.values["schedule_id"] = str(schedule["id"])
        stack = await self.ok(
            user,
            "POST",
            "/api/v1/stacks",
            {"name": "web", "target": {"nodes": ["web1"]}, "command": "true"},
        )
        self.values["stack_id"] = str(stack["id"])
        self.values["stacks.name"] = "web"
        chain = await self.ok(
            user,
            "POST",
            "/api/v1/stacks",
            {"name": "chain", "target": {"nodes": ["web1"]}, "steps": [{"task": "deploy"}]},
        )
        self.values["chain_stack_id"] = str(chain["id"])
        chain_run = await self.ok(user, "POST", f"/api/v1/stacks/{chain['id']}/runs")
        self.values["run_id"] = str(chain_run["id"])
        trigger = await self.ok(
            user,
            "POST",
            "/api/v1/triggers",
            {
                "name": "every-hour",
                "schedule_id": schedule["id"],
                "task_id": task["id"],
                "enabled": False,
            },
        )
        self.values["trigger_id"] = str(trigger["id"])
        self.values["triggers.name"] = "every-hour"
        # Notifications: the user shares the job with user2, who is told in the app and
        # by email (which waits: the walker runs no relay towards its SMTP server).
        await self.ok(
            "user2",
            "PUT",
            "/api/v1/notifications/settings",
            {"kinds": {"job.shared": {"in_app": True, "email": True}}},
        )
        await self.ok(
            user, "POST", f"/api/v1/jobs/{job['id']}/shares", {"email": "user2@acme.test"}
        )
        self.values["email"] = "user2@acme.test"
        await outbox.deliver_in_app(self.svc)  # what the relay loop does
        inbox = await self.ok("user2", "GET", "/api/v1/notifications")
        items = inbox["results"] if isinstance(inbox, dict) else inbox
        assert items, "sharing a job should notify the person it is shared with"
        self.values["notification_id"] = str(items[0]["id"])
        deliveries = await self.ok("user2", "GET", "/api/v1/notifications/deliveries")
        items = deliveries["results"] if isinstance(deliveries, dict) else deliveries
        assert items, "a notification should have at least one delivery"
        self.values["delivery_id"] = str(items[0]["id"])
        # An approval job waiting for the viewer's decision, and an input job waiting for input.
        viewer_id = self.accounts["viewer"].user_id
        gate = await self.ok(
            user,
            "POST",
            "/api/v1/tasks",
            {"name": "gate", "type": "approval", "approvers": [viewer_id]},
        )
        held = await self.ok(user, "POST", f"/api/v1/tasks/{gate['id']}/run", {})
        assert held["status"] == "onhold", held
        self.values["approval_job_id"] = str(held["id"])
        ask = await self.ok(
            user,
            "POST",
            "/api/v1/tasks",
            {
                "name": "ask",
                "type": "input",
                "arguments": [{"name": "env"}],
                "command": "true",
                "target": {"nodes": ["web1"]},
            },
        )
        waiting = await self.ok(user, "POST", f"/api/v1/tasks/{ask['id']}/run", {})
        assert waiting["status"] == "onhold", waiting
        self.values["input_job_id"] = str(waiting["id"])
        hook = await self.ok(
            admin,
            "POST",
            "/api/v1/webhooks",
            {"url": "http://127.0.0.1:9/jobyard", "event_types": ["job.failed"]},
        )
        self.values["subscription_id"] = str(hook["id"])
        await self.ok(
            admin, "POST", "/api/v1/chef-keys", {"name": "knife-user", "email": "user@acme.test"}
        )
        self.values["chef-keys.name"] = "knife-user"

    def value(self, method: str, path: str, param: str) -> str:
        """The value of a path parameter for this route."""
        collection = path.split("/")[3] if path.startswith("/api/v1/") else ""
        keys = [f"{collection}.{param}", param]
        override = ROUTE_VALUES.get((method, path), {}).get(param)
        if override:
            keys.insert(0, override)
        for key in keys:
            if key in self.values:
                return self.values[key]
        raise AssertionError(
            f"{method} {path}: no value for path parameter {{{param}}}: "
            "teach World.build to make one"
        )

    # -- snapshots of the database and the files, so every caller meets the same world
    async def save(self, where: Path) -> None:
        await self.svc.db.close()
        shutil.copytree(self.svc.settings.data_dir, where / "data")
        shutil.copyfile(db_file(self.svc), where / "jobyard.db")
        self.snapshot_dir = where

    async def restore(self) -> None:
        assert self.snapshot_dir is not None
        await self.svc.db.close()
        path = db_file(self.svc)
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.snapshot_dir / "jobyard.db", path)
        shutil.rmtree(self.svc.settings.data_dir, ignore_errors=True)
        shutil.copytree(self.snapshot_dir / "data", self.svc.settings.data_dir)


def db_file(svc: Services) -> Path:
    return Path(svc.db.url.removeprefix("sqlite:///"))


# -- the routes


def walked_routes(app: FastAPI) -> list[tuple[str, str]]:
    with warnings.catch_warnings():
        # Duplicate operation ids are checked by test_operation_ids_are_unique.
        warnings.simplefilter("ignore", UserWarning)
        doc = app.openapi()
    out = []
    for path, operations in doc["paths"].items():
        if path.startswith("/compat/") or not (
            path.startswith("/api/v1/") or path in ("/healthz", "/readyz", "/metrics")
        ):
            continue
        for method in operations:
            out.append((method.upper(), path))
    return sorted(out)


ROUTES = walked_routes(schema_app())


def test_every_route_has_an_expectation() -> None:
    missing = [f"    ({m!r}, {p!r}): ...," for m, p in ROUTES if (m, p) not in EXPECTATIONS]
    assert not missing, "routes without an expectation; add to EXPECTATIONS:\n" + "\n".join(missing)


def test_no_expectation_for_a_route_that_is_gone() -> None:
    stale = sorted(set(EXPECTATIONS) - set(ROUTES))
    assert not stale, f"EXPECTATIONS names routes the app no longer has: {stale}"


def test_every_route_does_something_for_someone() -> None:
    for route, outcomes in EXPECTATIONS.items():
        assert set(outcomes) == set(CALLERS), route
        assert any(o in (OK, PASS) for o in outcomes.values()), (
            f"{route}: every caller is refused; the route must do something for someone"
        )


def test_operation_ids_are_unique() -> None:
    """Client generators name methods after operation ids: duplicates break them."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        schema_app().openapi()
    duplicates = [str(w.message) for w in caught if "Duplicate Operation ID" in str(w.message)]
    assert not duplicates, duplicates


# -- the walk


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path
) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("walker")
    shutil.copyfile(sqlite_template, root / "jobyard.db")
    # Webhook URLs on loopback: the walker has no network, and public names do not resolve.
    settings = Settings(
        data_dir=root / "data",
        public_url="http://testserver",
        webhook_allow_private=True,
        smtp_host="127.0.0.1",
        smtp_port=9,
    )
    url = f"sqlite:///{root / 'jobyard.db'}"
    svc = Services(db=Database(url), settings=settings.replace(database_url=url))
    factory = Factory(svc)
    org = await factory.org("acme")
    other = await factory.org("rival")
    accounts = {
        "viewer": await factory.account(org, Role.VIEWER, "viewer@acme.test"),
        "user": await factory.account(org, Role.USER, "user@acme.test"),
        "user2": await factory.account(org, Role.USER, "user2@acme.test"),
        "admin": await factory.account(org, Role.ADMIN, "admin@acme.test"),
        "agent": await factory.account(org, Role.AGENT, "agent@acme.test"),
        "outsider": await factory.account(other, Role.ADMIN, "admin@rival.test"),
    }
    app = create_app(services=svc, migrate=False, run_loops=False)
    w = World(svc, app, accounts)
    await w.build()
    snap = root / "snapshot"
    snap.mkdir()
    await w.save(snap)
    try:
        yield w
    finally:
        await svc.db.close()


def classify(status: int) -> object:
    if 200 <= status < 400:
        return OK
    return status


def matches(wanted: object, status: int) -> bool:
    if wanted == OK:
        return 200 <= status < 400
    if wanted == PASS:
        return status not in (401, 403, 404) and status < 500
    return status == wanted


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_route(world: World, method: str, path: str) -> None:
    wanted = EXPECTATIONS.get((method, path))
    url = path
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            url = url.replace(part, world.value(method, path, part[1:-1]), 1)
    make_body = BODIES.get((method, path))
    body = make_body(world) if make_body else ({} if method in ("POST", "PUT", "PATCH") else None)
    got: dict[str, int] = {}
    texts: dict[str, str] = {}
    dirty = True
    for caller in CALLERS:
        if dirty:
            await world.restore()
        async with world.svc.db.read() as tx:
            before = await tx.events.last_id()
        r = await world.call(caller, method, url, body)
        got[caller] = r.status_code
        texts[caller] = r.text[:200]
        dirty = method != "GET" or r.status_code >= 500
        assert r.status_code < 500, f"{method} {url} as {caller}: {r.status_code} {r.text}"
        if r.status_code in (401, 403, 404):
            async with world.svc.db.read() as tx:
                assert await tx.events.last_id() == before, (
                    f"{method} {url} as {caller} was refused ({r.status_code}) "
                    "but recorded an event"
                )
            if r.status_code == 401:
                assert "bearer" in r.headers.get("www-authenticate", "").lower()
    if os.environ.get("JOBYARD_AUTHZ_SHOW"):
        print(f"\n{method} {path}: " + ", ".join(f"{c}={got[c]}" for c in CALLERS))
    if wanted is None:
        seen = ", ".join(f"{c}={'OK' if classify(got[c]) == OK else got[c]}" for c in CALLERS)
        pytest.fail(
            f"{method} {path} has no line in EXPECTATIONS. What each caller got now "
            f"(check it is right before copying): ({method!r}, {path!r}): expect({seen}),"
        )
    wrong = {c: (wanted[c], got[c], texts[c]) for c in CALLERS if not matches(wanted[c], got[c])}
    assert not wrong, f"{method} {path}: (expected, got, body) by caller: {wrong}"
