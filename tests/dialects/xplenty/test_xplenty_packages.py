"""Xplenty packages (native tasks) and schedules (native triggers), and running a package.

Field sets follow Xplenty's package and schedule resources (API v2 documentation, and what
its Python and Java clients read); values are checked against the native objects.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.dialects import xplenty
from jobyard.domain.schedules import Schedule, ScheduleKind
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import add_node
from tests.dialects.xplenty.test_xplenty_seed import TIME, api, basic, cluster

PACKAGE_FIELDS = {
    "id",
    "name",
    "description",
    "variables",
    "owner_id",
    "created_at",
    "updated_at",
    "url",
    "html_url",
    "status",
}
SCHEDULE_FIELDS = {
    "id",
    "name",
    "description",
    "owner_id",
    "status",
    "start_at",
    "next_run_at",
    "interval_amount",
    "interval_unit",
    "last_run_at",
    "last_run_status",
    "execution_count",
    "overlap",
    "reuse_cluster_strategy",
    "task",
    "created_at",
    "updated_at",
    "url",
    "html_url",
}
REPORT = {
    "name": "report",
    "description": "Nightly report",
    "command": "echo report",
    "target": {"cluster": "c1"},
    "arguments": [
        {"name": "day", "type": "text"},
        {"name": "rows", "type": "number", "required": False, "default": 10},
    ],
}


async def _post(client: httpx.AsyncClient, who: Account, path: str, body: Any) -> Any:
    r = await client.post(f"/api/v1/{path}", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_packages_list_and_get(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    report = await _post(client, admin, "tasks", REPORT)
    plain = await _post(
        client, admin, "tasks", {"name": "plain", "command": "true", "target": {"count": 1}}
    )
    r = await client.get(f"{api(admin)}/packages", headers=basic(admin))
    assert r.status_code == 200
    found = r.json()
    assert isinstance(found, list)
    assert [p["id"] for p in found] == [plain["id"], report["id"]]  # newest first
    assert all(set(p) == PACKAGE_FIELDS for p in found)
    p = found[1]
    assert (p["name"], p["description"], p["status"]) == ("report", "Nightly report", "active")
    assert p["variables"] == {"day": None, "rows": "10"}
    assert p["owner_id"] == admin.user_id
    assert TIME.match(p["created_at"]) and TIME.match(p["updated_at"])
    assert p["url"] == f"http://testserver{api(admin)}/packages/{report['id']}"
    assert p["html_url"] == f"http://testserver/tasks/{report['id']}"
    assert found[0]["variables"] == {}
    # The Python client's window, and the list options clusters and jobs take.
    r = await client.get(f"{api(admin)}/packages?offset=1&limit=1", headers=basic(admin))
    assert [x["id"] for x in r.json()] == [report["id"]]
    r = await client.get(f"{api(admin)}/packages?direction=asc", headers=basic(admin))
    assert [x["id"] for x in r.json()] == [report["id"], plain["id"]]
    r = await client.get(f"{api(admin)}/packages/{report['id']}", headers=basic(admin))
    assert r.status_code == 200 and r.json() == p
    for bad in ("abc", "0", "-1", "99999999"):
        r = await client.get(f"{api(admin)}/packages/{bad}", headers=basic(admin))
        assert r.status_code == 404 and list(r.json()) == ["message"], bad
        assert "package" in r.json()["message"]
    # Another account's packages do not exist for this one.
    stranger = await factory.account(await factory.org(), Role.ADMIN)
    r = await client.get(f"{api(stranger)}/packages/{report['id']}", headers=basic(stranger))
    assert r.status_code == 404
    r = await client.get(f"{api(stranger)}/packages", headers=basic(stranger))
    assert r.json() == []


async def test_run_a_package_on_a_cluster(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    task = await _post(client, admin, "tasks", REPORT)
    body = {"cluster_id": c["id"], "package_id": task["id"], "variables": {"day": "mon"}}
    r = await client.post(f"{api(admin)}/jobs", json=body, headers=basic(admin))
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["package_id"], job["cluster_id"], job["status"]) == (task["id"], c["id"], "pending")
    assert job["variables"] == {"day": "mon", "rows": "10"}
    assert job["dynamic_variables"] == {}
    native = (await client.get(f"/api/v1/jobs/{job['id']}", headers=admin.headers)).json()
    assert native["command"] == "echo report mon 10"
    assert native["nodes"] == ["n1"] and native["target"] == {"cluster": "c1"}
    r = await client.get(f"{api(admin)}/jobs/{job['id']}/variables", headers=basic(admin))
    assert r.json() == {"day": "mon", "rows": "10"}
    # PyPI xplenty sends the package as job[job_id], form-encoded, dynamic variables too.
    r = await client.post(
        f"{api(admin)}/jobs",
        data={
            "job[cluster_id]": str(c["id"]),
            "job[job_id]": str(task["id"]),
            "job[variables][day]": "tue",
            "job[dynamic_variables][rows]": "3",
        },
        headers=basic(admin, colon=False),
    )
    assert r.status_code == 201, r.text
    assert r.json()["package_id"] == task["id"]
    native = (await client.get(f"/api/v1/jobs/{r.json()['id']}", headers=admin.headers)).json()
    assert native["command"] == "echo report tue 3"


async def test_running_a_package_refuses_what_it_cannot_run(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    task = await _post(client, admin, "tasks", REPORT)
    url = f"{api(admin)}/jobs"
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"cluster_id": c["id"]}, 422, "package_id"),
        ({"cluster_id": c["id"], "package_id": 999999}, 404, "package 999999"),
        ({"cluster_id": c["id"], "package_id": 0}, 404, "package 0"),
        ({"cluster_id": c["id"], "package_id": "x"}, 422, "package_id"),
        ({"cluster_id": 999999, "package_id": task["id"]}, 404, "cluster"),
        ({"cluster_id": c["id"], "package_id": task["id"]}, 422, "'day' is required"),
        (
            {"cluster_id": c["id"], "package_id": task["id"], "variables": {"nope": "1"}},
            422,
            "unknown argument 'nope'",
        ),
        (
            {"cluster_id": c["id"], "package_id": task["id"], "command": "true"},
            422,
            "not both",
        ),
    ]
    for body, status, words in cases:
        r = await client.post(url, json=body, headers=basic(admin))
        assert r.status_code == status, (body, r.text)
        assert list(r.json()) == ["message"] and words in r.json()["message"], r.json()


async def _schedule(client: httpx.AsyncClient, who: Account, body: dict[str, Any]) -> int:
    saved = await _post(client, who, "schedules", body)
    return int(saved["id"])


async def test_schedules_list_and_get(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    await cluster(client, admin, nodes=3, terminate_on_idle=True, time_to_idle=600)
    task = await _post(client, admin, "tasks", REPORT)
    start = "2030-01-01T06:00:00Z"
    every_2h = await _schedule(client, admin, {"period": 7200, "start": start})
    monthly = await _schedule(client, admin, {"cron": "0 9 1 * *", "timezone": "Europe/Paris"})
    once = await _schedule(client, admin, {"at": "2031-05-01T10:00:00Z"})
    odd = await _schedule(client, admin, {"period": 90})
    stack = await _post(
        client, admin, "stacks", {"name": "two", "target": {"nodes": ["n1", "n2"]}, "command": "ls"}
    )
    a = await _post(
        client,
        admin,
        "triggers",
        {
            "name": "nightly",
            "schedule_id": every_2h,
            "task_id": task["id"],
            "arguments": {"day": "wed"},
        },
    )
    b = await _post(
        client,
        admin,
        "triggers",
        {"schedule_id": monthly, "task_id": task["id"], "arguments": ["thu", 5]},
    )
    d = await _post(
        client,
        admin,
        "triggers",
        {"name": "later", "schedule_id": once, "stack_id": stack["id"], "enabled": False},
    )
    e = await _post(
        client,
        admin,
        "triggers",
        {"name": "often", "schedule_id": odd, "stack_id": stack["id"], "overlap": "forbid"},
    )
    r = await client.get(f"{api(admin)}/schedules", headers=basic(admin))
    assert r.status_code == 200, r.text
    found = {s["id"]: s for s in r.json()}
    assert list(found) == [e["id"], d["id"], b["id"], a["id"]]
    assert all(set(s) == SCHEDULE_FIELDS for s in found.values())

    s = found[a["id"]]
    assert (s["name"], s["status"], s["owner_id"]) == ("nightly", "enabled", admin.user_id)
    assert (s["interval_amount"], s["interval_unit"]) == (2, "hours")
    assert s["start_at"] == start and s["next_run_at"] == start
    assert s["description"] == "every 7200 s"
    assert (s["last_run_at"], s["last_run_status"], s["execution_count"]) == (None, None, 0)
    assert s["task"] == {
        "nodes": 3,
        "packages": [{"package_id": str(task["id"]), "variables": {"day": "wed"}}],
        "terminate_on_idle": True,
        "time_to_idle": 600,
    }
    assert (s["overlap"], s["reuse_cluster_strategy"]) == (True, "any")
    assert s["url"] == f"http://testserver{api(admin)}/schedules/{a['id']}"
    assert s["html_url"] == f"http://testserver/triggers/{a['id']}"
    assert TIME.match(s["created_at"]) and TIME.match(s["updated_at"])

    s = found[b["id"]]
    assert s["name"] == "Untitled"
    assert (s["interval_amount"], s["interval_unit"]) == (1, "months")
    assert s["description"] == "cron 0 9 1 * * (Europe/Paris)"
    assert s["start_at"] == s["created_at"]
    assert s["task"]["packages"][0]["variables"] == {"day": "thu", "rows": "5"}

    s = found[d["id"]]
    assert (s["status"], s["next_run_at"]) == ("disabled", None)
    assert (s["interval_amount"], s["interval_unit"]) == (0, "never")
    assert s["start_at"] == "2031-05-01T10:00:00Z"
    assert s["task"] == {
        "nodes": 2,
        "packages": [],
        "terminate_on_idle": False,
        "time_to_idle": None,
    }
    s = found[e["id"]]
    assert (s["interval_amount"], s["interval_unit"], s["overlap"]) == (90, "seconds", False)

    r = await client.get(f"{api(admin)}/schedules?status=disabled", headers=basic(admin))
    assert [x["id"] for x in r.json()] == [d["id"]]
    r = await client.get(
        f"{api(admin)}/schedules?status=enabled&direction=asc&limit=2", headers=basic(admin)
    )
    assert [x["id"] for x in r.json()] == [a["id"], b["id"]]
    r = await client.get(f"{api(admin)}/schedules?status=paused", headers=basic(admin))
    assert r.status_code == 422 and "enabled" in r.json()["message"]

    # A run of the trigger is an execution of the schedule.
    r = await client.post(f"/api/v1/triggers/{a['id']}/run", headers=admin.headers)
    assert r.status_code == 201, r.text
    r = await client.get(f"{api(admin)}/schedules/{a['id']}", headers=basic(admin))
    assert r.status_code == 200
    s = r.json()
    assert (s["execution_count"], s["last_run_status"]) == (1, "pending")
    assert TIME.match(s["last_run_at"])
    for bad in ("x", "0", str(10**12)):
        r = await client.get(f"{api(admin)}/schedules/{bad}", headers=basic(admin))
        assert r.status_code == 404 and "schedule" in r.json()["message"], bad


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (Schedule(kind=ScheduleKind.PERIOD, period=604800), (1, "weeks")),
        (Schedule(kind=ScheduleKind.PERIOD, period=172800), (2, "days")),
        (Schedule(kind=ScheduleKind.PERIOD, period=300), (5, "minutes")),
        (Schedule(kind=ScheduleKind.PERIOD, period=61), (61, "seconds")),
        (Schedule(kind=ScheduleKind.CRON, cron="*/15 * * * *"), (15, "minutes")),
        (Schedule(kind=ScheduleKind.CRON, cron="0 */6 * * *"), (6, "hours")),
        (Schedule(kind=ScheduleKind.CRON, cron="0 0 * * 0"), (1, "weeks")),
        (Schedule(kind=ScheduleKind.CRON, cron="0 0 1 */3 *"), (3, "months")),
        # Across the spring change in Paris (29 March 2026) a daily cron is still daily.
        (Schedule(kind=ScheduleKind.CRON, cron="0 9 * * *", timezone="Europe/Paris"), (1, "days")),
        (
            Schedule(kind=ScheduleKind.ONCE, at=dt.datetime(2026, 4, 1, tzinfo=dt.UTC)),
            (0, "never"),
        ),
    ],
)
def test_interval_of_native_schedules(schedule: Schedule, expected: tuple[int, str]) -> None:
    after = dt.datetime(2026, 3, 28, 12, tzinfo=dt.UTC)
    assert xplenty.interval(schedule, after) == expected
