"""Secret task arguments and task environment variables: sealed when defined or given,
shown as ••••, kept by ••••, given to the command through its environment only."""

from __future__ import annotations

import httpx
import orjson

from jobyard.domain.secrets import MASK
from jobyard.service.context import Services
from jobyard.service.rounds import commit_message
from tests.conftest import Factory
from tests.secrets.test_job_secrets import CANARY, dump

DEFAULT = "default-5e1c-canary"
ENV = "env-91d0-canary"


async def test_secret_arguments_and_env_of_a_task(
    ssvc: Services, sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    admin = await sfactory.account(await sfactory.org("acme"))
    h = admin.headers
    task = {
        "name": "deploy",
        "command": "./deploy.sh",
        "target": {"nodes": ["web1"]},
        "env": {"STAGE": "prod"},
        "secret_env": {"API_KEY": ENV},
        "arguments": [
            {"name": "version"},
            {"name": "token", "secret": True, "required": False, "default": DEFAULT},
        ],
    }
    r = await sclient.post("/api/v1/tasks", json=task, headers=h)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["env"] == {"STAGE": "prod", "API_KEY": MASK}
    assert made["secret_env"] == ["API_KEY"]
    assert made["arguments"][1]["default"] == MASK and made["arguments"][1]["secret"] is True
    for secret in (ENV, DEFAULT):
        assert secret not in r.text and secret not in await dump(ssvc)

    # What was read, sent back, changes nothing.
    back = {k: made[k] for k in ("env", "arguments", "command")}
    r = await sclient.patch(f"/api/v1/tasks/{made['id']}", json=back, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["env"] == made["env"] and r.json()["arguments"] == made["arguments"]

    # A run with the default, then with a given value.
    for given, expected in (({"version": "1.2"}, DEFAULT), (["1.3", CANARY], CANARY)):
        r = await sclient.post(
            f"/api/v1/tasks/{made['id']}/run", json={"arguments": given}, headers=h
        )
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["arguments"]["token"] == MASK
        assert job["env"]["JOBYARD_ARG_TOKEN"] == MASK and job["env"]["API_KEY"] == MASK
        assert job["command"].endswith(' "$JOBYARD_ARG_TOKEN"')
        async with ssvc.db.read() as tx:
            stored = await tx.jobs.get_any(job["id"])
        assert stored is not None
        frame = orjson.loads(commit_message(ssvc, stored, "web1"))
        assert frame["env"]["JOBYARD_ARG_TOKEN"] == expected
        assert frame["env"]["API_KEY"] == ENV
        assert set(frame["secret_env"]) == {"API_KEY", "JOBYARD_ARG_TOKEN"}
        r = await sclient.get(f"/api/v1/jobs/{job['id']}/history", headers=h)
        assert r.status_code == 200 and expected not in r.text
    rows = await dump(ssvc)
    for secret in (ENV, DEFAULT, CANARY):
        assert secret not in rows

    # •••• for a secret never stored is refused.
    r = await sclient.post(
        f"/api/v1/tasks/{made['id']}/run", json={"arguments": ["1", MASK]}, headers=h
    )
    assert r.status_code == 422, r.text


async def test_a_trigger_keeps_secret_arguments_sealed(
    ssvc: Services, sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    admin = await sfactory.account(await sfactory.org("acme"))
    h = admin.headers
    r = await sclient.post(
        "/api/v1/tasks",
        json={
            "name": "t",
            "command": "true",
            "target": {"nodes": ["n"]},
            "arguments": [{"name": "token", "secret": True}],
        },
        headers=h,
    )
    assert r.status_code == 201, r.text
    task_id = r.json()["id"]
    r = await sclient.post("/api/v1/schedules", json={"period": 3600}, headers=h)
    assert r.status_code == 201, r.text
    body = {"schedule_id": r.json()["id"], "task_id": task_id, "arguments": {"token": CANARY}}
    r = await sclient.post("/api/v1/triggers", json=body, headers=h)
    assert r.status_code == 201, r.text
    trigger = r.json()
    assert trigger["arguments"] == {"token": MASK}
    assert CANARY not in await dump(ssvc)
    r = await sclient.patch(
        f"/api/v1/triggers/{trigger['id']}", json={"arguments": {"token": MASK}}, headers=h
    )
    assert r.status_code == 200, r.text
    r = await sclient.post(f"/api/v1/triggers/{trigger['id']}/run", headers=h)
    assert r.status_code == 201, r.text
    async with ssvc.db.read() as tx:
        stored = await tx.jobs.get_any(r.json()["id"])
    assert stored is not None
    assert orjson.loads(commit_message(ssvc, stored, "n"))["env"]["JOBYARD_ARG_TOKEN"] == CANARY


async def test_a_chain_step_keeps_secret_arguments_sealed(
    ssvc: Services, sclient: httpx.AsyncClient, sfactory: Factory
) -> None:
    admin = await sfactory.account(await sfactory.org("acme"))
    h = admin.headers
    r = await sclient.post(
        "/api/v1/tasks",
        json={"name": "t", "command": "true", "arguments": [{"name": "token", "secret": True}]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    body = {
        "name": "chain",
        "target": {"nodes": ["n"]},
        "steps": [{"task": "t", "arguments": {"token": CANARY}}],
    }
    r = await sclient.post("/api/v1/stacks", json=body, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["steps"][0]["arguments"] == {"token": MASK}
    assert CANARY not in await dump(ssvc)
    r = await sclient.post(f"/api/v1/stacks/{r.json()['id']}/run", headers=h)
    assert r.status_code == 201, r.text
    async with ssvc.db.read() as tx:
        stored = await tx.jobs.get_any(r.json()["id"])
    assert stored is not None
    assert orjson.loads(commit_message(ssvc, stored, "n"))["env"]["JOBYARD_ARG_TOKEN"] == CANARY
