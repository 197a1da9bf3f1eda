"""Dashboard pages where people act: watching, sharing, approving, giving input, reading
notifications and choosing how to be told."""

from __future__ import annotations

import html
import re

import httpx

from jobyard.domain.accounts import Role
from jobyard.domain.records import Principal
from jobyard.domain.targets import Target
from jobyard.domain.tasks import ArgType, Argument, TaskSpec, TaskType
from jobyard.service import accounts, outbox, tasks
from jobyard.service.context import Services
from tests.conftest import Account, Factory
from tests.web.dashboard import sign_in


async def principal(svc: Services, account: Account) -> Principal:
    return await accounts.authenticate(svc, account.token)


async def new_job(client: httpx.AsyncClient, csrf: str, **fields: object) -> int:
    body = {"command": "true", "nodes": ["n1"], **fields}
    made = await client.post("/api/v1/jobs", json=body, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


async def test_watch_toggle(client: httpx.AsyncClient, factory: Factory, admin: Account) -> None:
    viewer = await factory.account(admin.org, Role.VIEWER)
    csrf = await sign_in(client, admin.email)
    job_id = await new_job(client, csrf)
    page = await client.get(f"/jobs/{job_id}")
    assert "Stop watching" in page.text  # the creator watches from the start
    client.cookies.clear()
    csrf = await sign_in(client, viewer.email)
    page = await client.get(f"/jobs/{job_id}")
    assert ">Watch<" in page.text
    done = await client.post(f"/jobs/{job_id}/watch", data={"csrf_token": csrf, "watch": "1"})
    assert done.headers["location"] == f"/jobs/{job_id}?notice=watching"
    page = await client.get(done.headers["location"])
    assert "Stop watching" in page.text and viewer.email in page.text
    await client.post(f"/jobs/{job_id}/watch", data={"csrf_token": csrf, "watch": "0"})
    assert ">Watch<" in (await client.get(f"/jobs/{job_id}")).text


async def test_share_with_someone_of_another_organization(
    client: httpx.AsyncClient, factory: Factory, admin: Account
) -> None:
    other = await factory.account(await factory.org(), Role.USER)
    csrf = await sign_in(client, admin.email)
    job_id = await new_job(client, csrf, name="quarterly-report")
    unknown = await client.post(
        f"/jobs/{job_id}/share", data={"csrf_token": csrf, "email": "nobody@example.com"}
    )
    assert unknown.status_code == 404
    assert "no user with email" in html.unescape(unknown.text)
    assert 'value="nobody@example.com"' in unknown.text  # the form keeps the value
    shared = await client.post(
        f"/jobs/{job_id}/share",
        data={"csrf_token": csrf, "email": other.email, "message": "have a look"},
    )
    assert shared.status_code == 303
    page = await client.get(f"/jobs/{job_id}")
    assert other.email in page.text and "have a look" in html.unescape(page.text)
    client.cookies.clear()
    await sign_in(client, other.email)
    listing = await client.get("/jobs")
    assert "quarterly-report" in listing.text
    theirs = await client.get(f"/jobs/{job_id}")
    assert theirs.status_code == 200 and "Stop" not in theirs.text.split("People")[0]


async def test_notifications_inbox_and_settings(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    csrf = await sign_in(client, admin.email)
    empty = await client.get("/notifications")
    assert "No notifications yet." in empty.text
    job_id = await new_job(client, csrf, name="nightly")
    await client.post(f"/jobs/{job_id}/stop", data={"csrf_token": csrf})
    assert await outbox.deliver_in_app(svc) >= 1
    assert (await client.get("/notifications/count")).text == "1"
    page = await client.get("/notifications")
    assert 'class="count" data-unread-count>1<' in page.text
    assert "nightly" in html.unescape(page.text) and "stopped" in page.text
    found = re.search(r'action="/notifications/(\d+)/open"', page.text)
    assert found
    opened = await client.post(f"/notifications/{found.group(1)}/open", data={"csrf_token": csrf})
    assert opened.status_code == 303 and opened.headers["location"] == f"/jobs/{job_id}"
    assert (await client.get("/notifications/count")).text == "0"
    assert "Nothing unread." in (await client.get("/notifications?unread=1")).text

    settings = await client.get("/settings/notifications")
    assert 'name="job.failed:email" value="1"' in settings.text
    saved = await client.post(
        "/settings/notifications", data={"csrf_token": csrf, "job.failed:in_app": "1"}
    )
    assert saved.status_code == 303
    again = await client.get("/settings/notifications")
    assert re.search(r'name="job.failed:in_app" value="1"[^>]*checked', again.text)
    assert not re.search(r'name="job.failed:email" value="1"[^>]*checked', again.text)


async def test_approve_and_reject_from_the_job_page(
    client: httpx.AsyncClient, factory: Factory, admin: Account, svc: Services
) -> None:
    approver = await factory.account(admin.org, Role.USER)
    boss = await principal(svc, admin)
    task = await tasks.create_task(
        svc,
        boss,
        TaskSpec(
            name="release",
            type=TaskType.APPROVAL,
            approvers=(approver.user_id,),
            message="Ship version 2 to production?",
            approve_label="Ship it",
        ),
    )
    first = (await tasks.run_task(svc, boss, task.id)).job.id
    second = (await tasks.run_task(svc, boss, task.id)).job.id

    csrf = await sign_in(client, admin.email)
    page = await client.get(f"/jobs/{first}")
    assert "Ship version 2 to production?" in page.text
    assert "you are not one of its approvers" in page.text and "Ship it" not in page.text
    refused = await client.post(
        f"/jobs/{first}/decide", data={"csrf_token": csrf, "decision": "approve"}
    )
    assert refused.status_code == 403 and "not an approver" in refused.text

    client.cookies.clear()
    csrf = await sign_in(client, approver.email)
    page = await client.get(f"/jobs/{first}")
    assert "Ship it" in page.text and 'data-job-status="onhold"' in page.text
    ok = await client.post(
        f"/jobs/{first}/decide",
        data={"csrf_token": csrf, "decision": "approve", "comment": "looks good"},
    )
    assert ok.headers["location"] == f"/jobs/{first}?notice=approved"
    page = await client.get(ok.headers["location"])
    assert 'data-job-status="complete"' in page.text and "looks good" in page.text
    assert 'data-status="success"' in page.text
    no = await client.post(f"/jobs/{second}/decide", data={"csrf_token": csrf, "decision": "no"})
    assert no.status_code == 303
    assert 'data-status="failure"' in (await client.get(f"/jobs/{second}")).text
    twice = await client.post(
        f"/jobs/{first}/decide", data={"csrf_token": csrf, "decision": "approve"}
    )
    assert twice.status_code == 409 and "decided already" in twice.text


async def test_input_form_is_generated_from_the_task(
    client: httpx.AsyncClient, admin: Account, svc: Services
) -> None:
    boss = await principal(svc, admin)
    task = await tasks.create_task(
        svc,
        boss,
        TaskSpec(
            name="restore",
            type=TaskType.INPUT,
            command="restore",
            target=Target(nodes=("db1",)),
            arguments=(
                Argument("backup", ArgType.SELECT, label="Backup", options=("daily", "weekly")),
                Argument("keep", ArgType.NUMBER, label="Days to keep", required=False),
            ),
        ),
    )
    job_id = (await tasks.run_task(svc, boss, task.id)).job.id
    csrf = await sign_in(client, admin.email)
    page = await client.get(f"/jobs/{job_id}")
    assert "This job waits for input" in page.text
    assert '<select id="input1-backup" name="arg:backup" required' in page.text
    assert 'name="arg:keep" type="number"' in page.text
    bad = await client.post(
        f"/jobs/{job_id}/input",
        data={"csrf_token": csrf, "arg:backup": "hourly", "arg:keep": "3"},
    )
    assert bad.status_code == 422
    assert "must be one of" in html.unescape(bad.text)
    assert re.search(r'name="arg:backup"[^>]*aria-invalid="true"', bad.text)
    good = await client.post(
        f"/jobs/{job_id}/input",
        data={"csrf_token": csrf, "arg:backup": "weekly", "arg:keep": "3"},
    )
    assert good.status_code == 303
    page = await client.get(f"/jobs/{job_id}")
    assert 'data-job-status="new"' in page.text
    assert "restore weekly 3" in page.text
