"""Tasks, approvals, input, hooks, schedules, stacks and triggers through the HTTP API."""

from __future__ import annotations

import httpx

from jobyard.domain.accounts import Role
from tests.conftest import Account, Factory


async def _people(factory: Factory) -> tuple[Account, Account, Account, Account]:
    org = await factory.org()
    return (
        await factory.account(org, Role.ADMIN),
        await factory.account(org, Role.USER),
        await factory.account(org, Role.USER),
        await factory.account(org, Role.VIEWER),
    )


TASK = {
    "name": "deploy",
    "command": "./deploy.sh",
    "target": {"nodes": ["n1"]},
    "arguments": [
        {"name": "env", "type": "select", "options": ["staging", "prod"]},
        {"name": "count", "type": "number", "required": False, "default": 1},
    ],
}


async def test_task_crud_and_run(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, alice, _, viewer = await _people(factory)
    r = await client.post("/api/v1/tasks", json=TASK, headers=alice.headers)
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["arguments"][0]["options"] == ["staging", "prod"]
    assert task["concurrency"] == {"mode": "allow", "limit": 1, "queue": 10}
    r = await client.post(f"/api/v1/tasks/{task['id']}/run", json={}, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "arguments.env", "message": "argument 'env' is required"}
    ]
    r = await client.post(
        f"/api/v1/tasks/{task['id']}/run",
        json={"arguments": {"env": "prod"}},
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["status"], job["kind"], job["task_id"]) == ("new", "script", task["id"])
    assert job["command"] == "./deploy.sh prod 1"
    r = await client.get("/api/v1/tasks/by-name/deploy", headers=viewer.headers)
    assert r.json()["id"] == task["id"]
    r = await client.get("/api/v1/tasks", headers=viewer.headers)
    assert r.json()["count"] == 1
    r = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"concurrency": "forbid", "retry": {"attempts": 2}},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["concurrency"]["mode"] == "forbid"
    r = await client.post(
        f"/api/v1/tasks/{task['id']}/run",
        json={"arguments": ["prod"]},
        headers=alice.headers,
    )
    assert r.status_code == 409, r.text
    r = await client.post(
        "/api/v1/tasks", json={**TASK, "name": "x", "type": "magic"}, headers=alice.headers
    )
    assert r.status_code == 422 and "unknown" in r.json()["detail"]
    r = await client.post("/api/v1/tasks", json={**TASK, "name": "y"}, headers=viewer.headers)
    assert r.status_code == 403


async def test_approval_through_the_api(client: httpx.AsyncClient, factory: Factory) -> None:
    _, alice, bob, viewer = await _people(factory)
    body = {
        "name": "release",
        "type": "approval",
        "approvers": [bob.email, viewer.user_id],
        "approve_label": "Ship it",
    }
    r = await client.post("/api/v1/tasks", json=body, headers=alice.headers)
    assert r.status_code == 201, r.text
    assert r.json()["approvers"] == [bob.user_id, viewer.user_id]
    task_id = r.json()["id"]
    job = (await client.post(f"/api/v1/tasks/{task_id}/run", headers=alice.headers)).json()
    assert (job["status"], job["kind"]) == ("onhold", "approval")
    r = await client.post(f"/api/v1/jobs/{job['id']}/approve", headers=alice.headers)
    assert r.status_code == 403
    r = await client.post(
        f"/api/v1/jobs/{job['id']}/reject", json={"comment": "not today"}, headers=viewer.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["state"]) == ("complete", "failure")
    r = await client.post(f"/api/v1/jobs/{job['id']}/approve", headers=bob.headers)
    assert r.status_code == 409
    r = await client.get(f"/api/v1/jobs/{job['id']}/history", headers=viewer.headers)
    statuses = [e["status"] for e in r.json()["results"]]
    assert statuses == ["draft", "onhold", "complete"]


