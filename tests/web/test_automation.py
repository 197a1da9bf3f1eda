"""Dashboard pages for reusable work: tasks (and their generated run forms), stacks,
schedules and triggers."""

from __future__ import annotations

import html
import re

import httpx

from tests.conftest import Account
from tests.web.dashboard import sign_in

DEPLOY_ARGS = (
    '[{"name": "version", "label": "Version"},'
    ' {"name": "env", "type": "select", "options": ["staging", "production"]}]'
)


def words(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def make_task(client: httpx.AsyncClient, csrf: str, **fields: str) -> int:
    body = {
        "csrf_token": csrf,
        "name": "deploy",
        "type": "script",
        "command": "deploy",
        "target_kind": "nodes",
        "nodes": "web1",
        "quorum": "100%",
        "run_timeout": "600",
        "arguments": DEPLOY_ARGS,
        "retry_attempts": "1",
        "concurrency": "allow",
        **fields,
    }
    made = await client.post("/tasks", data=body)
    assert made.status_code == 303, words(made)
    return int(made.headers["location"].split("/")[2].split("?")[0])


async def test_empty_states(client: httpx.AsyncClient, admin: Account) -> None:
    await sign_in(client, admin.email)
    assert "No tasks yet." in (await client.get("/tasks")).text
    assert "No stacks yet." in (await client.get("/stacks")).text
    assert "No schedules yet." in (await client.get("/schedules")).text
    triggers = await client.get("/triggers")
    assert "No triggers yet." in triggers.text and "create a schedule" in triggers.text


async def test_a_task_runs_from_its_generated_form(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    task_id = await make_task(client, csrf)
    page = await client.get(f"/tasks/{task_id}")
    assert 'name="arg:version"' in page.text
    assert '<select id="arg-env" name="arg:env" required' in page.text
    missing = await client.post(
        f"/tasks/{task_id}/run", data={"csrf_token": csrf, "arg:env": "staging"}
    )
    assert missing.status_code == 422 and "'version' is required" in words(missing)
    assert re.search(r'name="arg:version"[^>]*aria-invalid="true"', missing.text)
    assert 'value="staging" selected' in missing.text
    ran = await client.post(
        f"/tasks/{task_id}/run",
        data={"csrf_token": csrf, "arg:version": "1.2", "arg:env": "production"},
    )
    assert ran.status_code == 303
    job = await client.get(ran.headers["location"])
    assert "deploy 1.2 production" in job.text
    assert f'href="/tasks/{task_id}">deploy</a>' in job.text
    listing = await client.get("/tasks")
    assert 'data-task="deploy"' in listing.text and "<code>version</code>" in listing.text


async def test_task_form_errors_and_changes(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    bad_json = await client.post(
        "/tasks",
        data={"csrf_token": csrf, "name": "x", "type": "script", "command": "x",
              "target_kind": "none", "arguments": "[{name: 1}"},
    )  # fmt: skip
    assert bad_json.status_code == 422 and "JSON list" in words(bad_json)
    assert re.search(r'name="arguments"[^>]*aria-invalid="true"', bad_json.text)
    no_approver = await client.post(
        "/tasks", data={"csrf_token": csrf, "name": "gate", "type": "approval"}
    )
    assert no_approver.status_code == 422 and "at least one approver" in words(no_approver)
    gate = await client.post(
        "/tasks",
        data={
            "csrf_token": csrf,
            "name": "gate",
            "type": "approval",
            "approvers": str(admin.user_id),
            "message": "Go?",
        },
    )
    assert gate.status_code == 303
    task_id = await make_task(client, csrf, name="build")
    edit = await client.get(f"/tasks/{task_id}/edit")
    assert 'value="build"' in edit.text and "version" in edit.text
    changed = await client.post(
        f"/tasks/{task_id}",
        data={
            "csrf_token": csrf,
            "name": "build",
            "type": "script",
            "description": "compiles everything",
            "command": "make",
            "target_kind": "none",
            "retry_attempts": "3",
            "concurrency": "forbid",
        },
    )
    assert changed.status_code == 303
    page = await client.get(f"/tasks/{task_id}")
    assert "compiles everything" in page.text and "chosen at run time" in page.text
    assert 'name="target_kind"' in page.text  # no default target: the run form asks
    dup = await client.post(
        "/tasks",
        data={"csrf_token": csrf, "name": "build", "type": "script", "command": "x"},
    )
    assert dup.status_code == 409 and "exists already" in words(dup)


async def test_schedules_stacks_and_triggers(client: httpx.AsyncClient, admin: Account) -> None:
    csrf = await sign_in(client, admin.email)
    bad = await client.post(
        "/schedules", data={"csrf_token": csrf, "kind": "cron", "cron": "every day"}
    )
    assert bad.status_code == 422
    assert "not a valid cron" in words(bad) or "5 fields" in words(bad)
    zone = await client.post(
        "/schedules",
        data={"csrf_token": csrf, "kind": "cron", "cron": "0 3 * * *", "timezone": "Mars/Base"},
    )
    assert zone.status_code == 422 and "unknown time zone" in words(zone)
    made = await client.post(
        "/schedules",
        data={"csrf_token": csrf, "name": "nightly", "kind": "cron", "cron": "0 3 * * *",
              "timezone": "Europe/Paris"},
    )  # fmt: skip
    assert made.status_code == 303
    listing = await client.get("/schedules")
    assert "cron 0 3 * * * (Europe/Paris)" in listing.text
    assert listing.text.count("<time datetime=") >= 3
    every = await client.post(
        "/schedules", data={"csrf_token": csrf, "kind": "period", "period": "3600"}
    )
    assert every.status_code == 303
    assert "every 1 h 00 min" in (await client.get("/schedules")).text

    stack = await client.post(
        "/stacks",
        data={"csrf_token": csrf, "name": "web", "target_kind": "nodes", "nodes": "web1 web2",
              "command": "uptime", "env": "STAGE=prod"},
    )  # fmt: skip
    assert stack.status_code == 303
    stacks = await client.get("/stacks")
    assert 'data-stack="web"' in stacks.text and "web1, web2" in stacks.text
    stack_id = re.search(r'action="/stacks/(\d+)/run"', stacks.text)
    assert stack_id
    ran = await client.post(f"/stacks/{stack_id.group(1)}/run", data={"csrf_token": csrf})
    assert ran.status_code == 303 and "uptime" in (await client.get(ran.headers["location"])).text

    schedule_id = re.search(r'data-schedule="(\d+)"', listing.text)
    assert schedule_id
    no_what = await client.post(
        "/triggers", data={"csrf_token": csrf, "schedule_id": schedule_id.group(1)}
    )
    assert no_what.status_code == 422 and "runs a task or a stack" in words(no_what)
    trigger = await client.post(
        "/triggers",
        data={"csrf_token": csrf, "name": "nightly-web", "schedule_id": schedule_id.group(1),
              "stack_id": stack_id.group(1), "enabled": "1", "overlap": "forbid",
              "catch_up": "skip"},
    )  # fmt: skip
    assert trigger.status_code == 303
    triggers = await client.get("/triggers")
    found = re.search(r'href="/triggers/(\d+)" class="job-link">nightly-web', triggers.text)
    assert found
    url = f"/triggers/{found.group(1)}"
    page = await client.get(url)
    assert "Europe/Paris" in page.text and "It has not fired yet." in page.text
    # The stack's job run above still holds web1 and web2: under "forbid" the trigger's run
    # is refused, saying why; once that job is stopped, it runs.
    busy = await client.post(f"{url}/run", data={"csrf_token": csrf})
    assert busy.status_code == 409 and "nodes busy" in words(busy)
    stopped = await client.post(f"{ran.headers['location']}/stop", data={"csrf_token": csrf})
    assert stopped.status_code == 303
    now = await client.post(f"{url}/run", data={"csrf_token": csrf})
    assert now.status_code == 303 and now.headers["location"].startswith("/jobs/")
    off = await client.post(f"{url}/enable", data={"csrf_token": csrf, "enabled": "0"})
    assert off.status_code == 303
    assert 'data-status="disabled"' in (await client.get(url)).text
    on = await client.post(f"{url}/enable", data={"csrf_token": csrf, "enabled": "1"})
    assert on.status_code == 303
    queued = await client.post(f"{url}/delete", data={"csrf_token": csrf})
    assert queued.headers["location"] == f"{url}?notice=queued_for_deletion"
    assert "deleted at its next run time" in (await client.get(url)).text
    in_use = await client.post(
        f"/schedules/{schedule_id.group(1)}/delete", data={"csrf_token": csrf}
    )
    assert in_use.status_code == 409 and "delete them first" in words(in_use)


async def test_stacks_schedules_and_triggers_change(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    await client.post(
        "/stacks",
        data={"csrf_token": csrf, "name": "web", "target_kind": "nodes", "nodes": "web1",
              "command": "uptime"},
    )  # fmt: skip
    stacks = await client.get("/stacks")
    stack_id = re.search(r'href="/stacks/(\d+)/edit#edit"', stacks.text)
    assert stack_id
    form = await client.get(f"/stacks/{stack_id.group(1)}/edit")
    assert "Change stack web" in form.text and 'value="uptime"' in form.text
    bad = await client.post(
        f"/stacks/{stack_id.group(1)}",
        data={"csrf_token": csrf, "name": "web", "target_kind": "nodes", "nodes": ""},
    )
    assert bad.status_code == 422 and "Change stack web" in bad.text
    changed = await client.post(
        f"/stacks/{stack_id.group(1)}",
        data={"csrf_token": csrf, "name": "web", "target_kind": "tags", "tags": "linux",
              "command": "df -h"},
    )  # fmt: skip
    assert changed.status_code == 303
    assert "tags linux" in (await client.get("/stacks")).text

    await client.post(
        "/schedules", data={"csrf_token": csrf, "name": "hourly", "kind": "period",
                            "period": "3600"}
    )  # fmt: skip
    schedules = await client.get("/schedules")
    schedule_id = re.search(r'href="/schedules/(\d+)/edit#edit"', schedules.text)
    assert schedule_id
    form = await client.get(f"/schedules/{schedule_id.group(1)}/edit")
    assert 'value="3600"' in form.text
    changed = await client.post(
        f"/schedules/{schedule_id.group(1)}",
        data={"csrf_token": csrf, "name": "hourly", "kind": "cron", "cron": "0 * * * *",
              "timezone": "UTC"},
    )  # fmt: skip
    assert changed.status_code == 303
    assert "cron 0 * * * * (UTC)" in (await client.get("/schedules")).text

    made = await client.post(
        "/triggers",
        data={"csrf_token": csrf, "schedule_id": schedule_id.group(1),
              "stack_id": stack_id.group(1), "enabled": "", "overlap": "allow",
              "catch_up": "skip"},
    )  # fmt: skip
    assert made.status_code == 303
    trigger_id = re.search(r'href="/triggers/(\d+)"', (await client.get("/triggers")).text)
    assert trigger_id
    url = f"/triggers/{trigger_id.group(1)}"
    form = await client.get(f"{url}/edit")
    assert "Change trigger" in form.text
    renamed = await client.post(
        url,
        data={"csrf_token": csrf, "name": "hourly-web", "schedule_id": schedule_id.group(1),
              "stack_id": stack_id.group(1), "enabled": "1", "overlap": "forbid",
              "catch_up": "once"},
    )  # fmt: skip
    assert renamed.status_code == 303
    page = await client.get(url)
    assert "hourly-web" in page.text and 'data-status="enabled"' in page.text
    assert "forbid" in page.text


async def test_a_chained_stack_runs_from_its_page_and_draws_its_chain(
    client: httpx.AsyncClient, admin: Account
) -> None:
    csrf = await sign_in(client, admin.email)
    await make_task(client, csrf, name="build", arguments="[]", command="make")
    base = {"csrf_token": csrf, "name": "release", "target_kind": "nodes", "nodes": "web1"}
    bad = await client.post("/stacks", data={**base, "steps": "[{"})
    assert bad.status_code == 422 and "steps must be JSON" in words(bad)
    unknown = await client.post("/stacks", data={**base, "steps": '[{"task": "nope"}]'})
    assert unknown.status_code == 404 and "no task 'nope'" in words(unknown)
    made = await client.post(
        "/stacks", data={**base, "steps": '[{"task": "build"}, {"task": "build"}]'}
    )
    assert made.status_code == 303, words(made)
    stacks = await client.get("/stacks")
    assert "chain: build → build" in words(stacks)
    stack_id = re.search(r'action="/stacks/(\d+)/run"', stacks.text)
    assert stack_id
    ran = await client.post(f"/stacks/{stack_id.group(1)}/run", data={"csrf_token": csrf})
    assert ran.status_code == 303 and ran.headers["location"].startswith("/stack-runs/")
    page = await client.get(ran.headers["location"])
    assert page.status_code == 200
    states = re.findall(r'data-step="(\d+)" data-state="(\w+)"', page.text)
    assert states == [("0", "running"), ("1", "pending")]
    assert 'data-live-list data-src="/stack-runs/' in page.text
    fragment = await client.get(ran.headers["location"], headers={"x-fragment": "1"})
    assert "<html" not in fragment.text and 'data-step="0"' in fragment.text
    stopped = await client.post(f"{ran.headers['location']}/stop", data={"csrf_token": csrf})
    assert stopped.status_code == 303
    page = await client.get(ran.headers["location"])
    assert re.findall(r'data-state="(\w+)"', page.text) == ["failed", "skipped"]
    assert 'data-status="stopped"' in page.text
    missing = await client.get("/stack-runs/999999")
    assert missing.status_code == 404
    edit = await client.get(f"/stacks/{stack_id.group(1)}/edit")
    assert "task_id" in html.unescape(edit.text)
