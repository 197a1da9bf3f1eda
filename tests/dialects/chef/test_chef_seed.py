"""Chef Push Jobs (seed 001): the documented requests replayed, field by field."""

from __future__ import annotations

import re

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.jobs import JobStatus, NodeRunStatus
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.conftest import add_node, drive

RFC1123 = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$"
)
HEX32 = re.compile(r"^[0-9a-f]{32}$")
NODES = ["NODE1", "NODE2", "NODE3", "NODE4", "NODE5", "NODE6"]
JOB_WORDS = {"new", "voting", "running", "complete", "quorum_failed", "timed_out", "aborted"}


def base(account: Account) -> str:
    return f"/compat/chef/organizations/{account.org}/pushy"


async def start(
    client: httpx.AsyncClient, admin: Account, body: dict[str, object]
) -> dict[str, str]:
    r = await client.post(f"{base(admin)}/jobs", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def native(chef_id: str) -> int:
    return int(chef_id, 16)


async def test_post_jobs_as_documented(client: httpx.AsyncClient, admin: Account) -> None:
    # Request body and response from the seed: {"id": "<32 hex>"} with 201, plus "uri".
    r = await client.post(
        f"{base(admin)}/jobs",
        json={"command": "chef-client", "run_timeout": 300, "nodes": NODES},
        headers=admin.headers,
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"id", "uri"}
    assert HEX32.match(body["id"])
    assert body["uri"] == f"http://testserver{base(admin)}/jobs/{body['id']}"
    assert r.headers["location"] == body["uri"]
    # knife-push follows the uri.
    r = await client.get(body["uri"], headers=admin.headers)
    assert r.status_code == 200
    assert r.json()["id"] == body["id"]


async def test_get_job_as_documented(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    created = await start(
        client, admin, {"command": "chef-client", "run_timeout": 300, "nodes": NODES}
    )
    s = NodeRunStatus
    await drive(
        svc,
        native(created["id"]),
        runs={
            "NODE1": [s.READY, s.RUNNING],
            "NODE2": [s.READY, s.RUNNING, s.SUCCEEDED],
            "NODE3": [s.READY, s.RUNNING, s.SUCCEEDED],
            "NODE4": [s.READY, s.RUNNING, s.SUCCEEDED],
            "NODE5": [s.READY, s.RUNNING],
            "NODE6": [s.READY, s.RUNNING, s.CRASHED],
        },
        job=[JobStatus.VOTING, JobStatus.RUNNING],
    )
    r = await client.get(f"{base(admin)}/jobs/{created['id']}", headers=admin.headers)
    assert r.status_code == 200
    job = r.json()
    # The seed's fields, each with the documented type.
    assert list(job) == [
        "id",
        "command",
        "run_timeout",
        "status",
        "created_at",
        "updated_at",
        "nodes",
    ]
    assert job["id"] == created["id"]
    assert job["command"] == "chef-client"
    assert job["run_timeout"] == 300
    assert job["status"] == "running"
    assert RFC1123.match(job["created_at"]) and RFC1123.match(job["updated_at"])
    # The seed's "complete" node state is the older word for "succeeded" (Push Jobs 2).
    assert job["nodes"] == {
        "running": ["NODE1", "NODE5"],
        "succeeded": ["NODE2", "NODE3", "NODE4"],
        "crashed": ["NODE6"],
    }


async def test_job_status_words(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    s = NodeRunStatus
    for path, runs, word in [
        ([], {}, "new"),
        ([JobStatus.VOTING], {}, "voting"),
        (
            [JobStatus.VOTING, JobStatus.RUNNING, JobStatus.COMPLETE],
            {"a": [s.READY, s.RUNNING, s.SUCCEEDED]},
            "complete",
        ),
        ([JobStatus.VOTING, JobStatus.QUORUM_FAILED], {"a": [s.NACKED]}, "quorum_failed"),
        (
            [JobStatus.VOTING, JobStatus.RUNNING, JobStatus.TIMED_OUT],
            {"a": [s.READY, s.RUNNING, s.TIMED_OUT]},
            "timed_out",
        ),
        ([JobStatus.ABORTED], {"a": [s.ABORTED]}, "aborted"),
    ]:
        created = await start(client, admin, {"command": "true", "nodes": ["a"]})
        await drive(svc, native(created["id"]), runs=runs, job=path)
        r = await client.get(f"{base(admin)}/jobs/{created['id']}", headers=admin.headers)
        assert r.json()["status"] == word
        assert word in JOB_WORDS


async def test_list_jobs_is_an_array(client: httpx.AsyncClient, admin: Account) -> None:
    a = await start(client, admin, {"command": "uptime", "nodes": ["n1"]})
    b = await start(client, admin, {"command": "uptime", "nodes": ["n1", "n2"], "quorum": 1})
    r = await client.get(f"{base(admin)}/jobs", headers=admin.headers)
    assert r.status_code == 200
    jobs = r.json()
    assert [j["id"] for j in jobs] == [b["id"], a["id"]]
    assert set(jobs[0]) == {"id", "command", "run_timeout", "status", "created_at", "updated_at"}


async def test_full_body_is_kept(client: httpx.AsyncClient, admin: Account) -> None:
    created = await start(
        client,
        admin,
        {
            "command": "deploy",
            "nodes": ["n1", "n2"],
            "quorum": 1,
            "run_timeout": 60,
            "user": "deployer",
            "dir": "/srv",
            "env": {"STAGE": "blue"},
            "file": "raw:hello",
            "capture_output": True,
        },
    )
    r = await client.get(f"/api/v1/jobs/{native(created['id'])}", headers=admin.headers)
    job = r.json()
    assert job["quorum"] == "1" and job["run_timeout"] == 60 and job["dir"] == "/srv"
    assert job["env"] == {"STAGE": "blue"}
    assert job["capture_output"] is True


async def test_output_per_node(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    created = await start(
        client, admin, {"command": "echo hi", "nodes": ["n1"], "capture_output": True}
    )
    await drive(svc, native(created["id"]), output={"n1": ("hi\n", "warn\n")})
    url = f"{base(admin)}/jobs/{created['id']}/output/n1"
    r = await client.get(f"{url}/stdout", headers=admin.headers)
    assert r.status_code == 200 and r.content == b"hi\n"
    assert r.headers["content-type"] == "application/octet-stream"
    r = await client.get(f"{url}/stderr", headers=admin.headers)
    assert r.content == b"warn\n"
    r = await client.get(f"{url}/stdin", headers=admin.headers)
    assert r.status_code == 404 and "error" in r.json()
    r = await client.get(
        f"{base(admin)}/jobs/{created['id']}/output/n9/stdout", headers=admin.headers
    )
    assert r.status_code == 404


async def test_node_states(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    await add_node(svc, admin.org, "web1")
    await add_node(svc, admin.org, "web2", busy=True)
    await add_node(svc, admin.org, "web3", online=False)
    r = await client.get(f"{base(admin)}/node_states", headers=admin.headers)
    assert r.status_code == 200
    assert r.json() == [
        {"node_name": "web1", "status": "online", "availability": "available"},
        {"node_name": "web2", "status": "online", "availability": "unavailable"},
        {"node_name": "web3", "status": "offline", "availability": "unavailable"},
    ]
    r = await client.get(f"{base(admin)}/node_states/web1", headers=admin.headers)
    assert r.json() == {"node_name": "web1", "status": "online", "availability": "available"}
    r = await client.get(f"{base(admin)}/node_states/nobody", headers=admin.headers)
    assert r.status_code == 200
    assert r.json() == {"node_name": "nobody", "status": "offline", "availability": "unavailable"}


async def test_errors_in_chef_shape(
    client: httpx.AsyncClient, admin: Account, factory: Factory
) -> None:
    def is_chef_error(r: httpx.Response, status: int) -> None:
        assert r.status_code == status, r.text
        body = r.json()
        assert list(body) == ["error"]
        assert isinstance(body["error"], list) and all(isinstance(m, str) for m in body["error"])

    for wrong in ["42", "zz" * 16, "0" * 32, "f" * 32, "a" * 31, "a" * 33]:
        r = await client.get(f"{base(admin)}/jobs/{wrong}", headers=admin.headers)
        is_chef_error(r, 404)
    r = await client.get(f"{base(admin)}/jobs/{'0' * 31}1", headers=admin.headers)
    is_chef_error(r, 404)
    # Another organization's name in the URL does not exist for this token.
    other = await factory.org()
    r = await client.get(f"/compat/chef/organizations/{other}/pushy/jobs", headers=admin.headers)
    is_chef_error(r, 404)
    r = await client.get(f"{base(admin)}/jobs")
    is_chef_error(r, 401)
    r = await client.post(f"{base(admin)}/jobs", json={"command": "x"}, headers=admin.headers)
    is_chef_error(r, 400)
    r = await client.post(f"{base(admin)}/jobs", content=b"{not json", headers=admin.headers)
    is_chef_error(r, 400)
    r = await client.post(
        f"{base(admin)}/jobs",
        json={"command": "x", "nodes": ["a"], "quorum": 2},
        headers=admin.headers,
    )
    is_chef_error(r, 400)
    viewer = await factory.account(admin.org, Role.VIEWER)
    r = await client.post(
        f"{base(viewer)}/jobs", json={"command": "x", "nodes": ["a"]}, headers=viewer.headers
    )
    is_chef_error(r, 403)
