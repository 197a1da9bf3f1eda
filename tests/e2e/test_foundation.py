"""The foundation as a user meets it: real ``jobyard`` processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import (
    Process,
    Server,
    bootstrap_admin,
    clean_env,
    jobyard_command,
    run_cli,
    wait_until,
)

pytestmark = pytest.mark.e2e

JOB = {"command": "uptime", "nodes": ["web1", "web2"], "quorum": "50%", "run_timeout": 60}


def create_and_read_a_job(server: Server, token: str) -> None:
    with server.client(token) as c:
        me = c.get("/api/v1/me")
        assert me.status_code == 200, me.text
        r = c.post("/api/v1/jobs", json=JOB)
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["status"] == "new" and job["node_states"] == {"new": ["web1", "web2"]}
        assert job["submitted_at"] is not None
        assert job["url"] == f"{server.url}/api/v1/jobs/{job['id']}"
        got = c.get(f"/api/v1/jobs/{job['id']}").json()
        assert (got["command"], got["quorum"], got["run_timeout"]) == ("uptime", "50%", 60)
        listed = c.get("/api/v1/jobs").json()
        assert listed["count"] == 1 and listed["results"][0]["id"] == job["id"]
        history = c.get(f"/api/v1/jobs/{job['id']}/history").json()
        # (agents may be connected: the job may have moved on since)
        assert [e["to_status"] for e in history["results"]][:2] == ["draft", "new"]
        # every accepted way to send the token works against the real server
        assert httpx.get(f"{server.url}/api/v1/me", auth=(token, "")).status_code == 200
        assert httpx.get(f"{server.url}/api/v1/me?access_token={token}").status_code == 200
        r = httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def health(server: Server) -> None:
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.url}/readyz").json() == {"status": "ok"}
    metrics = httpx.get(f"{server.url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "jobyard_http_requests_total" in metrics.text
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert "/api/v1/jobs" in doc["paths"]
    assert httpx.get(f"{server.url}/docs").status_code == 200


def stops_cleanly(server: Server) -> None:
    started = time.monotonic()
    assert server.stop(timeout=15) == 0, server.log()
    assert time.monotonic() - started < 15
    assert "Traceback" not in server.log(), server.log()


def test_serve_on_sqlite(server: Server) -> None:
    org, email, token = bootstrap_admin(server)
    assert (org, email) == ("acme", "admin@acme.test")
    health(server)
    create_and_read_a_job(server, token)
    # The job survives a restart (a crash, even).
    server.kill()
    server.restart()
    with server.client(token) as c:
        assert c.get("/api/v1/jobs").json()["count"] == 1
    assert (server.data_dir / "jobyard.db").exists()
    stops_cleanly(server)


@pytest.mark.postgres
def test_serve_on_postgresql(tmp_path: Path, pg_blank_url: str) -> None:
    """On an empty PostgreSQL database: migrations run on start."""
    with Server(tmp_path / "pg", database_url=pg_blank_url) as server:
        _, _, token = bootstrap_admin(server)
        health(server)
        create_and_read_a_job(server, token)
        assert not (server.data_dir / "jobyard.db").exists()  # nothing went to SQLite
        stops_cleanly(server)


def test_admin_commands(tmp_path: Path) -> None:
    d = ["--data-dir", str(tmp_path)]
    r = run_cli("admin", "create-org", "acme", *d, "--json", check=True)
    assert json.loads(r.stdout)["name"] == "acme"
    r = run_cli("admin", "create-org", "acme", *d, "--json")
    assert r.returncode == 6 and "exists already" in r.stderr  # Conflict
    r = run_cli("admin", "create-org", "Bad Name", *d)
    assert r.returncode == 2 and "organization name" in r.stderr  # Invalid
    r = run_cli(
        "admin",
        "create-user",
        "--org",
        "acme",
        "--email",
        "Ann@Acme.test",
        "--role",
        "viewer",
        *d,
        "--json",
        check=True,
    )
    assert json.loads(r.stdout) == {
        "id": json.loads(r.stdout)["id"],
        "email": "ann@acme.test",
        "org": "acme",
        "role": "viewer",
    }
    r = run_cli("admin", "create-user", "--org", "nope", "--email", "a@b.c", *d)
    assert r.returncode == 5 and "no organization" in r.stderr  # NotFound
    r = run_cli("admin", "create-user", "--org", "acme", "--email", "a@b.c", "--role", "boss", *d)
    assert r.returncode == 2 and "unknown role" in r.stderr
    r = run_cli("admin", "create-token", "--org", "acme", "--email", "ann@acme.test", *d)
    assert r.returncode == 0 and re.fullmatch(r"jy_[A-Za-z0-9_-]{43}\n", r.stdout), r.stdout
    r = run_cli(
        "admin",
        "create-token",
        "--org",
        "acme",
        "--email",
        "ann@acme.test",
        "--role",
        "agent",
        *d,
        "--json",
        check=True,
    )
    assert json.loads(r.stdout)["role"] == "agent"
    r = run_cli(
        "admin", "create-token", "--org", "acme", "--email", "ann@acme.test", "--role", "admin", *d
    )
    assert r.returncode == 2 and "cannot hold a token" in r.stderr


def test_migrate_on_sqlite(tmp_path: Path) -> None:
    r = run_cli("migrate", "--data-dir", str(tmp_path / "d"), check=True)
    assert "database is up to date" in r.stdout
    assert (tmp_path / "d" / "jobyard.db").exists()
    r = run_cli("migrate", "--data-dir", str(tmp_path / "d"), check=True)  # again: a no-op
    r = run_cli("migrate", "--database-url", "mysql://x/y")
    assert r.returncode == 2 and "unsupported database URL" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.postgres
def test_migrate_on_postgresql(tmp_path: Path, pg_blank_url: str) -> None:
    r = run_cli("migrate", "--database-url", pg_blank_url, check=True)
    assert "database is up to date" in r.stdout
    assert "password" not in r.stdout.lower()
    r = run_cli("admin", "create-org", "acme", "--database-url", pg_blank_url, "--json", check=True)
    assert json.loads(r.stdout)["name"] == "acme"


class Up(Process):
    """``jobyard up`` without its local agent: the server, a first org, admin and token."""

    name = "up"

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir)
        self.port = port

    def command(self) -> list[str]:
        return jobyard_command(
            "up", "--data-dir", str(self.data_dir), "--port", str(self.port), "--no-agent"
        )

    def ready(self) -> bool:
        return "token:" in self.log()

    def printed(self, label: str) -> str:
        match = re.search(rf"{label}:\s+(\S+)", self.log())
        assert match, self.log()
        return match.group(1)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Up]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Up(tmp_path / "up", port) as proc:
        yield proc


def test_up_prints_url_org_and_a_working_token(up: Up) -> None:
    url = re.search(r"jobyard is up at (\S+)", up.log())
    assert url and url.group(1) == f"http://127.0.0.1:{up.port}", up.log()
    assert up.printed("organization") == "main"
    token = up.printed("token")
    r = httpx.get(f"{url.group(1)}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "admin" and r.json()["organization"]["name"] == "main"
    auth = {"Authorization": f"Bearer {token}"}
    # No agent here (--no-agent): a name no agent registered is refused, unless pre-declared.
    r = httpx.post(f"{url.group(1)}/api/v1/jobs", json=JOB, headers=auth)
    assert r.status_code == 422 and "no agent has registered yet" in r.json()["detail"], r.text
    declared = {**JOB, "allow_unknown_nodes": True}
    r = httpx.post(f"{url.group(1)}/api/v1/jobs", json=declared, headers=auth)
    assert r.status_code == 201, r.text
    creds = up.data_dir / "credentials.json"
    assert json.loads(creds.read_text())["token"] == token
    assert creds.stat().st_mode & 0o777 == 0o600
    # A second start reuses the first organization and token.
    assert up.stop() == 0, up.log()
    up.log_path.unlink()
    up.proc = None
    up.start()
    assert up.printed("token") == token
    assert up.stop() == 0


def test_sigterm_during_requests_exits_cleanly(server: Server) -> None:
    _, _, token = bootstrap_admin(server)
    with server.client(token) as c:
        for _ in range(5):
            assert c.post("/api/v1/jobs", json=JOB).status_code == 201
    server.signal(signal.SIGTERM)
    assert server.proc is not None
    code = server.proc.wait(15)
    assert code == 0, server.log()
    wait_until(lambda: not server.running, timeout=5, what="the server to exit")


def test_oversized_bodies_on_a_real_server(server: Server) -> None:
    _, _, token = bootstrap_admin(server)
    big = json.dumps({**JOB, "description": "x" * (1 << 20)}).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = httpx.post(f"{server.url}/api/v1/jobs", content=big, headers=headers)
    assert r.status_code == 413, r.text
    r = httpx.post(f"{server.url}/api/v1/jobs", content=chunks(), headers=headers)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413, r.text
    with server.client(token) as c:
        assert c.get("/api/v1/jobs").json()["count"] == 0
        assert c.get("/healthz").status_code == 200  # still serving


def test_a_port_in_use_is_one_line_naming_the_fix(server: Server, tmp_path: Path) -> None:
    r = run_cli("up", "--data-dir", str(tmp_path / "second"), "--port", str(server.port))
    assert r.returncode == 1, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert f"127.0.0.1:{server.port} is already in use" in lines[0] and "--port N" in lines[0]
    assert "ready on" not in r.stdout + r.stderr and "jobyard is up" not in r.stdout
    # The server that had the port keeps serving.
    assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_an_agent_whose_token_is_refused_stops_while_network_failures_retry(
    server: Server, tmp_path: Path
) -> None:
    refused = run_cli(
        "agent", "--server", server.url, "--token", "jy_not-a-token", "--name", "x1",
        "--state-dir", str(tmp_path / "a1"),
    )  # fmt: skip
    assert refused.returncode == 3, (refused.stdout, refused.stderr)
    assert "refused this agent's token" in refused.stderr and "--role agent" in refused.stderr
    # Nothing listens there: the agent keeps trying (with backoff) until it is stopped.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        jobyard_command(
            "agent", "--server", f"http://127.0.0.1:{port}", "--token", "jy_x", "--name", "x2",
            "--state-dir", str(tmp_path / "a2"),
        ),
        env=clean_env(),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        lost = 0
        while lost < 3:
            line = proc.stderr.readline()
            assert line, "the agent exited"
            lost += "connection to" in line and "lost" in line
        assert proc.poll() is None
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
