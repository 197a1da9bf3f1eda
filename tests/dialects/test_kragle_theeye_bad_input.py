"""Bad input to the Kragle and TheEye dialects: always the platform's error shape with a
client-error code, never a server failure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from jobyard.domain.targets import Target
from jobyard.domain.tasks import ArgType, Argument, TaskSpec
from jobyard.service import accounts, tasks
from jobyard.service.context import Services
from tests.conftest import Account

WEIRD: list[Any] = [
    None,
    [],
    "text",
    5,
    {"schedule_id": True, "stack_id": 1},
    {"schedule_id": 1.5, "stack_id": 2**70},
    {"schedule_id": -1, "stack_id": "1"},
    {"name": 5},
    {"name": ["x"]},
    {"enabled": "true"},
    {"config": None},
    {"config": []},
    {"config": {"period": 1e300}},
    {"config": {"timestamp": 1e300}, "once": True},
    {"config": {"timestamp": "soon"}, "once": True},
    {"config": {"cron": 5}},
    {"config": {"cron": "61 * * * *"}},
    {"config": {"cron": "* * * * *", "timezone": "Mars/Base"}},
    {"once": "yes"},
    {"name": "s", "command": 5, "nodes": ["a"]},
    {"name": "s", "command": "x", "nodes": "a"},
    {"name": "s", "command": "x", "nodes": ["a b"]},
    {"name": "s", "command": "x", "target": {"count": "x"}},
    {"name": "s", "command": "x", "target": {"cluster": 5}},
    {"name": "s", "command": "x", "target": {"hosts": ["a"]}},
    {"name": "s", "command": "x", "target": []},
    {"name": "s", "command": "x", "nodes": ["a"], "env": {"A-B": "x"}},
    {"name": "s", "command": "x", "nodes": ["a"], "env": {"A": 1}},
    {"name": "s", "command": "x", "nodes": ["a"], "task_id": 999},
    {"name": "x" * 500, "command": "x", "nodes": ["a"]},
    {"name": "s", "blocks": "t"},
    {"name": "s", "blocks": [["t", {}, {"state": 1, "x": 2}]]},
    {"name": "s", "blocks": [[None]]},
    {"name": "s", "blocks": [["t", 5]]},
    {"name": "s", "blocks": [["t", {"n": "\x01\x01/a\x02\x02"}]], "nodes": ["a"]},
    {"name": "s", "blocks": [["t", {"n": 1}, {"target": {"nodes": "a"}}]]},
    {"name": "s", "blocks": [["t", {"n": 1}, {"on_failure": "later"}]]},
    {"name": "s", "blocks": [["t", {"n": 1}]], "webhook": 5},
    {"name": "s", "blocks": [["t", {"n": 1}]], "webhook": "token", "webhook_method": "PUT"},
    {"name": "s", "blocks": [["t", {"n": 1}]], "public": "yes"},
    {"name": "s", "blocks": [["t", {"n": 1}]], "schedule_id": 999999},
    {"auth": "me", "payload": {}},
    {"auth": {"email": 5, "password": []}, "payload": {}},
    {"auth": {}, "payload": []},
]


def kragle_client_error(r: httpx.Response) -> None:
    assert r.status_code == 500, r.text
    body = r.json()
    assert set(body) == {"code", "msg"}
    assert body["code"] in (1, 2, 3, 4, 6, 10, 11, 12, 22), body


@pytest.mark.parametrize("body", WEIRD, ids=[repr(b)[:40] for b in WEIRD])
async def test_kragle_bad_bodies(client: httpx.AsyncClient, admin: Account, body: Any) -> None:
    h = admin.headers
    for method, path in [
        ("POST", "/jobs"),
        ("PUT", "/jobs/1"),
        ("POST", "/schedules"),
        ("PUT", "/schedules/1"),
        ("POST", "/stacks"),
        ("POST", "/blockstacks"),
        ("PUT", "/blockstacks/1"),
        ("POST", "/blockstacks/hook/1"),
        ("POST", "/blockstacks/exec/1"),
        ("POST", "/authenticate"),
    ]:
        r = await client.request(method, f"/compat/kragle{path}", json=body, headers=h)
        if r.status_code == 200:
            continue  # some of these are fine for some routes (e.g. an empty PUT)
        kragle_client_error(r)


async def make_task(svc: Services, owner: Account) -> int:
    who = await accounts.authenticate(svc, owner.token)
    spec = TaskSpec(
        name="t",
        command="x",
        target=Target(nodes=("a",)),
        arguments=(Argument("n", ArgType.NUMBER),),
    )
    return (await tasks.create_task(svc, who, spec)).id


THEEYE_WEIRD: list[Any] = [
    None,
    "text",
    5,
    [1, 2, 3],
    {"task": 5},
    {"task": ["x"]},
    {"task": {"id": "zz"}},
    {"task_arguments": "x"},
    {"task_arguments": [{"value": []}]},
    {"task_arguments": ["not a number"]},
    {"result": "done"},
    {"result": {"state": 5}},
    {"result": {"state": "success", "data": []}},
    {"result": {"data": {"code": "x", "stdout": 5}}},
    {"args": "x"},
    {"args": [None, {"a": 1}]},
    {"hostname": 5},
]


@pytest.mark.parametrize("body", THEEYE_WEIRD, ids=[repr(b)[:40] for b in THEEYE_WEIRD])
async def test_theeye_bad_bodies(
    client: httpx.AsyncClient, admin: Account, svc: Services, body: Any
) -> None:
    task = await make_task(svc, admin)
    r = await client.post(
        "/api/v1/jobs", json={"command": "x", "nodes": ["a"]}, headers=admin.headers
    )
    job = f"{int(r.json()['id']):024x}"
    base = f"/compat/theeye/{admin.org}"
    for method, path in [
        ("POST", f"{base}/job?task={task:024x}"),
        ("POST", "/compat/theeye/job"),
        ("PUT", f"{base}/job/{job}"),
        ("PUT", f"/compat/theeye/job/{job}/input"),
        ("PUT", f"/compat/theeye/job/{job}/approve"),
        ("POST", f"/compat/theeye/job/secret/{'x' * 64}?customer={admin.org}&task={task:024x}"),
    ]:
        r = await client.request(method, path, json=body, headers=admin.headers)
        assert r.status_code < 500, (method, path, r.text)
        if r.status_code >= 400:
            assert set(r.json()) == {"message", "code", "statusCode"}, r.text
            assert r.json()["statusCode"] == r.status_code
