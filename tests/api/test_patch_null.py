"""``null`` for each field of every PATCH/PUT body: never a 5xx; a field the database
keeps NOT NULL answers 422 naming it ("name may not be null") and changes nothing, while
a nullable field (run_timeout, dir, quorum, ...) still takes null."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from jobyard.api.app import create_app
from jobyard.api.nodes import ClusterPatch
from jobyard.domain.accounts import Role
from jobyard.domain.dialects import rescale
from jobyard.service.context import Services
from jobyard.wire.jobs import JobPatch
from jobyard.wire.notifications import SettingsIn, WebhookPatch
from jobyard.wire.tasks import ScheduleIn, StackPatch, TaskPatch, TriggerPatch
from tests.api.asgi import kragle_fault
from tests.api.conftest import snapshot
from tests.conftest import Factory

JOB = {"command": "true", "count": 1, "draft": True}

# Fields kept NOT NULL by the database: an explicit null must be refused, not stored.
NOT_NULL: dict[str, set[str]] = {
    "jobs": {"description", "env", "capture_output", "count"},
    "tasks": {
        "name",
        "description",
        "command",
        "env",
        "arguments",
        "approvers",
        "approve_label",
        "reject_label",
        "allow_self_approval",
        "message",
        "recipients",
        "cancellable",
    },
    "stacks": {"name", "description", "target", "env", "public"},
    "clusters": {"name", "nodes", "description", "terminate_on_idle", "time_to_idle"},
    "triggers": {"schedule_id", "enabled", "catch_up", "catch_up_window"},
    "webhooks": {"url", "event_types", "description", "enabled"},
    "schedules": set(),
}

# Fields the database lets be NULL (or that null resets to a default): null is taken.
TAKES_NULL: dict[str, set[str]] = {
    "jobs": {"name", "run_timeout", "dir", "quorum"},
    "tasks": {"target", "run_timeout", "hold_timeout", "dir", "quorum", "argv"},
    "stacks": {"on_failure"},
    "triggers": {"name", "overlap"},
    "schedules": {"name", "timezone"},
}


def fields(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


async def world(client: httpx.AsyncClient) -> dict[str, int]:
    made: dict[str, int] = {}
    for key, url, body in [
        ("job", "/api/v1/jobs", JOB),
        ("cluster", "/api/v1/clusters", {"name": "pool", "nodes": 1}),
        ("task", "/api/v1/tasks", {"name": "deploy", "command": "true", "target": {"count": 1}}),
        ("schedule", "/api/v1/schedules", {"name": "hourly", "period": 3600}),
        ("stack", "/api/v1/stacks", {"name": "web", "target": {"count": 1}, "command": "true"}),
        ("webhook", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}),
    ]:
        r = await client.post(url, json=body)
        assert r.status_code == 201, (url, r.text)
        made[key] = int(r.json()["id"])
    r = await client.post(
        "/api/v1/triggers",
        json={
            "name": "t",
            "schedule_id": made["schedule"],
            "task_id": made["task"],
            "enabled": False,
        },
    )
    assert r.status_code == 201, r.text
    made["trigger"] = int(r.json()["id"])
    return made


def native_calls(ids: dict[str, int]) -> list[tuple[str, str, str, dict[str, Any], list[str]]]:
    """(kind, method, url, base body, fields to send as null); triggers first, while
    their task still has its target."""
    return [
        ("triggers", "PATCH", f"/api/v1/triggers/{ids['trigger']}", {}, fields(TriggerPatch)),
        ("jobs", "PATCH", f"/api/v1/jobs/{ids['job']}", {}, fields(JobPatch)),
        (
            "jobs",
            "PUT",
            f"/api/v1/jobs/{ids['job']}",
            {"command": "true", "count": 1},
            fields(JobPatch),
        ),
        ("tasks", "PATCH", f"/api/v1/tasks/{ids['task']}", {}, fields(TaskPatch)),
        ("stacks", "PATCH", f"/api/v1/stacks/{ids['stack']}", {}, fields(StackPatch)),
        ("clusters", "PATCH", f"/api/v1/clusters/{ids['cluster']}", {}, fields(ClusterPatch)),
        ("schedules", "PATCH", f"/api/v1/schedules/{ids['schedule']}", {}, fields(ScheduleIn)),
        ("webhooks", "PATCH", f"/api/v1/webhooks/{ids['webhook']}", {}, fields(WebhookPatch)),
        ("settings", "PUT", "/api/v1/notifications/settings", {}, fields(SettingsIn)),
        ("retention", "PUT", "/api/v1/retention", {}, ["keep_jobs_days", "keep_output_days"]),
        ("definitions", "PUT", "/api/v1/definitions/managed", {}, ["source", "kinds"]),
    ]


def dialect_calls(
    org: str, ids: dict[str, int]
) -> list[tuple[str, str, str, dict[str, Any], list[str]]]:
    job = rescale.render_id(ids["job"])
    return [
        (
            "rescale",
            "PATCH",
            f"/compat/rescale/api/jobs/{job}/",
            {},
            ["name", "description", "jobanalyses", "projectId", "isLowPriority"],
        ),
        (
            "rescale",
            "PUT",
            f"/compat/rescale/api/jobs/{job}/",
            {},
            ["name", "description", "jobanalyses", "projectId", "isLowPriority"],
        ),
        (
            "kragle",
            "PUT",
            f"/compat/kragle/jobs/{ids['trigger']}",
            {},
            ["schedule_id", "stack_id", "name", "enabled"],
        ),
        (
            "kragle",
            "PUT",
            f"/compat/kragle/schedules/{ids['schedule']}",
            {},
            ["config", "name", "once"],
        ),
        (
            "kragle",
            "PUT",
            f"/compat/kragle/blockstacks/{ids['stack']}",
            {},
            [
                "name",
                "blocks",
                "target",
                "env",
                "public",
                "needs_approval",
                "schedule_id",
                "webhook",
                "webhook_method",
                "nodes",
                "tags",
            ],
        ),
        (
            "xplenty",
            "PUT",
            f"/compat/xplenty/{org}/api/clusters/{ids['cluster']}",
            {},
            ["nodes", "name", "description", "terminate_on_idle", "time_to_idle"],
        ),
    ]


async def walk(svc: Services) -> list[str]:
    svc.settings = svc.settings.replace(webhook_allow_private=True)
    factory = Factory(svc)
    org = await factory.org("acme")
    admin = await factory.account(org, Role.ADMIN, "admin@acme.test")
    app = create_app(services=svc, migrate=False, run_loops=False)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    problems: list[str] = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", headers=admin.headers
    ) as client:
        ids = await world(client)
        key = base64.b64encode(f"{admin.token}:".encode()).decode()
        dialect_headers = {
            "rescale": {"Authorization": f"Token {admin.token}"},
            "xplenty": {"Accept": "application/vnd.xplenty+json", "Authorization": f"Basic {key}"},
        }
        for kind, method, url, base, names in native_calls(ids) + dialect_calls(org, ids):
            for name in names:
                before = await snapshot(svc)
                shown_before = (await client.get(url)).text if method == "PATCH" else None
                r = await client.request(
                    method, url, json={**base, name: None}, headers=dialect_headers.get(kind, {})
                )
                what = f"{method} {url} {{{name!r}: null}} -> {r.status_code} {r.text[:200]}"
                if r.status_code >= 500 and not kragle_fault(url, r):
                    problems.append(what)
                    continue
                taken = name in TAKES_NULL.get(kind, set()) and method == "PATCH"
                if taken and r.status_code != 200:
                    problems.append("expected null to be taken: " + what)
                if name in NOT_NULL.get(kind, set()):
                    if r.status_code != 422 or f"{name} may not be null" not in r.text:
                        problems.append("expected 422 naming the field: " + what)
                    elif await snapshot(svc) != before or (
                        shown_before is not None and (await client.get(url)).text != shown_before
                    ):
                        problems.append("refused but changed something: " + what)
    return problems


async def test_null_in_every_patch_and_put_field(svc: Services) -> None:
    problems = await walk(svc)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_null_in_every_patch_and_put_field_on_postgresql(any_svc: Services) -> None:
    problems = await walk(any_svc)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
