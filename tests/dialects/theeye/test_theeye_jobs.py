"""TheEye (seed 004): jobs read, listed, canceled; the lifecycle words; error shapes; ids."""

from __future__ import annotations

import re

import httpx
import pytest

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import drive

HEX24 = re.compile(r"^[0-9a-f]{24}$")
JS_DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LIFECYCLES = {
    "ready",
    "assigned",
    "onhold",
    "syncing",
    "locked",
    "finished",
    "terminated",
    "canceled",
    "expired",
    "completed",
}


def v1(account: Account) -> str:
    return f"/compat/theeye/{account.org}"


def token(account: Account) -> dict[str, str]:
    return {"access_token": account.token}


async def native_job(
    client: httpx.AsyncClient, account: Account, nodes: list[str] | None = None
) -> int:
    r = await client.post(
        "/api/v1/jobs",
        json={"command": "echo hi", "nodes": nodes or ["web1"]},
        headers=account.headers,
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def hex24(native: int) -> str:
    return f"{native:024x}"


async def test_get_job_by_id_as_documented(client: httpx.AsyncClient, admin: Account) -> None:
    # curl -sS --request GET "https://supervisor.theeye.io/${customer}/job/${id}?access_token=${token}"
    native = await native_job(client, admin)
    r = await client.get(f"{v1(admin)}/job/{hex24(native)}", params=token(admin))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    job = r.json()
    assert job["id"] == hex24(native)
    assert HEX24.match(job["id"])
    assert job["_type"] == "ScriptJob"
    assert job["type"] == "script"
    assert job["lifecycle"] == "ready"
    assert job["state"] == "in_progress"
    assert JS_DATE.match(job["creation_date"]) and JS_DATE.match(job["last_update"])
    assert job["customer_name"] == admin.org
    assert HEX24.match(job["customer_id"])
    assert job["user_id"] == hex24(admin.user_id)
    assert job["task_id"] is None and job["task"] is None
    assert job["task_arguments_values"] == []
    assert job["output"] == [] and job["result"] == {}
    assert job["trigger_name"] is None
    # The seed also sends the token as a Bearer header.
    r = await client.get(f"{v1(admin)}/job/{hex24(native)}", headers=admin.headers)
    assert r.json()["id"] == hex24(native)


async def test_get_all_jobs_as_documented(client: httpx.AsyncClient, admin: Account) -> None:
    # curl ".../${customer}/job?access_token=...&where[task_id]=${task_id}
    #        &include[state]=1&include[creation_date]=1&include[lifecycle]=1"
    first = await native_job(client, admin)
    second = await native_job(client, admin)
    r = await client.get(
        f"{v1(admin)}/job",
        params={
            **token(admin),
            "include[state]": "1",
            "include[creation_date]": "1",
            "include[lifecycle]": "1",
        },
    )
    assert r.status_code == 200, r.text
    jobs = r.json()
    assert [j["id"] for j in jobs] == [hex24(first), hex24(second)]
    for j in jobs:
        assert set(j) == {"id", "state", "creation_date", "lifecycle"}
        assert j["lifecycle"] == "ready" and j["state"] == "in_progress"
    # where[task_id] of a job started from a bare command matches nothing.
    r = await client.get(
        f"{v1(admin)}/job", params={**token(admin), "where[task_id]": "0" * 23 + "1"}
    )
    assert r.json() == []


async def test_list_filters_sort_and_limit(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    ids = [await native_job(client, admin) for _ in range(3)]
    await drive(
        svc,
        ids[0],
        runs={"web1": [NodeRunStatus.READY, NodeRunStatus.RUNNING, NodeRunStatus.SUCCEEDED]},
        job=[JobStatus.VOTING, JobStatus.RUNNING, JobStatus.COMPLETE],
    )
    r = await client.get(
        f"{v1(admin)}/job", params={**token(admin), "where[lifecycle]": "finished"}
    )
    assert [j["id"] for j in r.json()] == [hex24(ids[0])]
    assert r.json()[0]["state"] == "success"
    assert r.json()[0]["trigger_name"] == "success"
    r = await client.get(
        f"{v1(admin)}/job", params={**token(admin), "sort[creation_date]": "-1", "limit": "2"}
    )
    assert [j["id"] for j in r.json()] == [hex24(ids[2]), hex24(ids[1])]
    r = await client.get(f"{v1(admin)}/job", params={**token(admin), "where[state]": "success"})
    assert len(r.json()) == 1
    r = await client.get(f"{v1(admin)}/job", params={**token(admin), "where[lifecycle]": "syncing"})
    assert r.json() == []
    r = await client.get(f"{v1(admin)}/job", params={**token(admin), "where[colour]": "red"})
    assert r.status_code == 400
    assert set(r.json()) == {"message", "code", "statusCode"}
    assert r.json()["statusCode"] == 400 and "task_id" in r.json()["message"]
    r = await client.get(f"{v1(admin)}/job", params={**token(admin), "limit": "x"})
    assert r.status_code == 400


async def test_v2_routes_take_the_customer_in_the_query(
    client: httpx.AsyncClient, admin: Account
) -> None:
    native = await native_job(client, admin)
    r = await client.get(
        f"/compat/theeye/job/{hex24(native)}", params={**token(admin), "customer": admin.org}
    )
    assert r.status_code == 200
    assert r.json()["id"] == hex24(native)
    r = await client.get(
        f"/compat/theeye/job/{hex24(native)}", params={**token(admin), "customer": "elsewhere"}
    )
    assert r.status_code == 404
    assert r.json()["code"] == "NotFound"


async def test_lifecycle_as_documented(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    # curl -sS --request GET ".../${customer}/job/${id}/lifecycle?access_token=${token}"
    native = await native_job(client, admin)
    url = f"{v1(admin)}/job/{hex24(native)}/lifecycle"
    r = await client.get(url, params=token(admin))
    assert r.status_code == 200
    assert r.json() == "ready"
    await drive(svc, native, job=[JobStatus.VOTING])
    assert (await client.get(url, params=token(admin))).json() == "ready"
    await drive(svc, native, runs={"web1": [NodeRunStatus.READY]}, job=[JobStatus.RUNNING])
    assert (await client.get(url, params=token(admin))).json() == "assigned"


@pytest.mark.parametrize(
    ("path", "runs", "lifecycle", "state"),
    [
        (
            [JobStatus.VOTING, JobStatus.QUORUM_FAILED],
            [NodeRunStatus.NACKED],
            "terminated",
            "error",
        ),
        (
            [JobStatus.VOTING, JobStatus.RUNNING, JobStatus.TIMED_OUT],
            [NodeRunStatus.READY, NodeRunStatus.RUNNING, NodeRunStatus.TIMED_OUT],
            "terminated",
            "timeout",
        ),
        ([JobStatus.ABORTED], [NodeRunStatus.ABORTED], "canceled", "canceled"),
        (
            [JobStatus.VOTING, JobStatus.RUNNING, JobStatus.ABORTED],
            [NodeRunStatus.READY, NodeRunStatus.ABORTED],
            "terminated",
            "canceled",
        ),
        (
            [JobStatus.VOTING, JobStatus.RUNNING, JobStatus.COMPLETE],
            [NodeRunStatus.READY, NodeRunStatus.RUNNING, NodeRunStatus.FAILED],
            "finished",
            "failure",
        ),
    ],
)
async def test_lifecycle_and_state_words(
    client: httpx.AsyncClient,
    admin: Account,
    svc: Services,
    path: list[JobStatus],
    runs: list[NodeRunStatus],
    lifecycle: str,
    state: str,
) -> None:
    native = await native_job(client, admin)
    await drive(svc, native, runs={"web1": runs}, job=path)
    job = (await client.get(f"{v1(admin)}/job/{hex24(native)}", params=token(admin))).json()
    assert (job["lifecycle"], job["state"]) == (lifecycle, state)
    assert job["lifecycle"] in LIFECYCLES


async def test_cancel_as_documented(client: httpx.AsyncClient, admin: Account) -> None:
    # curl -sS --request PUT ".../${customer}/job/${id}/cancel?access_token=${token}"
    native = await native_job(client, admin)
    url = f"{v1(admin)}/job/{hex24(native)}"
    r = await client.put(f"{url}/cancel", params=token(admin))
    assert r.status_code == 204
    assert r.content == b""
    job = (await client.get(url, params=token(admin))).json()
    assert (job["lifecycle"], job["state"]) == ("canceled", "canceled")
    # Native history agrees.
    r = await client.get(f"/api/v1/jobs/{native}", headers=admin.headers)
    assert r.json()["status"] == "aborted"
    # A finished job cannot be canceled: TheEye says 400.
    r = await client.put(f"{url}/cancel", params=token(admin))
    assert r.status_code == 400
    assert r.json() == {
        "message": 'cannot cancel job. current state lifecycle "canceled" does not allow '
        "the transition",
        "code": "BadRequest",
        "statusCode": 400,
    }


@pytest.mark.parametrize("bad", ["5eff3019f3707500121284a", "zzff3019f3707500121284a8", "42"])
async def test_malformed_ids_are_400(client: httpx.AsyncClient, admin: Account, bad: str) -> None:
    """The supervisor's param resolver: an id that is not a Mongo id answers 400
    ("job id is invalid"); a well-formed id of nothing answers 404."""
    for method, path in [
        ("GET", f"{v1(admin)}/job/{bad}"),
        ("GET", f"{v1(admin)}/job/{bad}/lifecycle"),
        ("PUT", f"{v1(admin)}/job/{bad}/cancel"),
        ("PUT", f"/compat/theeye/job/{bad}/approve"),
        ("PUT", f"/compat/theeye/job/{bad}/reject"),
        ("PUT", f"/compat/theeye/job/{bad}/input"),
        ("GET", f"/compat/theeye/job/{bad}"),
    ]:
        r = await client.request(method, path, params=token(admin))
        assert r.status_code == 400, (method, path, r.text)
        body = r.json()
        assert set(body) == {"message", "code", "statusCode"}
        assert body["code"] == "BadRequest" and body["statusCode"] == 400
        assert body["message"].startswith("job id is invalid")
    r = await client.get(f"{v1(admin)}/job/{'0' * 24}", params=token(admin))
    assert r.status_code == 404 and r.json()["code"] == "NotFound"


async def test_unknown_job_and_other_org_are_404(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    # The seed's own example id: well formed, but no such job here.
    r = await client.get(f"{v1(admin)}/job/5eff3019f3707500121284a8", params=token(admin))
    assert r.status_code == 404
    other = await factory.account(await factory.org(), Role.ADMIN)
    native = await native_job(client, other)
    r = await client.get(f"{v1(admin)}/job/{hex24(native)}", params=token(admin))
    assert r.status_code == 404
    r = await client.get(f"/compat/theeye/{other.org}/job", params=token(admin))
    assert r.status_code == 404


async def test_auth_errors_in_theeye_shape(client: httpx.AsyncClient, admin: Account) -> None:
    r = await client.get(f"{v1(admin)}/job")
    assert r.status_code == 401
    assert r.json()["code"] == "Unauthorized" and r.json()["statusCode"] == 401
    r = await client.get(f"{v1(admin)}/job", params={"access_token": "nope"})
    assert r.status_code == 401


async def test_roles(client: httpx.AsyncClient, admin: Account, factory: Factory) -> None:
    viewer = await factory.account(admin.org, Role.VIEWER)
    native = await native_job(client, admin)
    r = await client.get(f"{v1(admin)}/job/{hex24(native)}", params=token(viewer))
    assert r.status_code == 200
    # The lifecycle needs the user credential.
    r = await client.get(f"{v1(admin)}/job/{hex24(native)}/lifecycle", params=token(viewer))
    assert r.status_code == 403
    assert r.json()["code"] == "Forbidden"
    # Finishing a job is for agents only.
    r = await client.put(
        f"{v1(admin)}/job/{hex24(native)}", params=token(admin), json={"result": {}}
    )
    assert r.status_code == 403
