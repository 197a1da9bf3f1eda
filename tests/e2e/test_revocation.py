"""Revoked credentials reach live connections: real ``jobyard serve`` and agents.

Revoking a token, or changing the role of its user or removing them, closes the agent
connections and event streams it opened within seconds, also on another replica; a
revoked agent's node is offline at once and gets no new job.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, bootstrap_admin, start_agents, wait_until

pytestmark = pytest.mark.e2e

ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "30",  # long: going offline must come from the revocation
    "JOBYARD_NODE_GRACE": "30",
    "JOBYARD_VOTING_TIMEOUT": "20",
}
OPS = "ops@acme.test"
WITHIN = 10.0  # "within seconds" (on a loaded machine)


@dataclass
class Site:
    servers: list[Server]
    admin: httpx.Client
    root: Path
    agents: list[Agent]

    def token_for(self, email: str, role: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": f"{role or 'user'}-{email}", "email": email}
        if role:
            body["role"] = role
        r = self.admin.post("/api/v1/tokens", json=body)
        assert r.status_code == 201, r.text
        data: dict[str, Any] = r.json()
        return data

    def agent(self, node: str, token: str, server: Server | None = None) -> Agent:
        a = Agent(
            self.root / node, server_url=(server or self.servers[0]).url, token=token, node=node
        )
        self.agents.append(a)
        return a

    def node(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = self.admin.get(f"/api/v1/nodes/{name}").json()
        return data

    def run(self, *nodes: str) -> dict[str, Any]:
        body = {"command": "echo hi", "nodes": list(nodes), "quorum": 1}
        r = self.admin.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        url = f"/api/v1/jobs/{r.json()['id']}"

        def done() -> dict[str, Any] | None:
            job: dict[str, Any] = self.admin.get(url).json()
            return job if job["status"] in ("complete", "quorum_failed") else None

        return wait_until(done, timeout=30, what="the job to end")


@contextlib.contextmanager
def site(root: Path, database_url: str | None = None, replicas: int = 1) -> Iterator[Site]:
    with contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(Server(root / f"s{i}", database_url=database_url, env=ENV))
            for i in range(replicas)
        ]
        org, _, token = bootstrap_admin(servers[0])
        servers[0].admin("create-user", "--org", org, "--email", OPS, "--role", "user")
        admin = stack.enter_context(servers[-1].client(token))
        s = Site(servers, admin, root, [])
        try:
            yield s
        finally:
            for a in s.agents:
                a.close()


class Stream:
    """An event stream read in a thread until the server ends it."""

    def __init__(self, server: Server, token: str) -> None:
        self.status = 0
        self.ended = threading.Event()
        self._client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60.0
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_until(lambda: self.status, what="the stream to open")
        assert self.status == 200, self.status

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/v1/events") as r:
                self.status = r.status_code
                for _ in r.iter_bytes():
                    pass
        except httpx.HTTPError:
            pass
        finally:
            self.status = self.status or -1
            self.ended.set()

    def close(self) -> None:
        self._client.close()


def test_a_revoked_agent_token_disconnects_its_agent_and_streams_at_once(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        ops_agent = s.token_for(OPS, "agent")
        other = s.token_for("admin@acme.test", "agent")
        revoked, kept = s.agent("rv-1", ops_agent["token"]), s.agent("rv-2", other["token"])
        start_agents([revoked, kept])
        ops_user = s.token_for(OPS)
        stream = Stream(s.servers[0], ops_user["token"])
        untouched = Stream(s.servers[0], s.token_for(OPS)["token"])
        try:
            r = s.admin.delete(f"/api/v1/tokens/{ops_agent['id']}")
            assert r.status_code == 204, r.text
            wait_until(lambda: s.node("rv-1")["status"] == "offline", timeout=WITHIN)
            assert s.admin.delete(f"/api/v1/tokens/{ops_user['id']}").status_code == 204
            assert stream.ended.wait(WITHIN), "the stream outlived its token"
            assert not untouched.ended.is_set()
            assert "revoked" in revoked.log()
            # No new job reaches it (and it cannot come back with that token).
            job = s.run("rv-1", "rv-2")
            runs = {r["node"]: r["status"] for r in job["node_runs"]}
            assert runs == {"rv-1": "unavailable", "rv-2": "succeeded"}, job
            assert s.node("rv-2")["status"] == "online" and kept.connections() == 1
        finally:
            stream.close()
            untouched.close()


def test_a_role_change_or_removal_of_its_user_reaches_live_connections(tmp_path: Path) -> None:
    with site(tmp_path) as s:
        agent = s.agent("rc-1", s.token_for(OPS, "agent")["token"])
        start_agents([agent])
        stream = Stream(s.servers[0], s.token_for(OPS)["token"])
        try:
            r = s.admin.post("/api/v1/members", json={"email": OPS, "role": "viewer"})
            assert r.status_code == 201, r.text
            assert stream.ended.wait(WITHIN), "the stream kept its old role"
            # The agent is made to reconnect: authenticated afresh, still an agent.
            wait_until(lambda: agent.connections() >= 2, timeout=WITHIN, what="a reconnect")
            job = s.run("rc-1")
            assert job["status"] == "complete", job
            # Removed from the organization: its tokens stop working, live ones too.
            user_id = next(
                m["id"] for m in s.admin.get("/api/v1/members").json() if m["email"] == OPS
            )
            assert s.admin.delete(f"/api/v1/members/{user_id}").status_code == 204
            wait_until(lambda: s.node("rc-1")["status"] == "offline", timeout=WITHIN)
        finally:
            stream.close()


def test_a_revocation_on_one_replica_disconnects_an_agent_of_the_other(
    tmp_path: Path, pg_url: str
) -> None:
    with site(tmp_path, pg_url, replicas=2) as s:
        a = s.servers[0]
        token = s.token_for(OPS, "agent")
        agent = s.agent("rr-1", token["token"], server=a)
        start_agents([agent])
        user = s.token_for(OPS)
        stream = Stream(a, user["token"])
        try:
            # s.admin talks to replica b; the agent and the stream are on replica a.
            assert s.admin.delete(f"/api/v1/tokens/{token['id']}").status_code == 204
            wait_until(lambda: s.node("rr-1")["status"] == "offline", timeout=WITHIN)
            assert s.admin.delete(f"/api/v1/tokens/{user['id']}").status_code == 204
            assert stream.ended.wait(WITHIN)
            assert "revoked" in agent.log()
        finally:
            stream.close()
