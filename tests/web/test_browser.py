"""The dashboard in real headless Chromium against real ``jobyard serve`` and
``jobyard agent`` processes.

Jobs wait on a gate file that the test creates, so the page is known to be open while
the job is still running and the states it then shows arrived live (a marker set on
``window`` proves that the page never reloaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.yard import Yard, chromium_missing, launch_chromium, running_yard, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(bool(chromium_missing()), reason="no chromium")]

NODES = ("web-1", "web-2")
WAIT = 20_000  # ms: how long a live change may take to show


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    with running_yard(tmp_path_factory.mktemp("yard"), agents=NODES) as y:
        yield y


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, yard: Yard) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(WAIT)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("dialog", lambda dialog: dialog.accept())
    try:
        yield p
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


def gate_command(gate: Path, text: str) -> str:
    return f"while [ ! -e {gate} ]; do sleep 0.05; done; echo {text}"


def mark(page: Any) -> None:
    page.evaluate("window.__stayed = true")


def still_same_page(page: Any) -> bool:
    return bool(page.evaluate("window.__stayed === true"))


def test_sign_in_start_a_job_and_watch_it_complete_live(
    page: Any, yard: Yard, tmp_path: Path
) -> None:
    sign_in(page, yard.url)
    assert page.locator("h1").inner_text() == "Jobs"
    page.click("text=Start a job")
    gate = tmp_path / "go"
    page.fill("#command", gate_command(gate, "hello-from-the-browser"))
    page.check("input[name=target_kind][value=nodes]")
    page.fill("#nodes", " ".join(NODES))
    page.fill("#quorum", "100%")
    page.fill("#run_timeout", "60")
    page.click("button:has-text('Start')")
    page.wait_for_url(f"{yard.url}/jobs/*")
    for node in NODES:
        page.wait_for_selector(f'tr[data-node="{node}"][data-node-status="running"]')
    mark(page)
    gate.touch()
    for node in NODES:
        page.wait_for_selector(f'tr[data-node="{node}"][data-node-status="succeeded"]')
    page.wait_for_selector('.head-status[data-job-status="complete"]')
    stdout = 'details[data-output="web-1"] pre[data-stream-name="stdout"]'
    page.wait_for_selector(f'{stdout}:has-text("hello-from-the-browser")')
    assert page.locator(".timeline .seg-run").count() == len(NODES)
    assert page.locator(".history li").count() >= 4  # created, new, voting, running, complete
    assert still_same_page(page)


def test_new_jobs_and_their_states_appear_in_the_list(
    page: Any, yard: Yard, tmp_path: Path
) -> None:
    sign_in(page, yard.url)
    mark(page)
    gate = tmp_path / "go"
    with yard.api() as api:
        made = api.post(
            "/api/v1/jobs", json={"command": gate_command(gate, "listed"), "nodes": ["web-1"]}
        )
        assert made.status_code == 201, made.text
    job_id = made.json()["id"]
    row = f'tr[data-job-id="{job_id}"]'
    page.wait_for_selector(f'{row}[data-job-status="running"]')
    gate.touch()
    page.wait_for_selector(f'{row}[data-job-status="complete"]')
    assert still_same_page(page)


def test_stop_a_running_job(page: Any, yard: Yard, tmp_path: Path) -> None:
    sign_in(page, yard.url)
    with yard.api() as api:
        made = api.post(
            "/api/v1/jobs",
            json={"command": gate_command(tmp_path / "never", "x"), "nodes": ["web-2"]},
        )
    job_id = made.json()["id"]
    page.goto(f"{yard.url}/jobs/{job_id}")
    page.wait_for_selector('tr[data-node="web-2"][data-node-status="running"]')
    page.click("button:has-text('Stop')")  # the confirm dialog is accepted
    page.wait_for_selector("text=The job was stopped.")
    page.wait_for_selector('.head-status[data-job-status="aborted"]')
    page.wait_for_selector('tr[data-node="web-2"][data-node-status="aborted"]')


def test_errors_are_shown_in_words(page: Any, yard: Yard) -> None:
    sign_in(page, yard.url)
    page.goto(f"{yard.url}/jobs/new")
    page.fill("#command", "true")
    page.check("input[name=target_kind][value=tags]")
    page.fill("#tags", "gpu")
    page.click("button:has-text('Start')")
    assert "no node matches" in page.locator(".alert-error").inner_text()
    assert page.locator("#tags").input_value() == "gpu"
    page.goto(f"{yard.url}/jobs/999999")
    assert "no job 999999" in page.locator(".lead").inner_text()


PAGES = ["/jobs", "/jobs/new", "/nodes", "/nodes/web-1", "/clusters", "/tokens", "/members"]


def test_every_page_fits_a_phone(browser: Any, yard: Yard) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    page = context.new_page()
    try:
        sign_in(page, yard.url)
        with yard.api() as api:
            job_id = api.post(
                "/api/v1/jobs", json={"command": "echo phone", "nodes": ["web-1"]}
            ).json()["id"]
        for path in [*PAGES, f"/jobs/{job_id}", "/login"]:
            page.goto(f"{yard.url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 360, f"{path} is {width}px wide on a 360px phone"
    finally:
        context.close()


def test_define_an_approval_task_and_approve_its_job(page: Any, yard: Yard) -> None:
    sign_in(page, yard.url)
    page.goto(f"{yard.url}/tasks/new")
    page.fill("#name", "release-approval")
    page.select_option("#type", "approval")
    assert page.locator("#command").is_hidden()  # only the approval's fields show
    page.check("input[name=approvers]")  # the only member: the admin
    page.check("input[name=allow_self_approval]")
    page.fill("#approve_label", "Ship it")
    page.fill("#message", "Ship release 7?")
    page.click("button:has-text('Create task')")
    page.wait_for_selector("text=Saved.")
    page.click("button:has-text('Run release-approval')")
    page.wait_for_url(f"{yard.url}/jobs/*")
    page.wait_for_selector('.head-status[data-job-status="onhold"]')
    assert "Ship release 7?" in page.locator("#approval").inner_text()
    page.fill("#decide-comment", "go")
    page.click("button:has-text('Ship it')")
    page.wait_for_selector("text=Approved.")
    page.wait_for_selector('.head-status[data-job-status="complete"]')
    assert "go" in page.locator("#approval").inner_text()


def test_read_a_notification(page: Any, yard: Yard, tmp_path: Path) -> None:
    sign_in(page, yard.url)
    page.goto(f"{yard.url}/notifications")
    mark(page)
    gate = tmp_path / "go"
    with yard.api() as api:
        made = api.post(
            "/api/v1/jobs",
            json={"command": gate_command(gate, "told"), "nodes": ["web-1"], "name": "told-job"},
        )
    job_id = made.json()["id"]
    gate.touch()  # the job completes; its creator watches it and is told in the app
    item = page.locator(".note.unread", has_text="told-job")
    item.wait_for()
    page.wait_for_selector("[data-unread-count]:not(:empty)")
    unread = int(page.locator("[data-unread-count]").inner_text())
    assert still_same_page(page)  # the inbox and the count changed live
    item.locator("button").click()
    page.wait_for_url(f"{yard.url}/jobs/{job_id}")
    left = page.locator("[data-unread-count]").inner_text()
    assert left == (str(unread - 1) if unread > 1 else "")


def test_a_stack_run_page_draws_the_chain_and_follows_it_live(
    page: Any, yard: Yard, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    with yard.api() as api:
        for name, command in (("gate", gate_command(gate, "7.0")), ("echo", "echo got")):
            made = api.post(
                "/api/v1/tasks",
                json={"name": f"chain-{name}", "command": command, "arguments": ["v"]}
                if name == "echo"
                else {"name": f"chain-{name}", "command": command},
            )
            assert made.status_code == 201, made.text
        stack = api.post(
            "/api/v1/stacks",
            json={
                "name": "browser-chain",
                "target": {"nodes": ["web-1"]},
                "steps": [
                    {"task": "chain-gate"},
                    {"task": "chain-echo", "arguments": {"v": "${previous.stdout}"}},
                ],
            },
        )
        assert stack.status_code == 201, stack.text
    sign_in(page, yard.url)
    page.goto(f"{yard.url}/stacks")
    page.locator('tr[data-stack="browser-chain"]').locator("button:has-text('Run')").click()
    page.wait_for_url(f"{yard.url}/stack-runs/*")
    page.wait_for_selector('li[data-step="0"][data-state="running"]')
    assert page.locator('li[data-step="1"]').get_attribute("data-state") == "pending"
    mark(page)
    gate.touch()
    page.wait_for_selector('li[data-step="0"][data-state="succeeded"]')
    page.wait_for_selector('li[data-step="1"][data-state="succeeded"]')
    page.wait_for_selector('.page-head [data-status="succeeded"]')
    assert still_same_page(page)


def test_output_colours_render_and_markup_stays_text_live(
    page: Any, yard: Yard, tmp_path: Path
) -> None:
    sign_in(page, yard.url)
    gate = tmp_path / "go"
    command = (
        r"printf '\033[1;31mbefore\033[0m <script>window.__xss = 1</script>\n'; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; "
        r"""printf '\033[32mlive green\033[0m <img src=x onerror="window.__xss = 2">\n'"""
    )
    with yard.api() as api:
        made = api.post("/api/v1/jobs", json={"command": command, "nodes": ["web-1"]})
        assert made.status_code == 201, made.text
    page.goto(f"{yard.url}/jobs/{made.json()['id']}")
    pre = 'details[data-output="web-1"] pre[data-stream-name="stdout"]'
    page.wait_for_selector(f'{pre} span.ansi-fg1.ansi-bold:has-text("before")')
    mark(page)
    gate.touch()
    page.wait_for_selector(f'{pre} span.ansi-fg2:has-text("live green")')  # arrived live
    page.wait_for_selector('.head-status[data-job-status="complete"]')
    text = page.locator(pre).inner_text()
    assert "<script>window.__xss = 1</script>" in text
    assert '<img src=x onerror="window.__xss = 2">' in text
    assert "\x1b" not in text and "[32m" not in text
    assert page.locator(f"{pre} script, {pre} img").count() == 0
    assert page.evaluate("window.__xss === undefined")
    green = page.locator(f"{pre} span.ansi-fg2").evaluate("e => getComputedStyle(e).color")
    assert green == "rgb(152, 195, 121)"
    assert still_same_page(page)
