"""TheEye (seed 004): jobs made from tasks (V1 and V2 create, anonymous secret runs),
approval jobs (approve, reject), input jobs, and deleting finished history."""

from __future__ import annotations

from typing import Any

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.targets import Target
from jobyard.domain.tasks import Argument, TaskSpec, TaskType
from jobyard.service import accounts, hooks, tasks
from jobyard.service.context import Services
from tests.conftest import Account, Factory


async def make_task(svc: Services, owner: Account, spec: TaskSpec) -> int:
    who = await accounts.authenticate(svc, owner.token)
    return (await tasks.create_task(svc, who, spec)).id


def script(name: str = "deploy", **kw: Any) -> TaskSpec:
    return TaskSpec(
        name=name,
        command="deploy.sh",
        target=Target(nodes=("web1",)),
        arguments=(Argument("env"), Argument("version")),
        **kw,
    )


def hex24(native: int) -> str:
    return f"{native:024x}"


def v1(account: Account) -> str:
    return f"/compat/theeye/{account.org}"


async def test_create_job_from_task_v1_and_v2(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    task = await make_task(svc, admin, script())
    r = await client.post(
        f"{v1(admin)}/job",
        params={"access_token": admin.token},
        json={"task": hex24(task), "task_arguments": ["prod", "1.2"]},
    )
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["task_id"] == hex24(task)
    assert job["name"] == "deploy"
    assert job["lifecycle"] == "ready" and job["state"] == "in_progress"
    assert job["task_arguments_values"] == ["prod", "1.2"]
    assert job["task"]["id"] == hex24(task)
    assert job["task"]["_type"] == "ScriptTask"
    assert [a["label"] for a in job["task"]["task_arguments"]] == ["env", "version"]
    assert job["user"] == {
        "id": hex24(admin.user_id),
        "username": admin.email,
        "email": admin.email,
    }
    # Native: the command got the arguments.
    r = await client.get(f"/api/v1/jobs/{int(job['id'], 16)}", headers=admin.headers)
    assert r.json()["command"] == "deploy.sh prod 1.2"
    # V2, the customer in the query, the arguments as {order, label, value} objects.
    r = await client.post(
        "/compat/theeye/job",
        params={"access_token": admin.token, "customer": admin.org},
        json={
            "task": hex24(task),
            "task_arguments": [
                {"order": 1, "label": "version", "value": "2.0"},
                {"order": 0, "label": "env", "value": "staging"},
            ],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["task_arguments_values"] == ["staging", "2.0"]
    # The list filters by task, as the seed's example does.
    r = await client.get(
        f"{v1(admin)}/job",
        params={
            "access_token": admin.token,
            "where[task_id]": hex24(task),
            "include[state]": "1",
            "include[creation_date]": "1",
            "include[lifecycle]": "1",
        },
    )
    assert len(r.json()) == 2
    assert all(set(j) == {"id", "state", "creation_date", "lifecycle"} for j in r.json())


async def test_create_errors(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    task = await make_task(svc, admin, script())
    url = f"{v1(admin)}/job"
    params = {"access_token": admin.token}
    r = await client.post(url, params=params, json={"task": hex24(task), "task_arguments": []})
    assert r.status_code == 400
    assert r.json()["statusCode"] == 400 and "env" in r.json()["message"]
    r = await client.post(url, params=params, json={"task": "nothex"})
    assert r.status_code == 400 and r.json()["message"].startswith("task id is invalid")
    r = await client.post(url, params=params, json={"task": "00000000" + "7" + "f" * 15})
    assert r.status_code == 404 and r.json()["code"] == "NotFound"
    r = await client.post(url, params=params, json={})
    assert r.status_code == 400
    r = await client.post(url, params=params, content=b"{nope")
    assert r.status_code == 400


async def test_approve_and_reject(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    approver = await factory.account(admin.org, Role.VIEWER)
    stranger = await factory.account(admin.org, Role.USER)
    spec = TaskSpec(name="gate", type=TaskType.APPROVAL, approvers=(approver.user_id,))
    task = await make_task(svc, admin, spec)

    async def new_job() -> str:
        r = await client.post(
            "/compat/theeye/job", params={"access_token": admin.token}, json={"task": hex24(task)}
        )
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        assert job["_type"] == "ApprovalJob" and job["lifecycle"] == "onhold"
        assert job["task"]["approvers"] == [hex24(approver.user_id)]
        return str(job["id"])

    first = await new_job()
    r = await client.put(
        f"/compat/theeye/job/{first}/approve", params={"access_token": stranger.token}
    )
    assert r.status_code == 403 and r.json()["statusCode"] == 403
    r = await client.put(
        f"/compat/theeye/job/{first}/approve", params={"access_token": approver.token}
    )
    assert r.status_code == 204 and r.content == b""
    job = (
        await client.get(f"{v1(admin)}/job/{first}", params={"access_token": admin.token})
    ).json()
    assert (job["lifecycle"], job["state"]) == ("finished", "success")
    # Decided already: 409.
    r = await client.put(
        f"/compat/theeye/job/{first}/reject", params={"access_token": approver.token}
    )
    assert r.status_code == 409 and r.json()["code"] == "Conflict"

    second = await new_job()
    r = await client.put(
        f"{v1(admin)}/job/{second}/reject", params={"access_token": approver.token}
    )
    assert r.status_code == 204
    job = (
        await client.get(f"{v1(admin)}/job/{second}", params={"access_token": admin.token})
    ).json()
    assert (job["lifecycle"], job["state"]) == ("finished", "failure")
    assert job["trigger_name"] == "failure"

    # Not an approval job: 400.
    script_task = await make_task(svc, admin, script("other"))
    r = await client.post(
        "/compat/theeye/job",
        params={"access_token": admin.token},
        json={"task": hex24(script_task), "task_arguments": ["a", "b"]},
    )
    r = await client.put(
        f"/compat/theeye/job/{r.json()['id']}/approve", params={"access_token": approver.token}
    )
    assert r.status_code == 400 and r.json()["code"] == "BadRequest"


async def test_input_job(client: httpx.AsyncClient, admin: Account, svc: Services) -> None:
    spec = TaskSpec(
        name="ask",
        type=TaskType.INPUT,
        command="greet",
        target=Target(nodes=("web1",)),
        arguments=(Argument("who"),),
    )
    task = await make_task(svc, admin, spec)
    r = await client.post(
        "/compat/theeye/job", params={"access_token": admin.token}, json={"task": hex24(task)}
    )
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["lifecycle"] == "onhold" and job["_type"] == "ScriptJob"
    url = f"/compat/theeye/job/{job['id']}/input"
    r = await client.put(url, params={"access_token": admin.token}, json={"args": ["world"]})
    assert r.status_code == 200, r.text
    assert r.json()["lifecycle"] == "ready"
    assert r.json()["task_arguments_values"] == ["world"]
    r = await client.get(f"/api/v1/jobs/{int(job['id'], 16)}", headers=admin.headers)
    assert r.json()["command"] == "greet world"
    # No longer on hold.
    r = await client.put(url, params={"access_token": admin.token}, json={"args": ["again"]})
    assert r.status_code == 400
    assert r.json()["message"].startswith("only on hold jobs allowed")


async def test_secret_runs_anonymously(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    task = await make_task(svc, admin, script())
    who = await accounts.authenticate(svc, admin.token)
    secret = (await hooks.rotate_secret(svc, who, task)).secret
    r = await client.post(
        f"/compat/theeye/job/secret/{secret}",
        params={"customer": admin.org, "task": hex24(task)},
        json={"task_arguments": ["prod", "3"]},
    )
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["task_id"] == hex24(task) and job["origin"] == "secret"
    assert job["task_arguments_values"] == ["prod", "3"]
    # A wrong secret, or the right one for another task or organization: 403.
    for secret_, params in [
        ("x" * 64, {"customer": admin.org, "task": hex24(task)}),
        (secret, {"customer": "elsewhere", "task": hex24(task)}),
        (secret, {"customer": admin.org, "task": hex24(task + 1)}),
    ]:
        r = await client.post(
            f"/compat/theeye/job/secret/{secret_}",
            params=params,
            json={"task_arguments": ["a", "b"]},
        )
        assert r.status_code == 403, r.text
        assert r.json() == {"message": "invalid secret", "code": "Forbidden", "statusCode": 403}


async def test_delete_finished_history(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    task = await make_task(svc, admin, script())
    ids = []
    for _ in range(2):
        r = await client.post(
            "/compat/theeye/job",
            params={"access_token": admin.token},
            json={"task": hex24(task), "task_arguments": ["a", "b"]},
        )
        ids.append(r.json()["id"])
    r = await client.put(f"{v1(admin)}/job/{ids[0]}/cancel", params={"access_token": admin.token})
    assert r.status_code == 204
    user = await factory.account(admin.org, Role.USER)
    r = await client.delete("/compat/theeye/job/finished", params={"access_token": user.token})
    assert r.status_code == 403
    r = await client.delete(
        "/compat/theeye/job/finished",
        params={"access_token": admin.token, "customer": admin.org, "type": "Workflow", "id": "x"},
    )
    assert r.status_code == 400
    r = await client.delete(
        "/compat/theeye/job/finished",
        params={"access_token": admin.token, "type": "Task", "id": hex24(task)},
    )
    assert r.status_code == 200 and r.json() == {}
    r = await client.get(f"{v1(admin)}/job", params={"access_token": admin.token})
    assert [j["id"] for j in r.json()] == [ids[1]]


async def test_cancel_a_task_that_forbids_it(
    client: httpx.AsyncClient, admin: Account, factory: Factory, svc: Services
) -> None:
    user = await factory.account(admin.org, Role.USER)
    task = await make_task(svc, user, script("locked", cancellable=False))
    r = await client.post(
        "/compat/theeye/job",
        params={"access_token": user.token},
        json={"task": hex24(task), "task_arguments": ["a", "b"]},
    )
    job = r.json()
    assert job["cancellable"] is False and job["task"]["cancellable"] is False
    r = await client.put(f"{v1(user)}/job/{job['id']}/cancel", params={"access_token": user.token})
    assert r.status_code == 403
    assert r.json() == {"message": "Job is not cancellable", "code": "Forbidden", "statusCode": 403}
    # An admin may.
    r = await client.put(
        f"{v1(admin)}/job/{job['id']}/cancel", params={"access_token": admin.token}
    )
    assert r.status_code == 204
    r = await client.get(
        f"{v1(admin)}/job/{job['id']}/lifecycle", params={"access_token": admin.token}
    )
    assert r.json() == "canceled"
