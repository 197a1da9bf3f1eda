"""Regenerate the dashboard screenshots in docs/screenshots/.

Starts a real ``jobyard serve`` with three agents on loopback, fills it with jobs, tasks,
a cluster, a schedule and a trigger through the API and the dashboard, then photographs
the main pages with headless Chromium (Debian's package, driven by Playwright) at a
desktop and a phone width.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from tests.e2e.procs import Agent, start_agents, wait_until  # noqa: E402
from tests.web.yard import Yard, launch_chromium, running_yard, sign_in  # noqa: E402

DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
STAGGERED = (
    'case "$JOBYARD_NODE_NAME" in web-1) sleep 1.2;; web-2) sleep 2.2;; *) sleep 0.6;; esac; '
    'echo "release 7 deployed on $JOBYARD_NODE_NAME"; echo "cache warmed"'
)


def seed(yard: Yard, gate: Path) -> dict[str, int]:
    """Jobs in every interesting state; returns the ids worth photographing."""
    agents = [
        Agent(yard.root / "a-web-1", server_url=yard.url, token=yard.agent_token, node="web-1",
              tags=["linux", "web"]),
        Agent(yard.root / "a-web-2", server_url=yard.url, token=yard.agent_token, node="web-2",
              tags=["linux", "web"]),
        Agent(yard.root / "a-db-1", server_url=yard.url, token=yard.agent_token, node="db-1",
              tags=["linux", "db"], cluster="databases"),
    ]  # fmt: skip
    yard.agents.extend(agents)
    start_agents(agents)
    ids: dict[str, int] = {}
    with yard.api() as api:

        def job(**body: Any) -> int:
            made = api.post("/api/v1/jobs", json=body)
            assert made.status_code == 201, made.text
            return int(made.json()["id"])

        def finished(job_id: int) -> bool:
            return api.get(f"/api/v1/jobs/{job_id}").json()["status"] in (
                "complete", "aborted", "timed_out", "quorum_failed"
            )  # fmt: skip

        api.post("/api/v1/clusters", json={"name": "databases", "nodes": 1})
        # One after the other: an agent busy with one job refuses (nacks) the next.
        for body in (
            {"command": "uptime", "tags": ["linux"], "name": "uptime"},
            {"command": "echo checking disks; df -h / >&2; exit 3", "nodes": ["db-1"],
             "name": "disk-check"},
            {"command": STAGGERED, "nodes": ["web-1", "web-2", "db-1"], "quorum": "2",
             "name": "deploy-release-7", "run_timeout": 120},
        ):  # fmt: skip
            last = job(**body)
            wait_until(lambda j=last: finished(j), timeout=60, what=f"job {last} to finish")
        ids["deploy"] = last
        stopped = job(command=f"while [ ! -e {gate}.never ]; do sleep 0.2; done", nodes=["web-2"],
                      name="long-migration")  # fmt: skip
        wait_until(
            lambda: api.get(f"/api/v1/jobs/{stopped}").json()["status"] == "running",
            timeout=30,
            what="the migration to run",
        )
        api.post(f"/api/v1/jobs/{stopped}/stop", json={"reason": "wrong window"})

        def idle() -> bool:
            nodes = api.get("/api/v1/nodes").json()
            listed = nodes["results"] if isinstance(nodes, dict) else nodes
            return not any(n["busy"] for n in listed)

        wait_until(idle, timeout=30, what="the agents to be idle")
        # A just-stopped agent may still refuse a new job for a moment: try again then.
        for _ in range(5):
            backup = job(
                command=f"while [ ! -e {gate} ]; do sleep 0.2; done; echo ok",
                nodes=["web-1", "web-2"],
                name="nightly-backup",
            )

            def state(job_id: int = backup) -> str:
                return str(api.get(f"/api/v1/jobs/{job_id}").json()["status"])

            wait_until(lambda: state() not in ("new", "voting"), timeout=30, what="the backup")
            if state() == "running":
                ids["running"] = backup
                break
    return ids


def define_tasks(page: Any, url: str) -> dict[str, str]:
    """A script task with arguments, an approval task, a schedule and a trigger."""
    page.goto(f"{url}/tasks/new")
    page.fill("#name", "deploy")
    page.fill("#description", "Deploy a version to the web servers")
    page.fill("#command", "./deploy.sh")
    page.check("input[name=target_kind][value=tags]")
    page.fill("#tags", "web")
    page.fill(
        "#arguments",
        '[{"name": "version", "label": "Version", "help": "a git tag, e.g. v1.4.2"},\n'
        ' {"name": "env", "label": "Environment", "type": "select",'
        ' "options": ["staging", "production"]}]',
    )
    page.click("button:has-text('Create task')")
    page.wait_for_selector("text=Saved.")
    task_url = page.url.split("?")[0]
    page.goto(f"{url}/tasks/new")
    page.fill("#name", "release-gate")
    page.select_option("#type", "approval")
    page.check("input[name=approvers]")
    page.check("input[name=allow_self_approval]")
    page.fill("#message", "Ship release 7 to production? The staging checks are green.")
    page.fill("#approve_label", "Ship it")
    page.click("button:has-text('Create task')")
    page.wait_for_selector("text=Saved.")
    page.click("button:has-text('Run release-gate')")
    page.wait_for_url(f"{url}/jobs/*")
    approval_url = page.url
    page.goto(f"{url}/schedules")
    page.fill("#sc-name", "weeknights")
    page.fill("#sc-cron", "30 2 * * 1-5")
    page.fill("#sc-tz", "Europe/Paris")
    page.click("button:has-text('Create schedule')")
    page.wait_for_selector("text=Saved.")
    page.goto(f"{url}/triggers")
    page.fill("#tr-name", "nightly-deploy")
    page.select_option("#tr-schedule", label="weeknights: cron 30 2 * * 1-5 (Europe/Paris)")
    page.select_option("#tr-task", label="deploy")
    page.fill("#tr-args", '{"version": "main", "env": "staging"}')
    page.click("button:has-text('Create trigger')")
    page.wait_for_selector("text=Saved.")
    return {"task": task_url, "approval": approval_url}


def shoot(page: Any, out: Path, name: str, path: str, url: str, ready: str = "main") -> None:
    page.goto(f"{url}{path}")
    page.wait_for_selector(ready)
    page.evaluate("document.activeElement && document.activeElement.blur()")
    time.sleep(0.3)  # let the CSS pulse of live badges settle into a frame
    page.screenshot(path=str(out / f"{name}.png"), full_page=True)
    print(f"  {name}.png  {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_yard(Path(tmp)) as yard:
        gate = Path(tmp) / "gate"
        ids = seed(yard, gate)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            context = browser.new_context(viewport=DESKTOP, color_scheme="light")
            page = context.new_page()
            shoot(page, out, "login", "/login", yard.url, "#email")
            sign_in(page, yard.url)
            links = define_tasks(page, yard.url)
            task_path = links["task"].removeprefix(yard.url)
            approval_path = links["approval"].removeprefix(yard.url)
            shots: list[tuple[str, str, str]] = [
                ("jobs", "/jobs", "[data-job-id]"),
                ("job", f"/jobs/{ids['deploy']}", ".timeline"),
                ("job-running", f"/jobs/{ids['running']}", "[data-node-status=running]"),
                ("job-approval", approval_path, "#approval"),
                ("new-job", "/jobs/new", "#command"),
                ("task", task_path, ".run-form"),
                ("tasks", "/tasks", "[data-task]"),
                ("triggers", "/triggers", "[data-trigger]"),
                ("nodes", "/nodes", "[data-node]"),
                ("clusters", "/clusters", "[data-cluster]"),
                ("notifications", "/notifications", "main"),
                ("members", "/members", "[data-member]"),
            ]
            for name, path, ready in shots:
                shoot(page, out, name, path, yard.url, ready)
            page.goto(f"{yard.url}/tokens")
            page.fill("#t-name", "laptop")
            page.click("button:has-text('Create token')")
            page.wait_for_selector("#new-token")
            page.screenshot(path=str(out / "tokens.png"), full_page=True)
            print("  tokens.png  /tokens (a new token, shown once)")
            phone = browser.new_context(viewport=PHONE, is_mobile=True, color_scheme="light")
            small = phone.new_page()
            sign_in(small, yard.url)
            shoot(small, out, "phone-jobs", "/jobs", yard.url, "[data-job-id]")
            shoot(small, out, "phone-job", f"/jobs/{ids['deploy']}", yard.url, ".timeline")
            browser.close()
        gate.touch()
    print(f"screenshots written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
