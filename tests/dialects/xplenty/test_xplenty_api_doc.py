"""What the Xplenty API v2 documentation says and the seed left out: every status word as a
list filter returning exactly that status, the Link header of lists, a stopped job's time
stamps, nodes required to create a cluster."""

from __future__ import annotations

import httpx

from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account
from tests.dialects.conftest import add_node, drive
from tests.dialects.xplenty.test_xplenty_seed import TIME, api, basic, cluster, job

S = NodeRunStatus


async def _ids(client: httpx.AsyncClient, who: Account, **query: str) -> list[int]:
    r = await client.get(f"{api(who)}/jobs", params=query, headers=basic(who))
    assert r.status_code == 200, r.text
    return [x["id"] for x in r.json()]


async def test_a_status_filter_returns_exactly_that_status(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    ok, bad = await job(client, admin, c["id"]), await job(client, admin, c["id"])
    for j, end in ((ok, S.SUCCEEDED), (bad, S.FAILED)):
        await drive(svc, j["id"], job=[JobStatus.VOTING], runs={"n1": [S.READY]})
        await drive(svc, j["id"], job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING, end]})
        await drive(svc, j["id"], job=[JobStatus.COMPLETE])
    assert await _ids(client, admin, status="completed") == [ok["id"]]
    assert await _ids(client, admin, status="failed") == [bad["id"]]
    # Every word of the job resource is a filter, answered with jobs of that word only.
    for word in (
        "idle",
        "pending",
        "queued",
        "running",
        "pending_stoppage",
        "stopping",
        "stopped",
    ):
        assert await _ids(client, admin, status=word) == [], word
    r = await client.get(f"{api(admin)}/jobs", params={"status": "done"}, headers=basic(admin))
    assert r.status_code == 422 and "queued" in r.json()["message"]


async def test_lists_carry_the_link_header(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c0")
    for n in range(3):
        await cluster(client, admin, name=f"c{n}")
    r = await client.get(
        f"{api(admin)}/clusters", params={"offset": 1, "limit": 1}, headers=basic(admin)
    )
    assert r.status_code == 200 and len(r.json()) == 1
    link = r.headers["link"]
    assert 'offset=2&limit=1>; rel="next"' in link and 'offset=0&limit=1>; rel="prev"' in link
    r = await client.get(
        f"{api(admin)}/clusters", params={"offset": 2, "limit": 1}, headers=basic(admin)
    )
    assert 'rel="next"' not in r.headers["link"] and 'rel="prev"' in r.headers["link"]
    r = await client.get(f"{api(admin)}/clusters", headers=basic(admin))
    assert "link" not in r.headers  # everything on one page
    (c,) = [x for x in r.json() if x["name"] == "c0"]
    await job(client, admin, c["id"])
    await job(client, admin, c["id"])
    r = await client.get(f"{api(admin)}/jobs", params={"limit": 1}, headers=basic(admin))
    assert 'rel="next"' in r.headers["link"]


async def test_a_stopped_job_has_its_time_stamps(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1", cluster="c1")
    c = await cluster(client, admin)
    j = await job(client, admin, c["id"])
    r = await client.delete(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))
    assert r.status_code == 200 and r.json()["status"] == "pending_stoppage"
    stopped = (await client.get(f"{api(admin)}/jobs/{j['id']}", headers=basic(admin))).json()
    assert stopped["status"] == "stopped"
    # completed_at: "the date and time at which the job completed (stopped, failed or completed)"
    assert TIME.match(stopped["completed_at"]) and stopped["failed_at"] is None
    assert TIME.match(stopped["updated_at"])


async def test_creating_a_cluster_needs_nodes(client: httpx.AsyncClient, admin: Account) -> None:
    for body in ({"name": "no-nodes"}, {"cluster": {"name": "x"}}, {"name": "n", "nodes": None}):
        r = await client.post(f"{api(admin)}/clusters", json=body, headers=basic(admin))
        assert r.status_code == 422 and "nodes" in r.json()["message"], (body, r.text)
    r = await client.get(f"{api(admin)}/clusters", headers=basic(admin))
    assert r.json() == []
