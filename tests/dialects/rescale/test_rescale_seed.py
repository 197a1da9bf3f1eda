"""Rescale (seed 002): the documented requests replayed, field by field."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from jobyard.domain.dialects import rescale
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import add_file, add_node, drive

API = "/compat/rescale/api"
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
WORDS = {
    "Pending",
    "Queued",
    "Waiting for Queue",
    "Started",
    "Validated",
    "Executing",
    "Completed",
    "Stopping",
}
S = NodeRunStatus


def token(account: Account) -> dict[str, str]:
    return {"Authorization": f"Token {account.token}"}


def job_body(
    command: str = "echo hi", slots: int = 1, name: str = "Untitled Job"
) -> dict[str, Any]:
    return {
        "name": name,
        "jobanalyses": [
            {
                "analysis": {"code": "user_included", "version": "0"},
                "command": command,
                "hardware": {
                    "coreType": "emerald",
                    "coresPerSlot": 1,
                    "slots": slots,
                    "walltime": 2,
                },
                "envVars": {"STAGE": "test"},
                "inputFiles": [],
            }
        ],
    }


async def create(
    client: httpx.AsyncClient, who: Account, body: dict[str, Any] | None = None, api: str = API
) -> dict[str, Any]:
    r = await client.post(f"{api}/jobs/", json=body or job_body(), headers=token(who))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("api", [API, f"{API}/v2"])
async def test_api_root_answers_a_valid_token(
    client: httpx.AsyncClient, admin: Account, api: str
) -> None:
    r = await client.get(f"{api}/", headers=token(admin))
    assert r.status_code == 200
    r = await client.get(f"{api}/", headers={"Authorization": "Token jy_wrong"})
    assert r.status_code == 401
    assert r.json() == {"detail": "unknown token"}
    assert r.headers["www-authenticate"] == "Token"


async def test_list_all_jobs_as_documented(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1")
    done = await create(client, admin)
    executing = await create(client, admin, job_body(name="LS-Dyna (Cloned)"))
    for job in (done, executing):
        r = await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
        assert r.status_code == 200
    first = rescale.parse_id(done["id"])
    second = rescale.parse_id(executing["id"])
    assert first and second
    await drive(svc, first, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, first, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING, S.SUCCEEDED]})
    await drive(svc, first, job=[JobStatus.COMPLETE])
    await add_file(svc, first, "n1", "out.txt", b"x" * 86)
    await drive(svc, second, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, second, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING]})

    r = await client.get(f"{API}/jobs/", headers=token(admin))
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"count", "previous", "results", "next"}
    assert page["count"] == 2 and page["previous"] is None and page["next"] is None
    by_id = {j["id"]: j for j in page["results"]}
    seed_keys = {
        "clusterStatusDisplay",
        "dateInserted",
        "name",
        "analysisNames",
        "storage",
        "jobStatus",
        "sharedWith",
        "isVisible",
        "owner",
        "id",
    }
    for job in page["results"]:
        assert set(job) == seed_keys
        assert DATE.match(job["dateInserted"])
        assert isinstance(job["analysisNames"], list) and isinstance(job["storage"], int)
        assert job["sharedWith"] == [] and job["isVisible"] is True
        assert job["owner"] == admin.email
        assert re.match(r"^[A-Za-z]+$", job["id"])
    # The seed's first sample: a completed job on a stopped cluster.
    assert by_id[done["id"]]["jobStatus"] == {
        "content": "Completed",
        "labelClass": "",
        "useLabel": False,
    }
    assert by_id[done["id"]]["clusterStatusDisplay"] == {
        "content": "Stopped",
        "labelClass": "",
        "useLabel": False,
    }
    assert by_id[done["id"]]["storage"] == 86
    assert by_id[done["id"]]["name"] == "Untitled Job"
    # ... and the second: an executing job on a started cluster.
    assert by_id[executing["id"]]["jobStatus"] == {
        "content": "Executing",
        "labelClass": "label-success",
        "useLabel": True,
    }
    assert by_id[executing["id"]]["clusterStatusDisplay"] == {
        "content": "Started",
        "labelClass": "label-success",
        "useLabel": True,
    }
    assert by_id[executing["id"]]["name"] == "LS-Dyna (Cloned)"
    # Pages: absolute next/previous links with page and page_size.
    r = await client.get(f"{API}/jobs/", params={"page_size": 1}, headers=token(admin))
    page = r.json()
    assert page["next"] == f"http://testserver{API}/jobs/?page=2&page_size=1"
    r = await client.get(page["next"], headers=token(admin))
    assert r.json()["previous"] == f"http://testserver{API}/jobs/?page=1&page_size=1"
    assert r.json()["next"] is None


async def test_create_saves_without_starting_then_submit(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    for name in ("a", "b", "c"):
        await add_node(svc, admin.org, name)
    job = await create(client, admin, job_body(command="make", slots=2))
    assert job["jobStatus"]["content"] == "Pending"
    assert job["jobanalyses"][0]["command"] == "make"
    assert job["jobanalyses"][0]["hardware"]["slots"] == 2
    native = rescale.parse_id(job["id"])
    r = await client.get(f"/api/v1/jobs/{native}", headers=admin.headers)
    assert r.json()["status"] == "draft"
    assert r.json()["target"] == {"count": 2}
    assert r.json()["run_timeout"] == 7200 and r.json()["env"] == {"STAGE": "test"}
    r = await client.post(f"{API}/v2/jobs/{job['id']}/submit/", headers=token(admin))
    assert r.status_code == 200
    r = await client.get(f"/api/v1/jobs/{native}", headers=admin.headers)
    assert r.json()["status"] == "new"
    assert r.json()["nodes"] == ["a", "b"]  # two available nodes picked
    r = await client.get(f"{API}/jobs/{job['id']}/statuses/", headers=token(admin))
    statuses = r.json()
    assert [s["status"] for s in statuses["results"]] == ["Queued", "Pending"]
    assert all(set(s) == {"status", "statusDate", "statusReason"} for s in statuses["results"])
    r = await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
    assert r.status_code == 400 and "non_field_errors" in r.json()


async def test_statuses_follow_the_native_history(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1")
    job = await create(client, admin)
    native = rescale.parse_id(job["id"])
    assert native
    await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
    await drive(svc, native, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, native, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING]})
    r = await client.post(f"{API}/jobs/{job['id']}/stop/", headers=token(admin))
    assert r.status_code == 202  # accepted: the job stops afterwards
    r = await client.get(f"{API}/jobs/{job['id']}/statuses", headers=token(admin))
    results = r.json()["results"]
    words = [s["status"] for s in results]
    assert words == [
        "Completed",
        "Stopping",
        "Executing",
        "Validated",
        "Started",
        "Queued",
        "Pending",
    ]
    assert set(words) <= WORDS
    assert results[1]["statusReason"] == "User Terminated"
    assert all(DATE.match(s["statusDate"]) for s in results)
    r = await client.get(
        f"{API}/jobs/{job['id']}/statuses/", params={"page_size": 2}, headers=token(admin)
    )
    assert r.json()["count"] == 7 and len(r.json()["results"]) == 2
    assert r.json()["next"].endswith("?page=2&page_size=2")
    r = await client.get(f"{API}/jobs/{job['id']}/cluster_statuses/", headers=token(admin))
    assert [s["status"] for s in r.json()["results"]] == [
        "Stopped",
        "Stopping",
        "Started",
        "Starting",
        "Not Started",
    ]


async def test_failed_run_stops_with_a_reason(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    await add_node(svc, admin.org, "n1")
    job = await create(client, admin)
    native = rescale.parse_id(job["id"])
    assert native
    await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
    await drive(svc, native, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, native, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING, S.FAILED]})
    await drive(svc, native, job=[JobStatus.COMPLETE])
    r = await client.get(f"{API}/jobs/{job['id']}/statuses/", headers=token(admin))
    first, second = r.json()["results"][:2]
    assert first["status"] == "Completed"
    assert (second["status"], second["statusReason"]) == ("Stopping", "A run failed")


async def test_update_and_delete(client: httpx.AsyncClient, admin: Account) -> None:
    job = await create(client, admin)
    r = await client.patch(
        f"{API}/v2/jobs/{job['id']}/", json={"projectId": "proj1"}, headers=token(admin)
    )
    assert r.status_code == 200 and r.json()["projectId"] == "proj1"
    body = job_body(command="make all", slots=1, name="renamed")
    r = await client.put(f"{API}/jobs/{job['id']}", json=body, headers=token(admin))
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "renamed"
    assert r.json()["jobanalyses"][0]["command"] == "make all"
    assert r.json()["projectId"] == "proj1"
    r = await client.delete(f"{API}/jobs/{job['id']}/", headers=token(admin))
    assert r.status_code == 204
    r = await client.get(f"{API}/jobs/{job['id']}/", headers=token(admin))
    assert r.status_code == 404 and list(r.json()) == ["detail"]


async def test_files_and_contents(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    job = await create(client, admin)
    native = rescale.parse_id(job["id"])
    assert native
    await add_file(svc, native, "n1", "results/out.csv", b"a,b\n1,2\n")
    r = await client.get(f"{API}/v2/jobs/{job['id']}/files/", headers=token(admin))
    assert r.status_code == 200
    page = r.json()
    assert page["count"] == 1
    f = page["results"][0]
    assert set(f) == {
        "id",
        "name",
        "path",
        "relativePath",
        "dateUploaded",
        "decryptedSize",
        "downloadUrl",
        "isUploaded",
        "md5",
        "typeId",
        "isDeleted",
        "sharedWith",
    }
    assert f["name"] == "out.csv" and f["relativePath"] == "n1/results/out.csv"
    assert f["decryptedSize"] == 8 and f["typeId"] == 5 and f["isUploaded"] is True
    assert f["downloadUrl"] == f"http://testserver{API}/v2/files/{f['id']}/contents/"
    r = await client.get(f["downloadUrl"], headers=token(admin))
    assert r.status_code == 200 and r.content == b"a,b\n1,2\n"
    r = await client.get(f"{API}/files/{f['id']}/", headers=token(admin))
    assert r.json()["md5"] == f["md5"]


async def test_errors_in_rescale_shape(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    for wrong in ["1", "abc", "12345", "AAAAAAB", "x" * 40, "A-B-C"]:
        r = await client.get(f"{API}/jobs/{wrong}/", headers=token(admin))
        assert r.status_code == 404, wrong
        assert list(r.json()) == ["detail"]
    r = await client.get(f"{API}/files/12/contents/", headers=token(admin))
    assert r.status_code == 404
    r = await client.post(f"{API}/jobs/", json={"name": "x"}, headers=token(admin))
    assert r.status_code == 400
    assert r.json() == {"jobanalyses": ["jobanalyses must be a list with at least one analysis"]}
    body = job_body()
    del body["jobanalyses"][0]["command"]
    r = await client.post(f"{API}/jobs/", json=body, headers=token(admin))
    assert r.status_code == 400 and r.json() == {"command": ["command is required"]}
    body = job_body()
    body["jobanalyses"][0]["hardware"]["walltime"] = 1000
    r = await client.post(f"{API}/jobs/", json=body, headers=token(admin))
    assert r.status_code == 400 and list(r.json()) == ["hardware"]
    r = await client.post(f"{API}/jobs/", content=b"{", headers=token(admin))
    assert r.status_code == 400 and list(r.json()) == ["detail"]
    # Another organization's job does not exist here.
    other = await factory.account(await factory.org())
    job = await create(client, other)
    r = await client.get(f"{API}/jobs/{job['id']}/", headers=token(admin))
    assert r.status_code == 404
    r = await client.get(f"{API}/jobs/")
    assert r.status_code == 401 and list(r.json()) == ["detail"]


def test_ids_round_trip() -> None:
    for n in (1, 51, 52, 380204031, 380204032, 2**40, 2**63 - 1):
        text = rescale.render_id(n)
        assert len(text) >= 5 and text.isalpha()
        assert rescale.parse_id(text) == n
    assert rescale.parse_id("AAAAA") is None
    assert rescale.parse_id("AAAAAB") is None  # not the canonical form of 1


async def test_share_a_job(client: httpx.AsyncClient, admin: Account, factory: Factory) -> None:
    friend = await factory.account(admin.org, email="recipient@example.com")
    job = await create(client, admin)
    r = await client.post(
        f"{API}/jobs/{job['id']}/share/",
        json={"email": "recipient@example.com", "message": "have a look"},
        headers=token(admin),
    )
    assert r.status_code == 200, r.text
    r = await client.get(f"{API}/jobs/", headers=token(admin))
    assert r.json()["results"][0]["sharedWith"] == ["recipient@example.com"]
    r = await client.get(f"{API}/jobs/{job['id']}/", headers=token(friend))
    assert r.status_code == 200
    r = await client.post(
        f"{API}/jobs/{job['id']}/share/", json={"message": "no email"}, headers=token(admin)
    )
    assert r.status_code == 400 and r.json() == {"email": ["email is required"]}
    r = await client.post(
        f"{API}/jobs/{job['id']}/share/", json={"email": "nobody@example.com"}, headers=token(admin)
    )
    assert r.status_code == 404 and list(r.json()) == ["detail"]
