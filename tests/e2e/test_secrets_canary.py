"""Canary: secret values given to a real ``jobyard serve`` and run by a real ``jobyard agent``
with commands that print them to stdout and stderr are found on no surface.

Searched: the native API (jobs, runs, history, output, tasks, stacks, triggers,
notifications, the job's and the organization's live event streams read while the job
ran), every dialect's job endpoints (Chef, Rescale, Xplenty, Kragle, TheEye), the
dashboard's pages, ``jobyard export``, the email (aiosmtpd) and the webhook body,
``/metrics``, the server's and the agent's log files, and every file of the data directory
(the SQLite database, its WAL, stored files) but the key. Each canary must still reach the
command: the output holds ``••••`` where it printed one.
"""

from __future__ import annotations

import base64
import email
import email.policy
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from jobyard.domain.dialects import chef, rescale, theeye
from tests.e2e.procs import Agent, Server, free_port, run_cli, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ORG = "acme"
EMAIL = "admin@acme.test"
PASSWORD = "correct horse"
CANARIES = {
    "TASK_SECRET": "canary-task-env-6b1f0c",
    "STACK_SECRET": "canary-stack-env-93ad27",
    "token": "canary-argument-4e8a51",
    "JOB_SECRET": "canary-job-env-d2c7e9",
}
MASK = "••••"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Mailbox:
    def __init__(self) -> None:
        self.port = free_port()
        self.raw: list[bytes] = []
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        self.raw.append(raw)
        return "250 OK"

    def texts(self) -> list[str]:
        """Each message decoded (quoted-printable, base64 parts) as well as raw."""
        out = []
        for raw in list(self.raw):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            parts = [raw.decode("utf-8", "replace")]
            for part in msg.walk():
                payload = part.get_payload(decode=True)
                if isinstance(payload, bytes):
                    parts.append(payload.decode("utf-8", "replace"))
            out.append("\n".join(parts))
        return out


class Hooks(http.server.ThreadingHTTPServer):
    def __init__(self) -> None:
        self.bodies: list[str] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                bodies.append(str(self.headers) + self.rfile.read(size).decode("utf-8", "replace"))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class Stream:
    """An SSE stream read in a thread until a terminal job status passes by."""

    def __init__(self, url: str, token: str) -> None:
        self.text = ""
        self.connected = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, token), daemon=True)
        self._thread.start()

    def _read(self, url: str, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        with (
            httpx.Client(timeout=httpx.Timeout(5.0, read=60.0)) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            self.connected.set()
            for chunk in response.iter_text():
                self.text += chunk
                if '"to_status":"complete"' in self.text.replace(" ", ""):
                    break
        self.done.set()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.url}: {r.status_code} {r.text}"
    return r.json() if "json" in r.headers.get("content-type", "") else r.text


def _sign_in(browser: httpx.Client) -> None:
    form = browser.get("/login")
    token = _CSRF.search(form.text)
    assert token
    done = browser.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token[1]}
    )
    assert done.status_code == 303, done.text


