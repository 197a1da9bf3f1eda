"""Watch a job, run it on a real agent, receive the email on a real SMTP server and the
in-app notification; then an SMTP outage and a server crash: every email arrives once.

Real processes: ``jobyard serve`` (SQLite), ``jobyard agent``, and aiosmtpd on loopback
(in a thread of the test). Every wait polls with a deadline.
"""

from __future__ import annotations

import email
import email.policy
import threading
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.procs import Agent, Server, bootstrap_admin, free_port, wait_until

pytestmark = pytest.mark.e2e

SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "2",
    "JOBYARD_NODE_GRACE": "2",
    "JOBYARD_VOTING_TIMEOUT": "10",
    "JOBYARD_OUTBOX_RETRY_BASE": "0.2",
    "JOBYARD_OUTBOX_RETRY_CAP": "1",
}


class Mailbox:
    """An SMTP server on a fixed loopback port that can go away and come back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
        return "250 OK"

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def subjects(self) -> Counter[str]:
        with self._lock:
            return Counter(str(m["Subject"]) for m in self.messages)

    def received(self) -> list[EmailMessage]:
        with self._lock:
            return list(self.messages)


def _json(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def test_watch_run_on_an_agent_and_receive_every_email_once(tmp_path: Path) -> None:
    box = Mailbox()
    box.start()
    env = {
        **SERVER_ENV,
        "JOBYARD_SMTP_HOST": "127.0.0.1",
        "JOBYARD_SMTP_PORT": str(box.port),
        "JOBYARD_SMTP_FROM": "jobyard@acme.test",
        "JOBYARD_PUBLIC_URL": "http://jobyard.acme.test",
    }
    server = Server(tmp_path / "server", env=env)
    agent: Agent | None = None
    try:
        server.start()
        _, _, token = bootstrap_admin(server)
        api = server.client(token)
        agent_token = _json(api.post("/api/v1/tokens", json={"role": "agent"}), 201)["token"]
        _json(api.post("/api/v1/members", json={"email": "bob@acme.test", "role": "user"}), 201)
        bob_token = _json(api.post("/api/v1/tokens", json={"email": "bob@acme.test"}), 201)["token"]
        agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node="n1")
        agent.start()
        bob = server.client(bob_token)

        def run(name: str, *, watcher: httpx.Client | None = None) -> int:
            job = _json(
                api.post(
                    "/api/v1/jobs",
                    json={"command": "echo hello", "nodes": ["n1"], "name": name, "draft": True},
                ),
                201,
            )["id"]
            if watcher is not None:
                _json(watcher.post(f"/api/v1/jobs/{job}/watchers"), 201)
            _json(api.post(f"/api/v1/jobs/{job}/submit"))

            def finished() -> bool:
                return bool(_json(api.get(f"/api/v1/jobs/{job}"))["status"] == "complete")

            wait_until(finished, timeout=30, what=f"job {name} to complete")
            return int(job)

        def subject(job: int, name: str) -> str:
            return f"Job '{name}' (#{job}) completed"

        # 1. The creator and a watcher get the email and the in-app notification.
        first = run("greet", watcher=bob)
        wait_until(
            lambda: box.subjects()[subject(first, "greet")] == 2,
            timeout=30,
            what="two emails about the first job",
        )
        mails = [m for m in box.received() if m["Subject"] == subject(first, "greet")]
        assert sorted(str(m["To"]) for m in mails) == ["admin@acme.test", "bob@acme.test"]
        text = mails[0].get_body(("plain",))
        assert text is not None
        assert f"http://jobyard.acme.test/jobs/{first}" in text.get_content()
        assert mails[0].get_body(("html",)) is not None

        def in_app() -> list[str]:
            return [n["title"] for n in _json(bob.get("/api/v1/notifications"))["results"]]

        assert wait_until(in_app, timeout=30, what="the in-app notification") == [
            subject(first, "greet")
        ]

        # 2. SMTP is down while jobs finish: the emails wait, with the error visible.
        box.stop()
        during = [run("outage-1"), run("outage-2")]

        def waiting(n: int) -> bool:
            page = _json(
                api.get(
                    "/api/v1/notifications/deliveries",
                    params={"all": "true", "channel": "email", "status": "pending"},
                )
            )
            return page["count"] == n and all(d["last_error"] for d in page["results"])

        wait_until(lambda: waiting(2), timeout=30, what="the emails to fail while SMTP is down")
        box.start()
        for job, name in zip(during, ("outage-1", "outage-2"), strict=True):
            wait_until(
                lambda j=job, n=name: box.subjects()[subject(j, n)] == 1,
                timeout=60,
                what="the delayed email",
            )

        # 3. The server is killed while an email waits; after a restart it is sent once.
        box.stop()
        crashed = run("crash")
        wait_until(lambda: waiting(1), timeout=30, what="the email to wait for SMTP")
        server.kill()
        box.start()
        server.start()
        wait_until(
            lambda: box.subjects()[subject(crashed, "crash")] == 1,
            timeout=60,
            what="the email queued before the crash",
        )

        # 4. One more job after the restart: its email comes after anything re-sent would.
        agent.wait_ready()
        api.close()
        api = server.client(token)
        last = run("after")
        wait_until(
            lambda: box.subjects()[subject(last, "after")] == 1,
            timeout=30,
            what="the last email",
        )
        received = box.received()
        ids = Counter(str(m["Message-ID"]) for m in received)
        assert all(n == 1 for n in ids.values()), ids
        assert box.subjects() == Counter(
            {
                subject(first, "greet"): 2,
                subject(during[0], "outage-1"): 1,
                subject(during[1], "outage-2"): 1,
                subject(crashed, "crash"): 1,
                subject(last, "after"): 1,
            }
        )
        failed = _json(
            api.get("/api/v1/notifications/deliveries", params={"all": "true", "status": "failed"})
        )
        assert failed["count"] == 0
    finally:
        if agent is not None:
            agent.close()
        server.close()
        box.stop()
