"""Rescale's catalogues (analyses/, coretypes/) from jobyard's model, input files, runs,
stop, share, paging past the end, the job detail's fields, and bad input in Rescale's shape."""

from __future__ import annotations

from typing import Any

import httpx

from jobyard.domain.dialects import rescale
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import add_node, drive
from tests.dialects.rescale.test_rescale_seed import API, create, job_body, token

S = NodeRunStatus


async def _tagged(svc: Services, org: str, name: str, tags: list[str]) -> None:
    async with svc.db.begin() as tx:
        found = await tx.accounts.org_by_name(org)
        assert found is not None
        await tx.nodes.upsert(
            found.id,
            name,
            {"tags": tags, "cluster": None, "online": True, "busy": False},
            svc.clock.now(),
        )


def _with_core(core: Any, **analysis: Any) -> dict[str, Any]:
    body = job_body()
    body["jobanalyses"][0]["hardware"]["coreType"] = core
    body["jobanalyses"][0].update(analysis)
    return body


async def test_analyses_list_custom_software_then_the_script_tasks(
    client: httpx.AsyncClient, admin: Account
) -> None:
    r = await client.post(
        "/api/v1/tasks",
        json={"name": "solver", "command": "run-solver", "description": "CFD solver"},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert r.status_code == 201, r.text
    r = await client.get(f"{API}/v2/analyses/", headers=token(admin))
    assert r.status_code == 200
    page = r.json()
    assert set(page) == {"count", "next", "previous", "results"} and page["count"] == 2
    custom, solver = page["results"]
    assert custom["code"] == "user_included" and custom["versions"][0]["versionCode"] == "0"
    assert solver["code"] == "solver" and solver["description"] == "CFD solver"
    assert solver["versions"][0]["versionCode"] == "latest"
    # A job may name either; an unknown code or version is refused in DRF's shape.
    body = job_body()
    body["jobanalyses"][0]["analysis"] = {"code": "solver", "version": "latest"}
    await create(client, admin, body)
    body["jobanalyses"][0]["analysis"] = {"code": "ansys", "version": "2024"}
    r = await client.post(f"{API}/jobs/", json=body, headers=token(admin))
    assert r.status_code == 400 and "ansys" in r.json()["jobanalyses"][0], r.text
    body["jobanalyses"][0]["analysis"] = {"code": "user_included", "version": "9"}
    r = await client.post(f"{API}/jobs/", json=body, headers=token(admin))
    assert r.status_code == 400 and "version" in r.json()["jobanalyses"][0], r.text


async def test_core_types_are_any_node_each_cluster_and_each_tag(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    r = await client.post(
        "/api/v1/clusters",
        json={"name": "pool", "nodes": 1},
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    assert r.status_code == 201, r.text
    await _tagged(svc, admin.org, "g1", ["gpu"])
    await _tagged(svc, admin.org, "g2", ["gpu", "big"])
    r = await client.get(f"{API}/v2/coretypes/", headers=token(admin))
    assert r.status_code == 200
    types = r.json()["results"]
    assert [t["code"] for t in types] == ["any", "pool", "big", "gpu"]
    assert all(float(t["price"]) == 0 for t in types)
    assert types[0]["cores"] == [1, 2] and types[3]["cores"] == [1, 2]
    # coreType picks the target: a cluster, a tag, else (any, or Rescale's own codes) any node.
    for core, target in (
        ("pool", {"cluster": "pool", "count": 1}),
        ({"code": "gpu"}, {"tags": ["gpu"], "count": 1}),
        ("onyx", {"count": 1}),
        ("any", {"count": 1}),
    ):
        job = await create(client, admin, _with_core(core))
        native = rescale.parse_id(job["id"])
        r = await client.get(
            f"/api/v1/jobs/{native}", headers={"Authorization": f"Bearer {admin.token}"}
        )
        assert r.json()["target"] == target, (core, r.json()["target"])
    for bad in (7, "", ["x"]):
        r = await client.post(f"{API}/jobs/", json=_with_core(bad), headers=token(admin))
        assert r.status_code == 400 and "hardware" in r.json(), (bad, r.text)


async def test_upload_input_files_and_name_them_on_a_job(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    r = await client.post(
        f"{API}/v2/files/contents/",
        files={"file": ("mesh.dat", b"0 1 2\n", "application/octet-stream")},
        headers=token(admin),
    )
    assert r.status_code == 201, r.text
    f = r.json()
    assert f["name"] == "mesh.dat" and f["typeId"] == 1 and f["decryptedSize"] == 6
    assert rescale.parse_id(f["id"]) is not None
    r = await client.get(f["downloadUrl"], headers=token(admin))
    assert r.status_code == 200 and r.content == b"0 1 2\n"
    listed = (await client.get(f"{API}/v2/files/", headers=token(admin))).json()
    assert [x["id"] for x in listed["results"]] == [f["id"]]

    job = await create(client, admin, _with_core("any", inputFiles=[{"id": f["id"]}]))
    (analysis,) = job["jobanalyses"]
    assert [(x["id"], x["name"]) for x in analysis["inputFiles"]] == [(f["id"], "mesh.dat")]
    # PATCH replaces the input files.
    r = await client.patch(
        f"{API}/jobs/{job['id']}/",
        json={"jobanalyses": [{**job_body()["jobanalyses"][0], "inputFiles": []}]},
        headers=token(admin),
    )
    assert r.status_code == 200 and r.json()["jobanalyses"][0]["inputFiles"] == []

    # Another organization's file, an unknown id and a malformed one are refused.
    other = await factory.account(await factory.org(), email="o@other.test")
    theirs = await client.post(
        f"{API}/files/contents/", files={"file": ("x.dat", b"x")}, headers=token(other)
    )
    assert theirs.status_code == 201
    assert (await client.get(theirs.json()["downloadUrl"], headers=token(admin))).status_code == 404
    before = (await client.get(f"{API}/jobs/", headers=token(admin))).json()["count"]
    for bad in ([{"id": theirs.json()["id"]}], [{"id": "ZZZZZZZZ"}], [{"id": 5}], "x", [{}]):
        r = await client.post(
            f"{API}/jobs/", json=_with_core("any", inputFiles=bad), headers=token(admin)
        )
        assert r.status_code == 400 and "inputFiles" in r.json(), (bad, r.text)
    assert (await client.get(f"{API}/jobs/", headers=token(admin))).json()["count"] == before
    # An upload without a file part.
    r = await client.post(f"{API}/files/contents/", data={"x": "1"}, headers=token(admin))
    assert r.status_code == 400, r.text


async def test_runs_stop_share_paging_and_detail_fields(
    client: httpx.AsyncClient, admin: Account, svc: Services, factory: Factory
) -> None:
    await add_node(svc, admin.org, "n1")
    await factory.account(admin.org, email="friend@example.com")
    job = await create(client, admin)
    for field in (
        "paramFile",
        "caseFile",
        "isTemplateDryRun",
        "includeNominalRun",
        "monteCarlo",
        "isLowPriority",
        "archiveFilters",
        "resourceFilters",
        "jobvariables",
        "projectId",
    ):
        assert field in job, field
    native = rescale.parse_id(job["id"])
    assert native
    await client.post(f"{API}/jobs/{job['id']}/submit/", headers=token(admin))
    await drive(svc, native, job=[JobStatus.VOTING], runs={"n1": [S.READY]})
    await drive(svc, native, job=[JobStatus.RUNNING], runs={"n1": [S.RUNNING]})
    r = await client.get(f"{API}/jobs/{job['id']}/runs/", headers=token(admin))
    assert r.status_code == 200
    (run,) = r.json()["results"]
    assert run["id"] == "1" and run["name"] == "n1" and run["dateStarted"]

    r = await client.post(f"{API}/jobs/{job['id']}/stop/", headers=token(admin))
    assert r.status_code == 202 and r.content == b""
    r = await client.post(
        f"{API}/jobs/{job['id']}/share/",
        json={"email": "friend@example.com", "message": "look"},
        headers=token(admin),
    )
    assert r.status_code == 200 and r.json() == {"email": "friend@example.com", "message": "look"}

    # DRF: a page past the end, or not a page number, is 404 "Invalid page.".
    for path in ("jobs/", f"jobs/{job['id']}/statuses/", "analyses/", "coretypes/", "files/"):
        r = await client.get(f"{API}/v2/{path}?page=99", headers=token(admin))
        assert r.status_code == 404 and r.json() == {"detail": "Invalid page."}, (path, r.text)
        r = await client.get(f"{API}/v2/{path}?page=abc", headers=token(admin))
        assert r.status_code == 404 and r.json() == {"detail": "Invalid page."}, (path, r.text)
    # The first page of an empty list is a page, not an error.
    r = await client.get(f"{API}/v2/files/?page=1", headers=token(admin))
    assert r.status_code == 200 and r.json()["count"] == 0
