"""One real job on a real agent, seen through every dialect.

A real ``jobyard serve`` and a real ``jobyard agent`` (node ``n1`` in the cluster ``c1``):

- a job started through Chef Push Jobs runs on the agent and writes an output file; it is
  then read through Chef (``complete``, nodes grouped, RFC 1123 dates, stdout), Rescale
  (statuses newest first ending ``Completed``, the output file and its bytes), Xplenty
  (``completed``, the log) and TheEye (lifecycle ``finished``, state ``success``);
- an Xplenty package (a task) runs on the cluster with its variables as arguments;
- a Kragle job (a trigger of a stack) is enabled on a one-time schedule, fires, and its
  native job completes on the agent; Xplenty reads it as a schedule that ran once.

Dialect ids are rendered from the native id with each dialect's own mapping table.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from jobyard.domain.dialects import chef, rescale, theeye
from tests.e2e.procs import Agent, Server, wait_until

pytestmark = pytest.mark.e2e

SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "1",
    "JOBYARD_NODE_GRACE": "1",
}
ORG = "acme"
RFC1123 = re.compile(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$")


async def _accounts(database_url: str) -> tuple[str, str]:
    """An organization with an admin: their API token and an agent token (in-process)."""
    from jobyard.domain.accounts import Role
    from jobyard.service import accounts
    from jobyard.service.context import Services
    from jobyard.settings import Settings
    from jobyard.store import Database

    db = Database(database_url)
    try:
        await db.migrate()
        svc = Services(db=db, settings=Settings(database_url=database_url))
        await accounts.create_org(svc, ORG)
        await accounts.create_user(svc, ORG, "ops@acme.test", Role.ADMIN)
        user = await accounts.create_token(svc, ORG, "ops@acme.test")
        agent = await accounts.create_token(svc, ORG, "ops@acme.test", role=Role.AGENT)
        return user.secret, agent.secret
    finally:
        await db.close()


@dataclass
class Yard:
    server: Server
    token: str
    http: httpx.Client

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.http.get(path, headers=headers or self.bearer)

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def xplenty(self) -> dict[str, str]:
        key = base64.b64encode(f"{self.token}:".encode()).decode()
        return {"Accept": "application/vnd.xplenty+json", "Authorization": f"Basic {key}"}

    @property
    def rescale(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}

    def wait_done(self, job_id: int, timeout: float = 20.0) -> dict[str, Any]:
        """The native job once it has finished."""

        def done() -> dict[str, Any] | None:
            job: dict[str, Any] = self.get(f"/api/v1/jobs/{job_id}").json()
            return job if job["status"] not in ("new", "voting", "running", "onhold") else None

        return wait_until(done, timeout=timeout, interval=0.1, what=f"job {job_id} finished")


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    server = Server(tmp_path / "server", env=SERVER_ENV)
    token, agent_token = asyncio.run(_accounts(f"sqlite:///{server.data_dir / 'jobyard.db'}"))
    server.start()
    agent = Agent(
        tmp_path / "agent", server_url=server.url, token=agent_token, node="n1", cluster="c1"
    )
    try:
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            y = Yard(server, token, http)
            # The cluster exists before its node joins, as Xplenty creates clusters first.
            r = http.post(
                f"/compat/xplenty/{ORG}/api/clusters",
                json={"name": "c1", "nodes": 1},
                headers=y.xplenty,
            )
            assert r.status_code == 201, r.text
            agent.start()
            yield y
    finally:
        agent.close()
        server.close()


def test_one_job_on_a_real_agent_through_every_dialect(yard: Yard) -> None:
    started = time.monotonic()
    pushy = f"/compat/chef/organizations/{ORG}/pushy"
    # Started through Chef: one node, output captured, a file in the output directory.
    command = 'echo "hello from $CHEF_PUSH_NODE_NAME"; echo result > "$JOBYARD_OUTPUT_DIR/out.txt"'
    r = yard.http.post(
        f"{pushy}/jobs",
        json={"command": command, "nodes": ["n1"], "capture_output": True},
        headers=yard.bearer,
    )
    assert r.status_code == 201, r.text
    chef_id = r.json()["id"]
    assert r.json()["uri"] == f"{yard.server.url}{pushy}/jobs/{chef_id}"
    native = chef.parse_id(chef_id)
    assert native is not None
    assert yard.wait_done(native)["status"] == "complete"

    # Chef Push Jobs.
    job = yard.get(f"{pushy}/jobs/{chef_id}").json()
    assert (job["id"], job["status"], job["nodes"]) == (chef_id, "complete", {"succeeded": ["n1"]})
    assert RFC1123.match(job["created_at"]) and RFC1123.match(job["updated_at"]), job
    assert yard.get(f"{pushy}/jobs/{chef_id}/output/n1/stdout").text == "hello from n1\n"

    # Rescale: statuses newest first, ending (at the top) with Completed; the output file.
    rid = rescale.render_id(native)
    statuses = yard.get(f"/compat/rescale/api/v2/jobs/{rid}/statuses/", yard.rescale).json()
    words = [s["status"] for s in statuses["results"]]
    assert words[0] == "Completed" and "Executing" in words, words
    dates = [s["statusDate"] for s in statuses["results"]]
    assert dates == sorted(dates, reverse=True)
    files = yard.get(f"/compat/rescale/api/v2/jobs/{rid}/files/", yard.rescale).json()
    assert files["count"] == 1, files
    f = files["results"][0]
    assert (f["name"], f["relativePath"], f["decryptedSize"]) == ("out.txt", "n1/out.txt", 7)
    contents = yard.http.get(f["downloadUrl"], headers=yard.rescale)
    assert contents.status_code == 200 and contents.content == b"result\n"

    # Xplenty.
    xp = f"/compat/xplenty/{ORG}/api"
    job = yard.get(f"{xp}/jobs/{native}", yard.xplenty).json()
    assert (job["status"], job["progress"], job["outputs_count"]) == ("completed", 1.0, 1)
    assert job["completed_at"] and job["failed_at"] is None
    log = yard.get(f"{xp}/jobs/{native}/log", yard.xplenty).json()
    assert "hello from n1" in log["body"]

    # TheEye.
    job = yard.get(f"/compat/theeye/{ORG}/job/{theeye.render_id(native)}").json()
    assert (job["lifecycle"], job["state"]) == ("finished", "success"), job
    lifecycle = yard.get(f"/compat/theeye/{ORG}/job/{theeye.render_id(native)}/lifecycle")
    assert lifecycle.status_code == 200 and "finished" in lifecycle.text

    # An Xplenty package (a task without a target of its own) runs on the cluster.
    r = yard.http.post(
        "/api/v1/tasks",
        json={"name": "greet", "command": "echo hi", "arguments": [{"name": "who"}]},
        headers=yard.bearer,
    )
    assert r.status_code == 201, r.text
    package = r.json()["id"]
    cluster = yard.get(f"{xp}/clusters", yard.xplenty).json()[0]
    r = yard.http.post(
        f"{xp}/jobs",
        json={"cluster_id": cluster["id"], "package_id": package, "variables": {"who": "xp"}},
        headers=yard.xplenty,
    )
    assert r.status_code == 201, r.text
    ran = r.json()
    assert yard.wait_done(ran["id"])["status"] == "complete"
    job = yard.get(f"{xp}/jobs/{ran['id']}", yard.xplenty).json()
    assert (job["status"], job["package_id"], job["cluster_id"]) == (
        "completed",
        package,
        cluster["id"],
    )
    assert "hi xp" in yard.get(f"{xp}/jobs/{ran['id']}/log", yard.xplenty).json()["body"]

    # Kragle: a stack on a one-time schedule, enabled; the trigger fires on the agent.
    kragle = "/compat/kragle"
    r = yard.http.post(
        f"{kragle}/stacks",
        json={"name": "hello", "command": "echo kragle", "nodes": ["n1"]},
        headers=yard.bearer,
    )
    assert r.status_code == 200, r.text
    stack = r.json()["id"]
    at = int(time.time()) + 2
    r = yard.http.post(
        f"{kragle}/schedules",
        json={"name": "soon", "once": True, "config": {"timestamp": at}},
        headers=yard.bearer,
    )
    assert r.status_code == 200, r.text
    schedule = r.json()["id"]
    r = yard.http.post(
        f"{kragle}/jobs",
        json={"schedule_id": schedule, "stack_id": stack, "name": "once"},
        headers=yard.bearer,
    )
    assert r.status_code == 200, r.text
    trigger = r.json()["id"]
    r = yard.http.put(f"{kragle}/jobs/{trigger}", json={"enabled": True}, headers=yard.bearer)
    assert r.status_code == 200 and r.json()["do_run"] is True, r.text

    def fired() -> int | None:
        fires = yard.get(f"/api/v1/triggers/{trigger}/fires").json()["results"]
        return next((f["job_id"] for f in fires if f["outcome"] == "fired"), None)

    fired_job = wait_until(fired, timeout=15, interval=0.1, what="the one-time slot fired")
    done = yard.wait_done(fired_job)
    assert done["status"] == "complete" and done["node_states"] == {"succeeded": ["n1"]}, done
    out = yard.get(f"/api/v1/jobs/{fired_job}/output/n1/stdout").text
    assert out == "kragle\n"
    found = yard.get(f"{kragle}/jobs/byid/{trigger}", yard.bearer).json()
    assert (found["id"], found["stack"], found["schedule"]) == (trigger, stack, schedule)
    # The same trigger as an Xplenty schedule: it ran once, and completed.
    s = yard.get(f"{xp}/schedules/{trigger}", yard.xplenty).json()
    assert (s["execution_count"], s["last_run_status"]) == (1, "completed"), s
    assert (s["interval_unit"], s["next_run_at"]) == ("never", None)
    assert time.monotonic() - started < 60
