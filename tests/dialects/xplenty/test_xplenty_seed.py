"""Xplenty (seed 000 and NOTES): the documented requests replayed, field by field."""

from __future__ import annotations

import base64
import re
from typing import Any

import httpx

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service import outbox
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import add_node, drive

ACCEPT = {"Accept": "application/vnd.xplenty+json"}
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
S = NodeRunStatus


def basic(account: Account, colon: bool = True) -> dict[str, str]:
    """curl's ``-u KEY:`` (with colon) or the Python client's ``base64(KEY)`` (without)."""
    raw = f"{account.token}:" if colon else account.token
    return {**ACCEPT, "Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


def api(account: Account) -> str:
    return f"/compat/xplenty/{account.org}/api"


async def cluster(client: httpx.AsyncClient, who: Account, **fields: Any) -> dict[str, Any]:
    body = {"nodes": 1, "type": "production", "name": "c1", "description": "", **fields}
    r = await client.post(f"{api(who)}/clusters", json=body, headers=basic(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def job(client: httpx.AsyncClient, who: Account, cluster_id: int) -> dict[str, Any]:
    body = {"cluster_id": cluster_id, "command": "echo $X", "variables": {"X": "1"}}
    r = await client.post(f"{api(who)}/jobs", json=body, headers=basic(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_watch_cluster_as_documented(client: httpx.AsyncClient, admin: Account) -> None:
    c = await cluster(client, admin)
    url = f"{api(admin)}/clusters/{c['id']}/watchers"
    r = await client.post(url, headers=basic(admin))
    assert r.status_code in (200, 201)
    body = r.json()
    assert list(body) == ["created_at", "cluster_url"]
    assert TIME.match(body["created_at"])
    assert body["cluster_url"] == f"http://testserver{api(admin)}/clusters/{c['id']}"
    r = await client.get(url, headers=basic(admin))
    assert r.status_code == 200
    watchers = r.json()
    assert isinstance(watchers, list) and watchers
    assert all(set(w) == {"id", "display_name"} for w in watchers)
    assert admin.user_id in [w["id"] for w in watchers]
    r = await client.delete(url, headers=basic(admin))
    assert r.status_code == 204 and r.content == b""
    r = await client.get(url, headers=basic(admin))
    assert admin.user_id not in [w["id"] for w in r.json()]


async def test_watch_job_as_documented(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    url = f"{api(admin)}/jobs/{j['id']}/watchers"
    r = await client.post(url, headers=basic(admin, colon=False))
    assert r.status_code in (200, 201)
    assert list(r.json()) == ["created_at", "job_url"]
    assert r.json()["job_url"] == f"http://testserver{api(admin)}/jobs/{j['id']}"
    r = await client.get(url, headers=basic(admin))
    assert [w["id"] for w in r.json()] == [admin.user_id]
    r = await client.delete(url, headers=basic(admin))
    assert r.status_code == 204
    r = await client.get(url, headers=basic(admin))
    assert r.json() == []


async def test_clusters_lifecycle(client: httpx.AsyncClient, admin: Account) -> None:
    c = await cluster(client, admin, nodes=2, name="etl", terminate_on_idle=True, time_to_idle=600)
    assert c["status"] == "pending"
    assert set(c) >= {
        "id",
        "name",
        "description",
        "status",
        "owner_id",
        "nodes",
        "type",
        "created_at",
        "updated_at",
        "available_since",
        "terminated_at",
        "running_jobs_count",
        "terminate_on_idle",
        "time_to_idle",
        "url",
        "creator",
    }
    assert isinstance(c["id"], int) and c["nodes"] == 2 and c["type"] == "production"
    assert c["terminate_on_idle"] is True and c["time_to_idle"] == 600
    assert c["owner_id"] == admin.user_id and c["creator"]["type"] == "User"
    assert c["running_jobs_count"] == 0 and c["available_since"] is None
    r = await client.get(f"{api(admin)}/clusters/{c['id']}", headers=basic(admin))
    assert r.json()["name"] == "etl"
    r = await client.put(
        f"{api(admin)}/clusters/{c['id']}", json={"description": "nightly"}, headers=basic(admin)
    )
    assert r.status_code == 200 and r.json()["description"] == "nightly"
    r = await client.delete(f"{api(admin)}/clusters/{c['id']}", headers=basic(admin))
    assert r.status_code == 200 and r.json()["status"] == "pending_terminate"
    r = await client.delete(f"{api(admin)}/clusters/{c['id']}", headers=basic(admin))
    assert r.status_code == 422 and list(r.json()) == ["message"]


async def test_cluster_list_filters(client: httpx.AsyncClient, admin: Account) -> None:
    a = await cluster(client, admin, name="a")
    b = await cluster(client, admin, name="b")
    c = await cluster(client, admin, name="c")
    await client.delete(f"{api(admin)}/clusters/{b['id']}", headers=basic(admin))
    r = await client.get(f"{api(admin)}/clusters", headers=basic(admin))
    assert [x["id"] for x in r.json()] == [c["id"], b["id"], a["id"]]
    r = await client.get(
        f"{api(admin)}/clusters",
        params={"status": "pending", "direction": "asc"},
        headers=basic(admin),
    )
    assert [x["id"] for x in r.json()] == [a["id"], c["id"]]
    r = await client.get(
        f"{api(admin)}/clusters", params={"offset": 1, "limit": 1}, headers=basic(admin)
    )
    assert [x["id"] for x in r.json()] == [b["id"]]
    r = await client.get(f"{api(admin)}/clusters", params={"sort": "updated"}, headers=basic(admin))
    assert r.json()[0]["id"] == b["id"]
    r = await client.get(f"{api(admin)}/clusters", params={"limit": 101}, headers=basic(admin))
    assert r.status_code == 422 and "limit" in r.json()["message"]


async def test_form_and_query_parameters(client: httpx.AsyncClient, admin: Account) -> None:
    # Rails-style form fields, as curl -d 'cluster[nodes]=2' sends them.
    r = await client.post(
        f"{api(admin)}/clusters",
        data={"cluster[nodes]": "2", "cluster[name]": "formed", "cluster[terminate_on_idle]": "1"},
        headers=basic(admin),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["nodes"], r.json()["name"], r.json()["terminate_on_idle"]) == (
        2,
        "formed",
        True,
    )
    # POST parameters in the query string, as the Ruby client sends them.
    r = await client.post(
        f"{api(admin)}/clusters",
        params={"cluster[nodes]": "3", "cluster[name]": "queried"},
        headers=basic(admin),
    )
    assert r.status_code == 201, r.text
    assert (r.json()["nodes"], r.json()["name"]) == (3, "queried")


async def test_jobs(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    assert j["status"] == "pending" and j["cluster_id"] == c["id"]
    assert set(j) == {
        "id",
        "status",
        "variables",
        "dynamic_variables",
        "owner_id",
        "progress",
        "outputs_count",
        "outputs",
        "started_at",
        "created_at",
        "failed_at",
        "completed_at",
        "updated_at",
        "cluster_id",
        "package_id",
        "errors",
        "runtime_in_seconds",
        "url",
        "html_url",
        "creator",
        "log_url",
    }
    assert j["variables"] == {"X": "1"} and j["progress"] == 0.0
    assert j["url"] == f"http://testserver{api(admin)}/jobs/{j['id']}"
    assert j["log_url"] == j["url"] + "/log"
    # Form-encoded variables.
    r = await client.post(
        f"{api(admin)}/jobs",
        data={"job[cluster_id]": str(c["id"]), "job[command]": "env", "job[variables][Y]": "v"},
        headers=basic(admin),
    )
    assert r.status_code == 201, r.text
    second = r.json()
    assert second["variables"] == {"Y": "v"}
    await drive(svc, j["id"], job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(
        svc,
        j["id"],
        job=[JobStatus.RUNNING],
        runs={"n1": [S.RUNNING, S.SUCCEEDED]},
        output={"n1": ("1\n", "")},
    )
    await drive(svc, j["id"], job=[JobStatus.COMPLETE])
    r = await client.get(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))
    done = r.json()
    assert done["status"] == "completed" and done["progress"] == 1.0
    assert TIME.match(done["completed_at"]) and done["failed_at"] is None
    r = await client.get(f"{api(admin)}/jobs/{j['id']}/variables", headers=basic(admin))
    assert r.json() == {"X": "1"}  # the documented flat map
    r = await client.get(f"{api(admin)}/jobs/{j['id']}/log", headers=basic(admin))
    assert set(r.json()) == {"body", "url"} and "1\n" in r.json()["body"]
    # DELETE stops: the answer says the stop is pending; the job then reads stopped.
    r = await client.delete(f"{api(admin)}/jobs/{second['id']}", headers=basic(admin))
    assert r.status_code == 200 and r.json()["status"] == "pending_stoppage"
    r = await client.get(f"{api(admin)}/jobs/{second['id']}", headers=basic(admin))
    assert r.json()["status"] == "stopped"
    r = await client.get(f"{api(admin)}/jobs", headers=basic(admin))
    assert [x["id"] for x in r.json()] == [second["id"], j["id"]]
    r = await client.get(f"{api(admin)}/jobs", params={"status": "completed"}, headers=basic(admin))
    assert [x["id"] for x in r.json()] == [j["id"]]
    r = await client.get(f"{api(admin)}/jobs", params={"status": "stopped"}, headers=basic(admin))
    assert [x["id"] for x in r.json()] == [second["id"]]
    r = await client.get(
        f"{api(admin)}/jobs", params={"sort": "created", "direction": "asc"}, headers=basic(admin)
    )
    assert [x["id"] for x in r.json()] == [j["id"], second["id"]]
    r = await client.get(f"{api(admin)}/jobs", params={"status": "bogus"}, headers=basic(admin))
    assert r.status_code == 422


async def test_failed_job_reads_failed(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    await drive(svc, j["id"], job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, j["id"], job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING, S.FAILED]})
    await drive(svc, j["id"], job=[JobStatus.COMPLETE])
    r = await client.get(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))
    assert r.json()["status"] == "failed"
    assert TIME.match(r.json()["failed_at"]) and r.json()["errors"]


async def test_notifications_and_rate_limit(client: httpx.AsyncClient, admin: Account) -> None:
    r = await client.get(f"{api(admin)}/user/notifications", headers=basic(admin))
    assert r.status_code == 200 and isinstance(r.json(), list)
    assert int(r.headers["x-ratelimit-limit"]) > 0
    r = await client.get(f"{api(admin)}/rate_limit_status", headers=basic(admin))
    limits = r.json()["limits"]
    assert set(limits) == {"limit", "remaining"}
    assert limits["remaining"] == int(r.headers["x-ratelimit-remaining"])
    # Asking for the rate limit costs nothing; any other call costs one.
    r2 = await client.get(f"{api(admin)}/rate_limit_status", headers=basic(admin))
    assert r2.json()["limits"]["remaining"] == limits["remaining"]
    await client.get(f"{api(admin)}/user/notifications", headers=basic(admin))
    r3 = await client.get(f"{api(admin)}/rate_limit_status", headers=basic(admin))
    assert r3.json()["limits"]["remaining"] == limits["remaining"] - 1


async def test_in_app_notification_of_a_watched_job(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    await drive(svc, j["id"], job=[JobStatus.ABORTED], runs={"n1": [S.ABORTED]})
    await outbox.deliver_in_app(svc)  # what the relay loop does
    r = await client.get(f"{api(admin)}/user/notifications", headers=basic(admin))
    notes = r.json()
    assert notes, "the creator watches the job and hears that it stopped"
    assert set(notes[0]) == {"id", "title", "message", "last_read_at", "created_at", "updated_at"}


async def test_python_client_headers(client: httpx.AsyncClient, admin: Account) -> None:
    """What PyPI ``xplenty`` 2.0 sends: 'vnd.xplenty+json version=2' and Basic without colon."""
    headers = {
        "Accept": "application/vnd.xplenty+json version=2",
        "Authorization": "Basic " + base64.b64encode(admin.token.encode()).decode(),
    }
    r = await client.get(f"{api(admin)}/clusters?offset=0&limit=20", headers=headers)
    assert r.status_code == 200 and r.json() == []
    headers["Accept"] = "application/vnd.xplenty+json; version=2"
    r = await client.get(f"{api(admin)}/rate_limit_status", headers=headers)
    assert r.status_code == 200


async def test_errors_in_xplenty_shape(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    for path in [
        "jobs/abc",
        "jobs/0",
        "jobs/-1",
        "jobs/99999999999999999999",
        "clusters/x1",
        "jobs/1.5/watchers",
        "clusters/999",
    ]:
        r = await client.get(f"{api(admin)}/{path}", headers=basic(admin))
        assert r.status_code == 404, path
        assert list(r.json()) == ["message"]
    r = await client.get(f"{api(admin)}/clusters")
    assert r.status_code == 401 and list(r.json()) == ["message"]
    other = await factory.org()
    r = await client.get(f"/compat/xplenty/{other}/api/clusters", headers=basic(admin))
    assert r.status_code == 404
    r = await client.post(f"{api(admin)}/clusters", json={"nodes": 0}, headers=basic(admin))
    assert r.status_code == 422 and "nodes" in r.json()["message"]
    r = await client.post(
        f"{api(admin)}/clusters",
        content=b"{oops",
        headers={**basic(admin), "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    r = await client.post(f"{api(admin)}/jobs", json={}, headers=basic(admin))
    assert r.status_code == 422 and "cluster_id" in r.json()["message"]
