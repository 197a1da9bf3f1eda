"""TheEye's agent side: an agent credential polls ``GET /{customer}/job?hostname=H`` for
its next job, downloads the job's script, runs it and finishes the job with
``PUT /{customer}/job/{id}`` — the way theeye-agent does (core/worker/listener)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx

from jobyard.domain.accounts import Role
from jobyard.service import dispatch
from jobyard.service.context import Services
from tests.conftest import Account, Factory


class PollingAgent:
    """What theeye-agent does each cycle, over HTTP."""

    def __init__(self, client: httpx.AsyncClient, account: Account, hostname: str) -> None:
        self.client = client
        self.account = account
        self.hostname = hostname
        self.base = f"/compat/theeye/{account.org}"

    async def next_job(self) -> dict[str, Any] | None:
        r = await self.client.get(
            f"{self.base}/job",
            params={"process_next": 1, "hostname": self.hostname},
            headers=self.account.headers,
        )
        assert r.status_code == 200, r.text
        jobs = r.json()["jobs"]
        assert isinstance(jobs, list)
        return jobs[0] if jobs else None

    async def script(self, job: dict[str, Any]) -> str:
        r = await self.client.get(
            f"{self.base}/script/{job['script']['id']}/download", headers=self.account.headers
        )
        assert r.status_code == 200, r.text
        return r.text

    async def run(self, job: dict[str, Any], workdir: Path) -> dict[str, Any]:
        """Download, check the md5, run; the result theeye-agent's script worker builds."""
        text = await self.script(job)
        assert hashlib.md5(text.encode()).hexdigest() == job["script"]["md5"]
        path = workdir / job["script"]["filename"]
        path.write_text(text)
        path.chmod(0o755)
        proc = await asyncio.create_subprocess_exec(
            str(path),
            *job["script_arguments"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        stdout, stderr = out.decode(), err.decode()
        lines = [line for line in stdout.splitlines() if line.strip()]
        lastline = lines[-1] if lines else ""
        data = {
            "code": proc.returncode,
            "stdout": stdout,
            "stderr": stderr,
            "log": stdout + stderr,
            "lastline": lastline,
        }
        return {"state": lastline, "data": data}

    async def finish(self, job: dict[str, Any], result: dict[str, Any]) -> httpx.Response:
        return await self.client.put(
            f"{self.base}/job/{job['id']}", json={"result": result}, headers=self.account.headers
        )


async def submit(client: httpx.AsyncClient, admin: Account, command: str, nodes: list[str]) -> int:
    r = await client.post(
        "/api/v1/jobs", json={"command": command, "nodes": nodes}, headers=admin.headers
    )
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


async def native(client: httpx.AsyncClient, admin: Account, job_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/v1/jobs/{job_id}", headers=admin.headers)
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


async def test_a_polling_agent_runs_a_job(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services, tmp_path: Path
) -> None:
    agent = PollingAgent(client, await factory.account(admin.org, Role.AGENT), "web1")
    # The first poll registers the node (online): nothing to do yet.
    assert await agent.next_job() is None
    r = await client.get("/api/v1/nodes/web1", headers=admin.headers)
    assert r.status_code == 200 and r.json()["online"] is True

    job_id = await submit(client, admin, "echo hello from $HOSTNAME_X; echo success", ["web1"])
    # Not dispatched yet (the dispatcher opens voting): not handed out.
    assert await agent.next_job() is None
    await dispatch.start_jobs(svc)
    job = await agent.next_job()
    assert job is not None
    assert job["id"] == f"{job_id:024x}"
    assert job["_type"] == "ScriptJob" and job["lifecycle"] == "assigned"
    assert set(job["script"]) == {"id", "filename", "md5"}
    # Handed out once.
    assert await agent.next_job() is None
    assert (await native(client, admin, job_id))["node_states"] == {"running": ["web1"]}

    result = await agent.run(job, tmp_path)
    assert result["state"] == "success"
    r = await agent.finish(job, result)
    assert r.status_code == 200, r.text
    finished = r.json()
    assert finished["lifecycle"] == "finished"
    assert finished["state"] == "success"
    assert finished["trigger_name"] == "success"
    assert finished["result"]["code"] == 0 and finished["result"]["lastline"] == "success"

    done = await native(client, admin, job_id)
    assert done["status"] == "complete"
    assert done["node_states"] == {"succeeded": ["web1"]}
    r = await client.get(f"/api/v1/jobs/{job_id}/output/web1/stdout", headers=admin.headers)
    assert r.text == "hello from\nsuccess\n"
    # A result sent again (its answer lost) changes nothing.
    again = await agent.finish(job, result)
    assert again.status_code == 200 and again.json()["lifecycle"] == "finished"


async def test_a_failing_script_fails_the_run(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services, tmp_path: Path
) -> None:
    agent = PollingAgent(client, await factory.account(admin.org, Role.AGENT), "db1")
    await agent.next_job()
    job_id = await submit(client, admin, "echo failure; exit 3", ["db1"])
    await dispatch.start_jobs(svc)
    job = await agent.next_job()
    assert job is not None
    r = await agent.finish(job, await agent.run(job, tmp_path))
    assert r.status_code == 200
    assert (r.json()["lifecycle"], r.json()["state"]) == ("finished", "failure")
    done = await native(client, admin, job_id)
    assert done["status"] == "complete"
    assert done["node_states"] == {"failed": ["db1"]}


async def test_a_script_word_with_a_failing_exit_code(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    agent = PollingAgent(client, await factory.account(admin.org, Role.AGENT), "db2")
    await agent.next_job()
    job_id = await submit(client, admin, "true", ["db2"])
    await dispatch.start_jobs(svc)
    job = await agent.next_job()
    assert job is not None
    r = await agent.finish(job, {"state": "degraded", "data": {"code": 2, "lastline": "degraded"}})
    assert r.json()["state"] == "degraded"
    assert (await native(client, admin, job_id))["node_states"] == {"failed": ["db2"]}


async def test_a_multi_node_job_waits_for_every_vote(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    credential = await factory.account(admin.org, Role.AGENT)
    a = PollingAgent(client, credential, "n1")
    b = PollingAgent(client, credential, "n2")
    await a.next_job()
    await b.next_job()
    job_id = await submit(client, admin, "true", ["n1", "n2"])
    await dispatch.start_jobs(svc)
    # n1 votes; the job still waits for n2, so n1 gets nothing yet.
    assert await a.next_job() is None
    assert (await native(client, admin, job_id))["node_states"] == {"new": ["n2"], "ready": ["n1"]}
    job_b = await b.next_job()
    assert job_b is not None
    job_a = await a.next_job()
    assert job_a is not None and job_a["id"] == job_b["id"]
    # Several nodes: the result names its host.
    r = await client.put(
        f"{a.base}/job/{job_a['id']}",
        json={"result": {"state": "success", "data": {"code": 0}}},
        headers=credential.headers,
    )
    assert r.status_code == 400 and "hostname" in r.json()["message"]
    for agent in (a, b):
        r = await client.put(
            f"{agent.base}/job/{job_a['id']}",
            params={"hostname": agent.hostname},
            json={"result": {"state": "success", "data": {"code": 0}}},
            headers=credential.headers,
        )
        assert r.status_code == 200, r.text
    assert (await native(client, admin, job_id))["status"] == "complete"


async def test_agent_errors(client: httpx.AsyncClient, admin: Account, factory: Factory) -> None:
    credential = await factory.account(admin.org, Role.AGENT)
    base = f"/compat/theeye/{admin.org}"
    r = await client.get(f"{base}/job", headers=credential.headers)
    assert r.status_code == 400
    assert r.json() == {
        "message": "host is required: send ?hostname=<this node's name>",
        "code": "BadRequest",
        "statusCode": 400,
    }
    job_id = await submit(client, admin, "true", ["web9"])
    # A job never handed to this agent cannot be finished, nor its script read.
    r = await client.put(
        f"{base}/job/{job_id:024x}", json={"result": {}}, headers=credential.headers
    )
    assert r.status_code == 409
    r = await client.get(f"{base}/script/{job_id:024x}/download", headers=credential.headers)
    assert r.status_code == 404
    r = await client.get(f"{base}/script/nothex/download", headers=credential.headers)
    assert r.status_code == 400 and r.json()["message"].startswith("script id is invalid")
    r = await client.put(f"{base}/agent/web9", headers=credential.headers)
    assert r.status_code == 200
