"""Kragle's stacks as its docs describe them (API_Reference/Stacks.md, Webhooks.md,
Advanced_Topics/Webhooks.md): POST /blockstacks with blocks (a block names a jobyard task,
its conversion is the task's arguments, a replacement marker reads the block above), exec,
webhooks with their token, and the public reads without a log-in, for one organization."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.outputs import OutputCaps
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.dialects.kragle.test_kragle_seed import BASE, FAULT_MSG, fault
from tests.tasks.conftest import finish

MESSAGES = {
    **FAULT_MSG,
    11: 'The Stack contained a Block with invalid "extra" args.',
    22: "You passed a non-existent Block type in your list of Blocks for a Stack.",
}
RELEASE = [
    ["build", {}],
    ["test", {"version": "\x01\x01/stdout\x02\x02"}, {"name": "check"}],
    ["ship", ["\x01/version\x02"]],
]


async def make_tasks(client: httpx.AsyncClient, who: Account) -> None:
    for name, args in (("build", []), ("test", ["version"]), ("ship", ["version"])):
        r = await client.post(
            "/api/v1/tasks",
            json={
                "name": name,
                "command": f"./{name}.sh",
                "arguments": args,
                "target": {"nodes": ["web1"]},
            },
            headers=who.headers,
        )
        assert r.status_code == 201, r.text


async def blockstack(client: httpx.AsyncClient, who: Account, **body: Any) -> dict[str, Any]:
    r = await client.post(
        f"{BASE}/blockstacks",
        json={"name": "release", "blocks": RELEASE, **body},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    found: dict[str, Any] = r.json()
    return found


@contextlib.asynccontextmanager
async def agent(svc: Services, stdout: dict[str, str]) -> AsyncIterator[list[int]]:
    """Finish every new job, printing ``stdout[command]`` (what a node would do)."""
    done: list[int] = []

    async def loop() -> None:
        while True:
            async with svc.db.read() as tx:
                rows = await tx.conn.exec_driver_sql(
                    "SELECT id, command FROM jobs WHERE status = 'new' ORDER BY id"
                )
                found = [(r[0], r[1]) for r in rows]
            for job_id, command in found:
                async with svc.db.begin() as tx:
                    for run in await tx.jobs.runs(job_id):
                        text = stdout.get(command.split()[0], "")
                        await tx.outputs.append(run.id, "stdout", text, OutputCaps(10_000, 10_000))
                await finish(svc, job_id)
                done.append(job_id)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(loop())
    try:
        yield done
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


OUTPUTS = {"./build.sh": "1.2.3\n", "./test.sh": '{"version": "1.2.3"}\n', "./ship.sh": "ok\n"}


async def test_blocks_make_a_chain_that_exec_runs(
    client: httpx.AsyncClient, svc: Services, admin: Account
) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    made = await blockstack(client, admin)
    assert list(made) == ["id"]
    found = (await client.get(f"{BASE}/blockstacks/byid/{made['id']}", headers=h)).json()
    assert found["owner"] == admin.user_id and found["webhook"] is None
    assert found["blocks"] == [
        {"id": 1, "type": "build", "conversion": {}, "state": {"input": {}, "output": {}}},
        {
            "id": 2,
            "type": "test",
            "conversion": {"version": "\x01\x01/stdout\x02\x02"},
            "state": {"input": {}, "output": {}},
            "name": "check",
        },
        {
            "id": 3,
            "type": "ship",
            "conversion": ["\x01\x01/version\x02\x02"],
            "state": {"input": {}, "output": {}},
        },
    ]
    native = (await client.get(f"/api/v1/stacks/{made['id']}", headers=h)).json()
    assert native["steps"][1]["arguments"] == {"version": "${previous.stdout}"}
    assert native["steps"][2]["arguments"] == ["${previous.output.version}"]
    # Without a wait: the first block started.
    r = await client.get(f"{BASE}/blockstacks/exec/{made['id']}?wait=0", headers=h)
    assert r.status_code == 200 and r.json()["success"] == [1] and r.json()["running"]
    async with agent(svc, OUTPUTS) as ran:
        r = await client.get(f"{BASE}/blockstacks/exec/{made['id']}?wait=20", headers=h)
        assert r.status_code == 200, r.text
        assert r.json()["success"] == [1, 2, 3], r.json()
    commands = [(await client.get(f"/api/v1/jobs/{j}", headers=h)).json()["command"] for j in ran]
    assert "./ship.sh 1.2.3" in commands and "./test.sh 1.2.3" in commands


async def test_a_failing_block_answers_error(
    client: httpx.AsyncClient, svc: Services, admin: Account
) -> None:
    await make_tasks(client, admin)
    made = await blockstack(client, admin)
    # build prints nothing the next block can read: test runs with "", ship finds no "version".
    async with agent(svc, {}):
        r = await client.get(f"{BASE}/blockstacks/exec/{made['id']}?wait=20", headers=admin.headers)
    assert r.status_code == 200 and set(r.json()) >= {"error"}, r.json()
    assert "version" in r.json()["error"]


async def test_bad_blocks_answer_kragle_faults_and_change_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    for blocks, code in (
        ([["nope", {}]], 22),
        ([["build", {}], ["Post to Twitter", {"tweet_body": "x"}]], 22),
        ([], 4),
        ("build", 4),
        ([["build", "text"]], 4),
        ([[5, {}]], 4),
        ([["build", {}, {"colour": "red"}]], 11),
        ([["build", {}, "x"]], 11),
        ([["test", {"nope": 1}]], 4),
        ([["test", {"version": "\x01\x01/stdout\x02\x02"}]], 4),  # no block above it
    ):
        r = await client.post(
            f"{BASE}/blockstacks", json={"name": "bad", "blocks": blocks}, headers=h
        )
        assert r.status_code == 500 and r.json()["code"] == code, (blocks, r.json())
        assert r.json()["msg"].startswith(MESSAGES[code]), r.json()
    for extra, code in (({"webhook": "sometimes"}, 4), ({"webhook_method": "PATCH"}, 4)):
        r = await client.post(
            f"{BASE}/blockstacks",
            json={"name": "bad", "blocks": [["build", {}]], **extra},
            headers=h,
        )
        fault(r, code)
    # The mask of a secret read back is no value for a new stack (it keeps no secret).
    masked = await client.post(
        f"{BASE}/blockstacks",
        json={"name": "bad", "blocks": [["build", {}]], "env": {"PW": "\u2022" * 4}},
        headers=h,
    )
    fault(masked, 4)
    assert "PW" in masked.json()["msg"]
    listed = (await client.get(f"{BASE}/blockstacks", headers=h)).json()
    assert listed["count"] == 0
    fault(await client.get(f"{BASE}/blockstacks/exec/999999", headers=h), 6)
    fault(await client.get(f"{BASE}/blockstacks/exec/x", headers=h), 6)
    fault(await client.get(f"{BASE}/blockstacks/exec/1?wait=forever", headers=h), 1)
    fault(await client.get(f"{BASE}/blockstacks/exec/1"), 3)


async def test_webhooks_with_their_token(
    client: httpx.AsyncClient, svc: Services, admin: Account, factory: Factory
) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    made = await blockstack(client, admin, webhook="token", webhook_method="POST")
    token = made["webhook_token"]
    assert token.startswith("jyw_")
    sid = made["id"]
    found = (await client.get(f"{BASE}/blockstacks/byid/{sid}", headers=h)).json()
    assert (found["webhook"], found["webhook_method"]) == ("token", "POST")
    assert found["webhook_token"] is None and token.startswith(found["webhook_token_prefix"])
    hook = f"{BASE}/blockstacks/hook/{sid}"
    fault(await client.post(hook), 6)  # no token
    fault(await client.post(hook, params={"token": "jyw_wrong"}), 6)
    fault(await client.get(hook, params={"token": token, "wait": "0"}), 1)  # POST only
    async with agent(svc, OUTPUTS):
        r = await client.post(
            hook, params={"token": token, "wait": "20", "a": ["1", "2"]}, json={"who": "ci"}
        )
    assert r.status_code == 200 and r.json() == {"status": 0, "result": "ok\n"}, r.json()
    runs = (await client.get("/api/v1/stack-runs", headers=h)).json()["results"]
    first_job = (await client.get(f"/api/v1/stack-runs/{runs[0]['id']}", headers=h)).json()
    job = (await client.get(f"/api/v1/jobs/{first_job['steps'][0]['job_id']}", headers=h)).json()
    assert job["env"]["JOBYARD_HOOK_INPUT"].startswith('{"GET": {"a": ["1", "2"]}')
    assert '"JSON": {"who": "ci"}' in job["env"]["JOBYARD_HOOK_INPUT"]
    # A new token: the old one stops at once.
    r = await client.get(f"{BASE}/blockstacks/hook/token_refresh/{sid}", headers=h)
    fresh = r.json()["token"]
    assert list(r.json()) == ["token"] and fresh != token
    fault(await client.post(hook, params={"token": token, "wait": "0"}), 6)
    r = await client.post(hook, params={"token": fresh, "wait": "0"})
    assert r.json()["status"] == 0 and r.json()["running"] is True
    # Another organization's user may not refresh it.
    stranger = await factory.account(await factory.org(), Role.ADMIN)
    fault(
        await client.get(f"{BASE}/blockstacks/hook/token_refresh/{sid}", headers=stranger.headers),
        6,
    )
    # The webhook removed (PUT webhook: null): its URL runs nothing any more.
    r = await client.put(f"{BASE}/blockstacks/{sid}", json={"webhook": None}, headers=h)
    assert r.status_code == 200 and r.json()["webhook"] is None, r.text
    assert r.json()["instances"] == [1, 2, 3]
    fault(await client.post(hook, params={"token": fresh, "wait": "0"}), 6)
    # Public: anyone with the URL; user: only its owner.
    await client.put(
        f"{BASE}/blockstacks/{sid}", json={"webhook": "public", "webhook_method": "GET"}, headers=h
    )
    r = await client.get(hook, params={"wait": "0"})
    assert r.status_code == 200 and r.json()["status"] == 0
    await client.put(f"{BASE}/blockstacks/{sid}", json={"webhook": "user"}, headers=h)
    fault(await client.get(hook, params={"wait": "0"}), 6)
    fault(await client.get(hook, params={"wait": "0"}, headers=stranger.headers), 6)
    r = await client.get(hook, params={"wait": "0"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == 0


async def test_failed_webhook_calls_are_rate_limited(
    client: httpx.AsyncClient, admin: Account
) -> None:
    await make_tasks(client, admin)
    made = await blockstack(client, admin, webhook="token")
    hook = f"{BASE}/blockstacks/hook/{made['id']}"
    for _ in range(10):
        fault(await client.post(hook, params={"token": "jyw_guess"}), 6)
    r = await client.post(hook, params={"token": made["webhook_token"], "wait": "0"})
    assert r.status_code == 429 and r.json()["code"] == 3 and "retry" in r.json()["msg"]
    assert int(r.headers["Retry-After"]) >= 1


async def test_public_reads_without_a_log_in_show_one_organization(
    client: httpx.AsyncClient, svc: Services, admin: Account, factory: Factory
) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    shown = await blockstack(client, admin, public=True, webhook="token")
    hidden = await blockstack(client, admin, name="private")
    other = await factory.account(await factory.org(), Role.ADMIN)
    await make_tasks(client, other)
    elsewhere = await blockstack(client, other, name="theirs", public=True)
    org = admin.org

    fault(await client.get(f"{BASE}/blockstacks"), 3)  # no organization named
    r = await client.get(f"{BASE}/blockstacks", params={"organization": org})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["count"], body["pagesize"], body["page"]) == (1, 10, 1)
    assert body["stacks"] == [
        {
            "id": shown["id"],
            "owner": admin.user_id,
            "name": "release",
            "webhook": "token",
            "webhook_method": "POST",
            "blocks": [
                {"id": 1, "type": "build"},
                {"id": 2, "type": "test"},
                {"id": 3, "type": "ship"},
            ],
        }
    ]
    q = {"organization": org}
    r = await client.get(f"{BASE}/blockstacks/byid/{shown['id']}", params=q)
    assert r.status_code == 200 and "jobs" not in r.json() and "webhook_token" not in r.json()
    r = await client.get(f"{BASE}/blockstacks/byname/release", params=q)
    assert r.json()["id"] == shown["id"]
    fault(await client.get(f"{BASE}/blockstacks/byid/{hidden['id']}", params=q), 6)
    fault(await client.get(f"{BASE}/blockstacks/byname/private", params=q), 6)
    fault(await client.get(f"{BASE}/blockstacks/byid/{elsewhere['id']}", params=q), 6)
    fault(await client.get(f"{BASE}/blockstacks", params={"organization": "nowhere"}), 6)
    # The deployment may name the organization instead of the URL.
    original = svc.settings
    svc.settings = dataclasses.replace(original, kragle_org=org)
    try:
        listed = (await client.get(f"{BASE}/blockstacks")).json()
        assert [s["id"] for s in listed["stacks"]] == [shown["id"]]
    finally:
        svc.settings = original
    # Signed in: one's own organization, every stack, the full shape.
    mine = (await client.get(f"{BASE}/blockstacks", headers=h)).json()
    assert mine["count"] == 2 and "jobs" in mine["stacks"][0]
    fault(
        await client.post(f"{BASE}/blockstacks", json={"name": "x", "blocks": [["build", {}]]}), 3
    )


async def test_block_targets_are_checked(client: httpx.AsyncClient, admin: Account) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    for options in ({"target": {"nodes": 5}}, {"target": None}, {"target": "web1"}, {"target": {}}):
        r = await client.post(
            f"{BASE}/blockstacks",
            json={"name": "t", "blocks": [["build", {}, options]]},
            headers=h,
        )
        if options == {"target": None}:
            assert r.status_code == 200, r.text  # the task's own target
            continue
        fault(r, 4)
    r = await client.post(
        f"{BASE}/blockstacks",
        json={"name": "t2", "blocks": [["build", {}, {"target": {"tags": ["gpu"]}}]]},
        headers=h,
    )
    assert r.status_code == 200
    native = (await client.get(f"/api/v1/stacks/{r.json()['id']}", headers=h)).json()
    assert native["target"] == {"tags": ["gpu"]} and native["steps"][0]["target"] == {
        "tags": ["gpu"]
    }


async def test_a_stack_that_cannot_start_answers_in_the_body_and_writes_nothing(
    client: httpx.AsyncClient, admin: Account
) -> None:
    h = admin.headers
    await make_tasks(client, admin)
    made = await blockstack(client, admin, tags=["gpu"], webhook="public", webhook_method="GET")
    r = await client.get(f"{BASE}/blockstacks/exec/{made['id']}?wait=0", headers=h)
    assert r.status_code == 200 and "no node matches" in r.json()["error"], r.json()
    r = await client.get(f"{BASE}/blockstacks/hook/{made['id']}", params={"wait": "0"})
    assert r.status_code == 200 and r.json()["status"] == 1 and "no node" in r.json()["err"]
    assert (await client.get("/api/v1/stack-runs", headers=h)).json()["count"] == 0
    assert (await client.get("/api/v1/jobs", headers=h)).json()["count"] == 0
