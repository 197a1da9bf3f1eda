"""Kragle (seed 003): jobs (a stack on a schedule), schedules, stacks, log-in, errors.

Every documented request of the seed is replayed and its response compared field by
field; the fuller reference (Kragle's API docs) gives schedules, stacks, /authenticate,
inline auth and the fault codes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.service import triggers
from jobyard.service.context import Services
from tests.conftest import Account, Factory

BASE = "/compat/kragle"
PASSWORD = "correct horse"  # the factory's password for every user
FAULT_MSG = {
    1: "You have made a bad request - Please check your query params and try again.",
    2: "Your request body contained invalid or inappropriate JSON - please check your request "
    "and try again.",
    3: "That user does not exist or the specified password is incorrect.",
    4: "Your json request payload is inappropriate for the requested operation.",
    6: "The specified object does not exist.",
    10: "The named Stack already exists.",
    12: "The named Job already exists.",
}


def fault(r: httpx.Response, code: int) -> None:
    """Kragle's error: HTTP 500, ``{"code", "msg"}``, the documented message first."""
    assert r.status_code == 500, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"code", "msg"}, body
    assert body["code"] == code, body
    assert body["msg"].startswith(FAULT_MSG[code]), body


async def stack(client: httpx.AsyncClient, who: Account, name: str = "web") -> int:
    r = await client.post(
        f"{BASE}/stacks",
        json={"name": name, "command": "uptime", "nodes": ["web1"]},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


async def schedule(client: httpx.AsyncClient, who: Account, **body: Any) -> int:
    r = await client.post(
        f"{BASE}/schedules", json=body or {"config": {"period": 3600}}, headers=who.headers
    )
    assert r.status_code == 200, r.text
    return int(r.json()["id"])


async def new_job(client: httpx.AsyncClient, who: Account, **body: Any) -> int:
    r = await client.post(f"{BASE}/jobs", json=body, headers=who.headers)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id"}
    return int(r.json()["id"])


# -- jobs, as the seed documents them


async def test_post_jobs_returns_the_new_id(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    r = await client.post(
        f"{BASE}/jobs", json={"schedule_id": k, "stack_id": s}, headers=admin.headers
    )
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["id"] and isinstance(body["id"], int)
    # Defaults: no name, not enabled.
    r = await client.get(f"{BASE}/jobs/byid/{body['id']}", headers=admin.headers)
    assert r.json() == {"id": body["id"], "name": None, "stack": s, "schedule": k, "do_run": False}


async def test_get_jobs_is_paged_by_ten(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    ids = [
        await new_job(client, admin, schedule_id=k, stack_id=s, name=f"job{i}", enabled=i % 2 == 0)
        for i in range(12)
    ]
    r = await client.get(f"{BASE}/jobs", headers=admin.headers)
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["count", "pagesize", "page", "jobs"]
    assert (body["count"], body["pagesize"], body["page"]) == (12, 10, 1)
    assert [j["id"] for j in body["jobs"]] == ids[:10]
    assert body["jobs"][0] == {
        "id": ids[0],
        "name": "job0",
        "stack": s,
        "schedule": k,
        "do_run": True,
    }
    assert body["jobs"][1]["do_run"] is False
    r = await client.get(f"{BASE}/jobs", params={"page": 2}, headers=admin.headers)
    assert (r.json()["page"], [j["id"] for j in r.json()["jobs"]]) == (2, ids[10:])
    r = await client.get(f"{BASE}/jobs", params={"page": 3}, headers=admin.headers)
    assert r.json()["jobs"] == [] and r.json()["count"] == 12
    for bad in ("two", "0", "-1", "1.5"):
        fault(await client.get(f"{BASE}/jobs", params={"page": bad}, headers=admin.headers), 1)


async def test_get_job_by_id_and_by_name(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    job_id = await new_job(client, admin, schedule_id=k, stack_id=s, name="nightly", enabled=True)
    expected = {"id": job_id, "name": "nightly", "stack": s, "schedule": k, "do_run": True}
    r = await client.get(f"{BASE}/jobs/byid/{job_id}", headers=admin.headers)
    assert r.status_code == 200 and r.json() == expected
    assert list(r.json()) == ["id", "name", "stack", "schedule", "do_run"]
    r = await client.get(f"{BASE}/jobs/byname/nightly", headers=admin.headers)
    assert r.json() == expected
    fault(await client.get(f"{BASE}/jobs/byname/daily", headers=admin.headers), 6)
    fault(await client.get(f"{BASE}/jobs/byid/{job_id + 100}", headers=admin.headers), 6)
    # Ids in the wrong form: the object does not exist (code 6), never a crash.
    for bad in ("abc", "1e3", "-1", "99999999999999999999", "%C2%B2"):
        fault(await client.get(f"{BASE}/jobs/byid/{bad}", headers=admin.headers), 6)


async def test_put_job_leaves_what_is_not_sent(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    other_stack = await stack(client, admin, "db")
    job_id = await new_job(client, admin, schedule_id=k, stack_id=s, name="a")
    r = await client.put(f"{BASE}/jobs/{job_id}", json={"enabled": True}, headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert list(body) == ["owner", "name", "stack", "schedule", "do_run", "do_del"]
    assert body == {
        "owner": admin.user_id,
        "name": "a",
        "stack": s,
        "schedule": k,
        "do_run": True,
        "do_del": False,
    }
    r = await client.put(
        f"{BASE}/jobs/{job_id}", json={"stack_id": other_stack, "name": "b"}, headers=admin.headers
    )
    assert r.json() == {
        "owner": admin.user_id,
        "name": "b",
        "stack": other_stack,
        "schedule": k,
        "do_run": True,
        "do_del": False,
    }
    r = await client.put(f"{BASE}/jobs/{job_id}", json={}, headers=admin.headers)
    assert r.json()["name"] == "b" and r.json()["do_run"] is True


async def test_delete_job_now_or_queued(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    idle = await new_job(client, admin, schedule_id=k, stack_id=s)
    r = await client.delete(f"{BASE}/jobs/{idle}", headers=admin.headers)
    assert r.status_code == 200 and r.json() == {"deleted": idle}
    fault(await client.get(f"{BASE}/jobs/byid/{idle}", headers=admin.headers), 6)
    # Active and queued for another run: deleted at its next run time instead of running.
    active = await new_job(client, admin, schedule_id=k, stack_id=s, enabled=True)
    r = await client.delete(f"{BASE}/jobs/{active}", headers=admin.headers)
    assert r.json() == {"queued_for_deletion": active}
    r = await client.get(f"{BASE}/jobs/byid/{active}", headers=admin.headers)
    assert r.status_code == 200
    # Queued: it cannot be changed any more.
    fault(await client.put(f"{BASE}/jobs/{active}", json={"name": "x"}, headers=admin.headers), 4)
    fault(await client.delete(f"{BASE}/jobs/nope", headers=admin.headers), 6)


async def test_queued_job_goes_at_its_next_run(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    s = await stack(client, admin)
    k = await schedule(client, admin, config={"period": 60})
    active = await new_job(client, admin, schedule_id=k, stack_id=s, enabled=True)
    r = await client.delete(f"{BASE}/jobs/{active}", headers=admin.headers)
    assert r.json() == {"queued_for_deletion": active}
    report = await triggers.fire_due(svc, svc.clock.now() + dt.timedelta(seconds=61))
    assert report.deleted == 1 and report.fired == []
    fault(await client.get(f"{BASE}/jobs/byid/{active}", headers=admin.headers), 6)


async def test_an_enabled_job_runs_its_stack(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    s = await stack(client, admin)
    k = await schedule(client, admin, config={"period": 60})
    await new_job(client, admin, schedule_id=k, stack_id=s, name="every-minute", enabled=True)
    report = await triggers.fire_due(svc, svc.clock.now() + dt.timedelta(seconds=61))
    assert len(report.fired) == 1
    job_id = report.fired[0][2]
    r = await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
    assert r.json()["command"] == "uptime" and r.json()["nodes"] == ["web1"]


async def test_job_payload_faults(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    h = admin.headers
    fault(await client.post(f"{BASE}/jobs", json={"stack_id": s}, headers=h), 4)
    fault(await client.post(f"{BASE}/jobs", json={"schedule_id": k}, headers=h), 4)
    fault(
        await client.post(
            f"{BASE}/jobs", json={"schedule_id": k, "stack_id": s, "colour": "red"}, headers=h
        ),
        4,
    )
    fault(await client.post(f"{BASE}/jobs", json={"schedule_id": "k", "stack_id": s}, headers=h), 4)
    fault(
        await client.post(
            f"{BASE}/jobs", json={"schedule_id": k, "stack_id": s, "enabled": "yes"}, headers=h
        ),
        4,
    )
    fault(await client.post(f"{BASE}/jobs", content=b"{not json", headers=h), 2)
    fault(await client.post(f"{BASE}/jobs", content=b"[1, 2]", headers=h), 2)
    fault(
        await client.post(f"{BASE}/jobs", json={"schedule_id": k + 50, "stack_id": s}, headers=h),
        6,
    )
    await new_job(client, admin, schedule_id=k, stack_id=s, name="dup")
    fault(
        await client.post(
            f"{BASE}/jobs", json={"schedule_id": k, "stack_id": s, "name": "dup"}, headers=h
        ),
        12,
    )
    other = await new_job(client, admin, schedule_id=k, stack_id=s, name="other")
    fault(await client.put(f"{BASE}/jobs/{other}", json={"name": "dup"}, headers=h), 12)


# -- log-in, inline auth, tokens


async def test_authenticate_sets_a_session_cookie(
    client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.post(f"{BASE}/authenticate", json={"email": admin.email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json() == {"code": 0, "user_id": admin.user_id}
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("kragle_session=")
    assert "HttpOnly" in cookie and f"Path={BASE}" in cookie
    # The client keeps the cookie: later calls are authenticated by it alone.
    r = await client.get(f"{BASE}/jobs")
    assert r.status_code == 200 and r.json()["count"] == 0
    s = await stack(client, admin)
    r = await client.post(
        f"{BASE}/jobs", json={"schedule_id": await schedule(client, admin), "stack_id": s}
    )
    assert r.status_code == 200
    client.cookies.clear()
    fault(await client.get(f"{BASE}/jobs"), 3)
    # A forged cookie is no session.
    client.cookies.set("kragle_session", "e30.forged", path=BASE)
    fault(await client.get(f"{BASE}/jobs"), 3)


async def test_authenticate_by_username_and_failures(
    client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.post(f"{BASE}/login", json={"username": admin.email, "password": PASSWORD})
    assert r.status_code == 200
    client.cookies.clear()
    fault(
        await client.post(f"{BASE}/authenticate", json={"email": admin.email, "password": "x"}), 3
    )
    fault(
        await client.post(f"{BASE}/authenticate", json={"email": "nobody@x.io", "password": "x"}), 3
    )
    fault(await client.post(f"{BASE}/authenticate", json={"password": PASSWORD}), 3)
    fault(await client.post(f"{BASE}/authenticate", content=b"nope"), 2)


async def test_inline_auth(client: httpx.AsyncClient, admin: Account) -> None:
    s, k = await stack(client, admin), await schedule(client, admin)
    r = await client.post(
        f"{BASE}/jobs",
        json={
            "auth": {"username": admin.email, "password": PASSWORD},
            "payload": {"schedule_id": k, "stack_id": s, "name": "inline"},
        },
    )
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    r = await client.put(
        f"{BASE}/jobs/{job_id}",
        json={"auth": {"email": admin.email, "password": PASSWORD}, "payload": {"enabled": True}},
    )
    assert r.json()["do_run"] is True and r.json()["name"] == "inline"
    fault(
        await client.post(
            f"{BASE}/jobs",
            json={"auth": {"email": admin.email, "password": "wrong"}, "payload": {}},
        ),
        3,
    )


async def test_tokens_and_roles(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    viewer = await factory.account(admin.org, Role.VIEWER)
    s, k = await stack(client, admin), await schedule(client, admin)
    # A jobyard token in any accepted form.
    r = await client.get(f"{BASE}/jobs", params={"access_token": admin.token})
    assert r.status_code == 200
    r = await client.get(f"{BASE}/jobs", headers={"Authorization": f"Token {viewer.token}"})
    assert r.status_code == 200
    fault(
        await client.post(
            f"{BASE}/jobs", json={"schedule_id": k, "stack_id": s}, headers=viewer.headers
        ),
        3,
    )
    fault(await client.get(f"{BASE}/jobs", headers={"Authorization": "Bearer nope"}), 3)
    # Objects of another organization do not exist.
    stranger = await factory.account(await factory.org(), Role.ADMIN)
    fault(await client.get(f"{BASE}/stacks/byid/{s}", headers=stranger.headers), 6)


# -- schedules and stacks


async def test_schedules(client: httpx.AsyncClient, admin: Account) -> None:
    h = admin.headers
    hourly = await schedule(client, admin, name="hourly", config={"period": 3600})
    r = await client.get(f"{BASE}/schedules/byid/{hourly}", headers=h)
    assert r.json() == {"id": hourly, "name": "hourly", "once": False, "config": {"period": 3600}}
    at = int(dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp())
    once = await schedule(client, admin, config={"timestamp": at}, once=True)
    r = await client.get(f"{BASE}/schedules/byid/{once}", headers=h)
    assert r.json() == {"id": once, "name": None, "once": True, "config": {"timestamp": at}}
    r = await client.get(f"{BASE}/schedules", headers=h)
    body = r.json()
    assert list(body) == ["count", "pagesize", "page", "schedules"]
    assert (body["count"], body["pagesize"], body["page"]) == (2, 10, 1)
    assert [s["id"] for s in body["schedules"]] == [hourly, once]
    r = await client.put(f"{BASE}/schedules/{hourly}", json={"config": {"period": 60}}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json() == {"id": hourly, "name": "hourly", "once": False, "config": {"period": 60}}
    r = await client.put(
        f"{BASE}/schedules/{hourly}", json={"once": True, "config": {"timestamp": at}}, headers=h
    )
    assert r.json()["once"] is True and r.json()["config"] == {"timestamp": at}
    r = await client.put(f"{BASE}/schedules/{hourly}", json={"name": "renamed"}, headers=h)
    assert r.json()["name"] == "renamed" and r.json()["once"] is True
    for bad in (
        {},
        {"config": {"period": 0}},
        {"config": {"period": "1h"}},
        {"config": {"timestamp": at}},
        {"config": {"period": 60}, "once": True},
        {"config": {"colour": 1}},
        {"config": {"period": 60}, "extra": 1},
    ):
        fault(await client.post(f"{BASE}/schedules", json=bad, headers=h), 4)
    fault(await client.get(f"{BASE}/schedules/byid/x", headers=h), 6)


async def test_stacks(client: httpx.AsyncClient, admin: Account) -> None:
    h = admin.headers
    k = await schedule(client, admin)
    r = await client.post(
        f"{BASE}/blockstacks",
        json={
            "name": "Everything is Awesome",
            "command": "./deploy",
            "target": {"tags": ["web"]},
            "env": {"STAGE": "prod"},
            "schedule_id": k,
            "enabled": True,
        },
        headers=h,
    )
    assert r.status_code == 200, r.text
    stack_id = r.json()["id"]
    assert list(r.json()) == ["id"]
    r = await client.get(f"{BASE}/blockstacks/byid/{stack_id}", headers=h)
    found = r.json()
    assert found["id"] == stack_id and found["owner"] == admin.user_id
    assert found["name"] == "Everything is Awesome"
    assert found["webhook"] is None and found["blocks"] == []
    # The initial job the schedule_id asked for.
    assert len(found["jobs"]) == 1
    assert found["jobs"][0]["do_run"] is True
    assert found["jobs"][0]["schedule"] == {"period": 3600}
    assert found["command"] == "./deploy" and found["target"] == {"tags": ["web"]}
    r = await client.get(f"{BASE}/stacks/byname/Everything is Awesome", headers=h)
    assert r.json()["id"] == stack_id
    r = await client.get(f"{BASE}/stacks", headers=h)
    assert (r.json()["count"], r.json()["pagesize"], r.json()["page"]) == (1, 10, 1)
    assert r.json()["stacks"][0]["id"] == stack_id
    fault(
        await client.post(
            f"{BASE}/stacks",
            json={"name": "Everything is Awesome", "command": "x", "nodes": ["a"]},
            headers=h,
        ),
        10,
    )
    fault(await client.post(f"{BASE}/stacks", json={"name": "n", "command": "x"}, headers=h), 4)
    fault(await client.post(f"{BASE}/stacks", json={"command": "x", "nodes": ["a"]}, headers=h), 4)
    fault(await client.get(f"{BASE}/stacks/byname/none", headers=h), 6)


@pytest.mark.parametrize("path", ["/jobs", "/schedules", "/stacks", "/blockstacks"])
async def test_every_list_needs_a_login(client: httpx.AsyncClient, path: str) -> None:
    fault(await client.get(BASE + path), 3)
