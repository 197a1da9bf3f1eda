"""TheEye as its supervisor's source behaves (theeye-io-team/theeye-supervisor, core/):
the job list's fetch leaves out heavy fields unless ``include[...]`` asks; cancel ends a job
an agent runs ``terminated`` and a waiting one ``canceled``, both with state and
``trigger_name`` ``canceled`` and the canceler recorded in ``result``; an approval's result
records the approver; and the agent side: ``POST /token``, ``POST /{customer}/host/{hostname}``,
``GET /{customer}/agent/{hostname}/config``, as theeye-agent (core/app.js) calls them."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.tasks import TaskSpec, TaskType
from jobyard.service import accounts, dispatch, tasks
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.theeye.test_theeye_agent import PollingAgent, submit
from tests.dialects.theeye.test_theeye_jobs import hex24, native_job, token, v1

HEAVY = {"task_arguments_values", "script_arguments", "output", "result", "task", "script", "env"}


async def test_list_items_leave_out_heavy_fields_unless_included(
    client: httpx.AsyncClient, admin: Account
) -> None:
    native = await native_job(client, admin)
    r = await client.get(f"{v1(admin)}/job", params=token(admin))
    assert r.status_code == 200
    [item] = r.json()
    assert not HEAVY & set(item), sorted(HEAVY & set(item))
    assert item["id"] == hex24(native) and item["lifecycle"] == "ready"
    # One job read by id keeps every field.
    one = (await client.get(f"{v1(admin)}/job/{hex24(native)}", params=token(admin))).json()
    assert HEAVY - {"script", "script_arguments", "env"} <= set(one)
    # include[f]=1 selects: the id, and what was asked, heavy or not.
    r = await client.get(
        f"{v1(admin)}/job",
        params={**token(admin), "include[output]": "1", "include[result]": "1"},
    )
    assert r.json() == [{"id": hex24(native), "output": [], "result": {}}]
    # include[f]=0 leaves that field out too.
    r = await client.get("/compat/theeye/job", params={**token(admin), "include[state]": "0"})
    [item] = r.json()
    assert "state" not in item and "lifecycle" in item and not HEAVY & set(item)


async def test_cancel_of_a_running_job_terminates_it_as_the_supervisor_does(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    agent = PollingAgent(client, await factory.account(admin.org, Role.AGENT), "web1")
    await agent.next_job()
    job_id = await submit(client, admin, "sleep 60", ["web1"])
    await dispatch.start_jobs(svc)
    handed = await agent.next_job()
    assert handed is not None and handed["lifecycle"] == "assigned"
    url = f"{v1(admin)}/job/{hex24(job_id)}"
    r = await client.put(f"{url}/cancel", params=token(admin))
    assert r.status_code == 204, r.text
    job = (await client.get(url, params=token(admin))).json()
    assert (job["lifecycle"], job["state"], job["trigger_name"]) == (
        "terminated",
        "canceled",
        "canceled",
    )
    who = {"email": admin.email, "id": hex24(admin.user_id), "username": admin.email}
    assert job["result"] == {"user": who, "output": [who]}
    assert job["output"] == [json.dumps(who)]
    assert (await client.get(f"{url}/lifecycle", params=token(admin))).json() == "terminated"
    # The agent's late result changes nothing (the supervisor answers 200 and keeps it).
    late = await agent.finish(handed, {"state": "success", "data": {"code": 0}})
    assert late.status_code in (200, 409)
    again = (await client.get(url, params=token(admin))).json()
    assert (again["lifecycle"], again["state"]) == ("terminated", "canceled")


async def test_cancel_of_a_waiting_job_cancels_it(
    client: httpx.AsyncClient, admin: Account
) -> None:
    native = await native_job(client, admin)
    url = f"{v1(admin)}/job/{hex24(native)}"
    r = await client.put(f"{url}/cancel", params=token(admin))
    assert r.status_code == 204
    job = (await client.get(url, params=token(admin))).json()
    assert (job["lifecycle"], job["state"], job["trigger_name"]) == (
        "canceled",
        "canceled",
        "canceled",
    )
    assert job["result"]["user"]["email"] == admin.email


async def test_an_approval_result_records_the_approver(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    approver = await factory.account(admin.org, Role.USER)
    who = await accounts.authenticate(svc, admin.token)
    gate = await tasks.create_task(
        svc,
        who,
        TaskSpec(name="gate", type=TaskType.APPROVAL, approvers=(approver.user_id,)),
    )
    r = await client.post(f"{v1(admin)}/job", params=token(admin), json={"task": hex24(gate.id)})
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    r = await client.put(f"/compat/theeye/job/{job_id}/approve", params=token(approver))
    assert r.status_code == 204, r.text
    job = (await client.get(f"{v1(admin)}/job/{job_id}", params=token(admin))).json()
    person = {"email": approver.email, "id": hex24(approver.user_id), "username": approver.email}
    assert (job["lifecycle"], job["state"]) == ("finished", "success")
    assert job["result"] == {"user": person, "output": [person]}
    assert job["output"] == [json.dumps(person)]


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def test_an_agent_gets_a_token_registers_and_reads_its_configuration(
    client: httpx.AsyncClient, admin: Account, factory: Factory, tmp_path: Path
) -> None:
    agent = await factory.account(admin.org, Role.AGENT)
    # theeye-agent: POST /token with its client id and secret (HTTP Basic) first.
    r = await client.post("/compat/theeye/token", headers=basic(agent.token, "secret"))
    assert r.status_code == 200, r.text
    access = r.json()
    assert access == agent.token
    bearer = {"Authorization": f"Bearer {access}"}
    base = f"/compat/theeye/{admin.org}"
    r = await client.post(
        f"{base}/host/eye7",
        json={"version": "1.2.3", "info": {"platform": "linux", "hostname": "eye7"}},
        headers=bearer,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"resource_id", "host_id", "type", "looptime"}
    assert body["type"] == "keepAlive" and body["looptime"] == 30000
    assert len(body["host_id"]) == 24
    node = (await client.get("/api/v1/nodes/eye7", headers=admin.headers)).json()
    assert node["online"] is True
    r = await client.get(f"{base}/agent/eye7/config", headers=bearer)
    assert r.status_code == 200 and r.json() == {"workers": []}
    # Then it polls and finishes jobs as before (tests/dialects/theeye/test_theeye_agent.py).
    poller = PollingAgent(client, agent, "eye7")
    assert await poller.next_job() is None
    # Bad input, and who may not.
    r = await client.get(f"{base}/agent/nowhere/config", headers=bearer)
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = await client.post(f"{base}/host/bad%20name", json={}, headers=bearer)
    assert r.status_code == 400 and r.json()["statusCode"] == 400
    r = await client.post(f"{base}/host/eye8", json={}, headers=admin.headers)
    assert r.status_code == 403 and r.json()["code"] == "Forbidden"
    assert (await client.get("/api/v1/nodes/eye8", headers=admin.headers)).status_code == 404
    r = await client.post("/compat/theeye/token", headers=basic("jy_wrong", "x"))
    assert r.status_code == 401 and r.json()["statusCode"] == 401
    r = await client.post("/compat/theeye/token")
    assert r.status_code == 401
    other = await factory.account(await factory.org(), Role.AGENT)
    r = await client.post(f"{base}/host/eye9", json={}, headers=other.headers)
    assert r.status_code in (403, 404)