def test_a_secret_is_found_on_no_surface(tmp_path: Path, hooks: Hooks) -> None:
    box = Mailbox()
    box._controller.start()
    go = tmp_path / "go"
    env = {
        "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
        "JOBYARD_NODE_TTL": "2",
        "JOBYARD_NODE_GRACE": "2",
        "JOBYARD_SMTP_HOST": "127.0.0.1",
        "JOBYARD_SMTP_PORT": str(box.port),
        "JOBYARD_WEBHOOK_ALLOW_PRIVATE": "true",
        "JOBYARD_OUTBOX_RETRY_BASE": "0.2",
        "JOBYARD_LOG_LEVEL": "debug",
    }
    server = Server(tmp_path / "server", env=env)
    agent: Agent | None = None
    try:
        server.start()
        server.admin("create-org", ORG)
        server.admin(
            "create-user", "--org", ORG, "--email", EMAIL, "--role", "admin",
            "--password", PASSWORD,
        )  # fmt: skip
        token = str(server.admin("create-token", "--org", ORG, "--email", EMAIL)["token"])
        api = server.client(token)
        agent_token = _ok(api.post("/api/v1/tokens", json={"role": "agent"}), 201)["token"]
        agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node="n1")
        agent.start()
        _ok(
            api.post("/api/v1/webhooks", json={"url": hooks.url, "event_types": ["*"]}),
            201,
        )

        # A task (secret env, secret argument) run on a stack (secret env).
        # The argument is appended to the command as a word: the inner shell's $1. Its
        # last line prints the argument in two writes, cut inside the value.
        script = (
            f'while [ ! -e "{go}" ]; do sleep 0.05; done; '
            'echo "out $TASK_SECRET $STACK_SECRET $JOBYARD_ARG_TOKEN"; '
            'echo "err $1 $TASK_SECRET $STACK_SECRET" >&2; '
            'printf %s "$1" | head -c 9; sleep 0.2; printf "%s\\n" "$1" | tail -c +10'
        )
        task = _ok(
            api.post(
                "/api/v1/tasks",
                json={
                    "name": "canary",
                    "command": f"sh -c '{script}' canary",
                    "secret_env": {"TASK_SECRET": CANARIES["TASK_SECRET"]},
                    "arguments": [{"name": "token", "secret": True}],
                },
            ),
            201,
        )
        stack = _ok(
            api.post(
                "/api/v1/stacks",
                json={
                    "name": "place",
                    "target": {"nodes": ["n1"]},
                    "secret_env": {"STACK_SECRET": CANARIES["STACK_SECRET"]},
                    "task_id": task["id"],
                },
            ),
            201,
        )
        job = _ok(
            api.post(
                f"/api/v1/tasks/{task['id']}/run",
                json={"arguments": {"token": CANARIES["token"]}, "stack_id": stack["id"]},
            ),
            201,
        )
        job_id = job["id"]
        live = Stream(f"{server.url}/api/v1/jobs/{job_id}/events?output=true", token)
        org_live = Stream(f"{server.url}/api/v1/events", token)
        live.connected.wait(30)
        org_live.connected.wait(30)
        go.touch()

        # A native job through the command line, its secret taken from the environment.
        ran = run_cli(
            "run", "--server", server.url, "--token", token, "--org", ORG, "--nodes", "n1",
            "--secret-env", "JOB_SECRET", "--shell",
            'echo "job $JOB_SECRET"; echo "job $JOB_SECRET" >&2',
            env={"JOB_SECRET": CANARIES["JOB_SECRET"]},
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout + ran.stderr
        other = _ok(api.get("/api/v1/jobs", params={"page_size": 100}))["results"]
        job_ids = sorted(j["id"] for j in other)
        assert job_id in job_ids and len(job_ids) == 2

        def finished(ident: int) -> bool:
            return bool(_ok(api.get(f"/api/v1/jobs/{ident}"))["status"] == "complete")

        for ident in job_ids:
            wait_until(lambda i=ident: finished(i), timeout=60, what=f"job {ident} complete")
        live.done.wait(30)
        org_live.done.wait(30)
        wait_until(lambda: len(box.raw) >= 1, timeout=30, what="an email")
        wait_until(lambda: len(hooks.bodies) >= 3, timeout=30, what="webhook deliveries")

        # The commands got the values: where they printed them, the output says ••••.
        out = _ok(api.get(f"/api/v1/jobs/{job_id}/output/n1/stdout"))
        err = _ok(api.get(f"/api/v1/jobs/{job_id}/output/n1/stderr"))
        assert out == f"out {MASK} {MASK} {MASK}\n{MASK}\n", out
        assert err == f"err {MASK} {MASK} {MASK}\n", err
        cli_job = max(job_ids)
        assert _ok(api.get(f"/api/v1/jobs/{cli_job}/output/n1/stdout")) == f"job {MASK}\n"
        assert f"job {MASK}" in ran.stdout, ran.stdout

        surfaces: dict[str, str] = {
            "cli run": ran.stdout + ran.stderr,
            "job stream": live.text,
            "organization stream": org_live.text,
        }
        assert f"out {MASK}" in live.text, live.text[-2000:]

        def fetch(label: str, path: str, **kwargs: Any) -> None:
            r = api.get(path, **kwargs)
            assert r.status_code == 200, f"{label} {path}: {r.status_code} {r.text[:500]}"
            surfaces[f"{label} {path}"] = r.text

        for ident in job_ids:
            for path in ("", "/runs", "/history", "/output/n1/stdout", "/output/n1/stderr"):
                fetch("native", f"/api/v1/jobs/{ident}{path}")
        for path in (
            "/api/v1/jobs",
            f"/api/v1/tasks/{task['id']}",
            "/api/v1/tasks",
            f"/api/v1/stacks/{stack['id']}",
            "/api/v1/notifications",
            "/api/v1/webhooks",
        ):
            fetch("native", path)

        xplenty = {
            "Accept": "application/vnd.xplenty+json",
            "Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode(),
        }
        pushy = f"/compat/chef/organizations/{ORG}/pushy"
        for ident in job_ids:
            cid, rid, tid = chef.render_id(ident), rescale.render_id(ident), theeye.render_id(ident)
            fetch("chef", f"{pushy}/jobs/{cid}")
            fetch("chef", f"{pushy}/jobs/{cid}/output/n1/stdout")
            fetch("chef", f"{pushy}/jobs/{cid}/output/n1/stderr")
            for path in ("", "statuses/", "runs/"):
                fetch("rescale", f"/compat/rescale/api/v2/jobs/{rid}/{path}")
            for path in ("", "/variables", "/log"):
                fetch("xplenty", f"/compat/xplenty/{ORG}/api/jobs/{ident}{path}", headers=xplenty)
            fetch("theeye", f"/compat/theeye/{ORG}/job/{tid}")
        fetch("chef", f"{pushy}/jobs")
        fetch("rescale", "/compat/rescale/api/v2/jobs/")
        fetch("xplenty", f"/compat/xplenty/{ORG}/api/jobs", headers=xplenty)
        fetch("kragle", "/compat/kragle/blockstacks")
        fetch("kragle", "/compat/kragle/jobs")
        fetch("theeye", f"/compat/theeye/{ORG}/job?include[env]=1&include[script]=1")

        with httpx.Client(base_url=server.url, timeout=30.0) as browser:
            _sign_in(browser)
            for path in (
                *(f"/jobs/{i}" for i in job_ids),
                *(f"/jobs/{i}/output/n1/{s}" for i in job_ids for s in ("stdout", "stderr")),
                "/jobs",
                f"/jobs/new?again={job_id}",
                f"/jobs/new?again={cli_job}",
                f"/tasks/{task['id']}",
                f"/tasks/{task['id']}/edit",
                "/tasks",
                f"/stacks/{stack['id']}/edit",
                "/stacks",
                "/notifications",
            ):
                r = browser.get(path)
                assert r.status_code == 200, f"page {path}: {r.status_code}"
                surfaces[f"page {path}"] = r.text
            task_form = surfaces[f"page /tasks/{task['id']}/edit"]
            assert f"TASK_SECRET={MASK}" in task_form

        exported = run_cli(
            "export", "--server", server.url, "--token", token, "--org", ORG, check=True
        )
        surfaces["export"] = exported.stdout
        assert MASK in exported.stdout
        metrics = httpx.get(f"{server.url}/metrics", timeout=10.0)
        surfaces["/metrics"] = metrics.text
        for n, text in enumerate(box.texts()):
            surfaces[f"email {n}"] = text
        for n, body in enumerate(hooks.bodies):
            surfaces[f"webhook {n}"] = body
        surfaces["server log"] = server.log(tail=10**8)
        surfaces["agent log"] = agent.log(tail=10**8)
        for path in sorted(server.data_dir.rglob("*")):
            if path.is_file() and path.name != "secret.key":
                surfaces[f"file {path.name}"] = path.read_bytes().decode("utf-8", "replace")

        found = {
            (label, name)
            for label, text in surfaces.items()
            for name, canary in CANARIES.items()
            if canary in text
        }
        assert found == set(), found
        assert any("jobyard.db" in label for label in surfaces)
    finally:
        if agent is not None:
            agent.close()
        server.close()
        box._controller.stop()