async def test_input_through_the_api(client: httpx.AsyncClient, factory: Factory) -> None:
    _, alice, bob, _ = await _people(factory)
    r = await client.post(
        "/api/v1/tasks", json={**TASK, "name": "ask", "type": "input"}, headers=alice.headers
    )
    task_id = r.json()["id"]
    job = (await client.post(f"/api/v1/tasks/{task_id}/run", headers=alice.headers)).json()
    assert job["status"] == "onhold"
    r = await client.post(
        f"/api/v1/jobs/{job['id']}/input", json={"args": ["qa"]}, headers=bob.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "arguments.env"
    r = await client.post(
        f"/api/v1/jobs/{job['id']}/input", json={"args": ["staging", 4]}, headers=bob.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["command"]) == ("new", "./deploy.sh staging 4")
    r = await client.post(
        f"/api/v1/jobs/{job['id']}/input", json={"arguments": {"env": "prod"}}, headers=bob.headers
    )
    assert r.status_code == 409


async def test_hooks(client: httpx.AsyncClient, factory: Factory) -> None:
    _, alice, bob, _ = await _people(factory)
    task_id = (await client.post("/api/v1/tasks", json=TASK, headers=alice.headers)).json()["id"]
    r = await client.post(f"/api/v1/tasks/{task_id}/secret", headers=bob.headers)
    assert r.status_code == 404
    r = await client.post(f"/api/v1/tasks/{task_id}/secret", headers=alice.headers)
    issued = r.json()
    assert issued["hook_url"].endswith(issued["secret"])
    r = await client.get(f"/api/v1/tasks/{task_id}", headers=alice.headers)
    assert r.json()["has_secret"] and "secret" not in r.json()
    r = await client.post(f"/api/v1/hooks/{issued['secret']}", json={"arguments": {"env": "prod"}})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "new" and "command" not in r.json()
    r = await client.post(f"/api/v1/hooks/{issued['secret']}", json={"arguments": {"x": 1}})
    assert r.status_code == 422
    for _ in range(10):
        r = await client.post("/api/v1/hooks/jyh_wrong", json={})
        assert r.status_code == 404
    r = await client.post(f"/api/v1/hooks/{issued['secret']}", json={"arguments": ["prod"]})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert r.headers["content-type"] == "application/problem+json"


async def test_schedules_stacks_triggers(client: httpx.AsyncClient, factory: Factory) -> None:
    _, alice, _, viewer = await _people(factory)
    r = await client.post(
        "/api/v1/schedules/preview?n=2",
        json={"cron": "30 2 * * *", "timezone": "America/New_York"},
        headers=viewer.headers,
    )
    assert r.status_code == 200 and len(r.json()["next_times"]) == 2
    r = await client.post("/api/v1/schedules", json={"cron": "* * * *"}, headers=alice.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "cron"
    r = await client.post(
        "/api/v1/schedules", json={"cron": "*/5 * * * *", "period": 5}, headers=alice.headers
    )
    assert r.status_code == 422
    r = await client.post(
        "/api/v1/schedules", json={"name": "often", "period": 60}, headers=alice.headers
    )
    assert r.status_code == 201, r.text
    schedule = r.json()
    assert schedule["kind"] == "period" and len(schedule["next_times"]) == 5
    r = await client.patch(
        f"/api/v1/schedules/{schedule['id']}", json={"cron": "0 * * * *"}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "cron" and "period" not in r.json()
    task = (await client.post("/api/v1/tasks", json=TASK, headers=alice.headers)).json()
    r = await client.post(
        "/api/v1/stacks",
        json={
            "name": "prod",
            "target": {"nodes": ["n2"]},
            "env": {"A": "1"},
            "task_id": task["id"],
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    stack = r.json()
    r = await client.post(
        f"/api/v1/stacks/{stack['id']}/run",
        json={"arguments": {"env": "prod"}},
        headers=alice.headers,
    )
    assert r.status_code == 201 and r.json()["nodes"] == ["n2"]
    stack_job = r.json()["id"]
    r = await client.post(
        "/api/v1/triggers",
        json={
            "name": "hourly",
            "schedule_id": schedule["id"],
            "stack_id": stack["id"],
            "arguments": {"env": "staging"},
            "overlap": "forbid",
            "catch_up": "once",
        },
        headers=alice.headers,
    )
    assert r.status_code == 201, r.text
    trigger = r.json()
    assert trigger["next_fire_at"] and trigger["overlap"]["mode"] == "forbid"
    r = await client.get("/api/v1/triggers/by-name/hourly", headers=viewer.headers)
    assert r.json()["id"] == trigger["id"]
    r = await client.patch(
        f"/api/v1/triggers/{trigger['id']}", json={"catch_up": "later"}, headers=alice.headers
    )
    assert r.status_code == 422
    r = await client.post(f"/api/v1/triggers/{trigger['id']}/run", headers=alice.headers)
    # The stack's run holds n2: the trigger's forbid refuses to run beside it.
    assert r.status_code == 409 and f"nodes busy: n2 (job {stack_job})" in r.json()["detail"]
    r = await client.post(f"/api/v1/jobs/{stack_job}/stop", headers=alice.headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/triggers/{trigger['id']}/run", headers=alice.headers)
    assert r.status_code == 201 and r.json()["trigger_id"] == trigger["id"]
    r = await client.get(f"/api/v1/triggers/{trigger['id']}/fires", headers=viewer.headers)
    assert r.json()["count"] == 0
    r = await client.delete(f"/api/v1/schedules/{schedule['id']}", headers=alice.headers)
    assert r.status_code == 409
    r = await client.delete(f"/api/v1/triggers/{trigger['id']}", headers=alice.headers)
    assert (r.status_code, r.json()) == (202, {"queued_for_deletion": trigger["id"]})
    r = await client.get(f"/api/v1/triggers/{trigger['id']}", headers=alice.headers)
    assert r.json()["queued_for_deletion"] is True
    r = await client.delete(f"/api/v1/triggers/{trigger['id']}?now=true", headers=alice.headers)
    assert (r.status_code, r.json()) == (200, {"deleted": trigger["id"]})


async def test_delete_finished_history_route(client: httpx.AsyncClient, factory: Factory) -> None:
    admin, alice, _, _ = await _people(factory)
    job = (
        await client.post(
            "/api/v1/jobs", json={"command": "true", "nodes": ["n1"]}, headers=alice.headers
        )
    ).json()
    await client.post(f"/api/v1/jobs/{job['id']}/stop", headers=alice.headers)
    r = await client.delete("/api/v1/jobs/finished", headers=alice.headers)
    assert r.status_code == 403
    r = await client.delete("/api/v1/jobs/finished?older_than=soon", headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "older_than"
    r = await client.delete("/api/v1/jobs/finished?older_than=1d", headers=admin.headers)
    assert r.json() == {"deleted": 0}
    r = await client.delete("/api/v1/jobs/finished?status=aborted", headers=admin.headers)
    assert r.json() == {"deleted": 1}
    r = await client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers)
    assert r.status_code == 404
