"""Real ``jobyard serve`` and real ``jobyard agent`` processes: Chef Push Jobs semantics.

Most scenarios share one server (module scope) and start their own agents, named after
the test so that nothing leaks between them; the scenarios that kill or restart the
server get their own. The organization, its admin and the tokens are made once with
``jobyard admin`` in a template database that each server starts from (a copy).

Heartbeats, TTL, grace, voting timeout and abort grace are small (environment of the
server process). Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.procs import Agent, Server, run_cli, start_agents, wait_until

pytestmark = pytest.mark.e2e

HEARTBEAT = 0.2
TTL = 1.0
GRACE = 2.0
SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": str(HEARTBEAT),
    "JOBYARD_NODE_TTL": str(TTL),
    "JOBYARD_NODE_GRACE": str(GRACE),
    "JOBYARD_VOTING_TIMEOUT": "4",
    "JOBYARD_ABORT_GRACE": "1",
}
ORG, EMAIL = "acme", "admin@acme.test"
TERMINAL = ("complete", "quorum_failed", "timed_out", "aborted")


# -- accounts, made once


@dataclass(frozen=True)
class Seed:
    db: Path  # a SQLite database with the organization, its admin and two tokens
    token: str
    agent_token: str


def _bootstrap(db_args: Sequence[str], env: dict[str, str] | None = None) -> tuple[str, str]:
    """Organization, admin, an admin token and an agent token; returns the two tokens."""

    def admin(*args: str) -> Any:
        import json

        proc = run_cli("admin", *args, *db_args, "--json", env=env, check=True)
        return json.loads(proc.stdout)

    admin("create-org", ORG)
    admin("create-user", "--org", ORG, "--email", EMAIL, "--role", "admin")
    tokens: dict[str, str] = {}

    def token(key: str, *extra: str) -> None:
        tokens[key] = admin("create-token", "--org", ORG, "--email", EMAIL, *extra)["token"]

    threads = [
        threading.Thread(target=token, args=("user",)),
        threading.Thread(target=token, args=("agent", "--role", "agent", "--name", "agents")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return tokens["user"], tokens["agent"]


async def _bootstrap_in_process(database_url: str) -> tuple[str, str]:
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
        await accounts.create_user(svc, ORG, EMAIL, Role.ADMIN)
        user = await accounts.create_token(svc, ORG, EMAIL)
        agent = await accounts.create_token(svc, ORG, EMAIL, role=Role.AGENT)
        return user.secret, agent.secret
    finally:
        await db.close()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    data = tmp_path_factory.mktemp("seed")
    token, agent_token = _bootstrap(["--data-dir", str(data)])
    return Seed(data / "jobyard.db", token, agent_token)


# -- a server with its agents


@dataclass
class Yard:
    server: Server
    token: str
    agent_token: str
    root: Path
    agents: list[Agent] = field(default_factory=list)
    _api: httpx.Client | None = None

    @property
    def api(self) -> httpx.Client:
        if self._api is None:
            self._api = self.server.client(self.token)
        return self._api

    def agent(
        self,
        node: str,
        *,
        tags: Sequence[str] = (),
        cluster: str | None = None,
        allow: Sequence[str] = (),
        args: Sequence[str] = (),
        server_url: str | None = None,
    ) -> Agent:
        a = Agent(
            self.root / f"agent-{node}",
            server_url=server_url or self.server.url,
            token=self.agent_token,
            node=node,
            tags=tags,
            cluster=cluster,
            allow=allow,
            args=["--abort-grace", "1", *args],
        )
        self.agents.append(a)
        return a

    def start(self, *names: str, **kwargs: Any) -> list[Agent]:
        agents = [self.agent(n, **kwargs) for n in names]
        start_agents(agents)
        return agents

    def close_agents(self) -> None:
        for a in self.agents:
            if a.running:
                a.kill()
            a.close()
        self.agents.clear()

    # -- the native API
    def submit(self, **body: Any) -> int:
        r = self.api.post("/api/v1/jobs", json=body)
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def job(self, job_id: int) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def wait_job(self, job_id: int, *statuses: str, timeout: float = 20.0) -> dict[str, Any]:
        statuses = statuses or TERMINAL
        last: dict[str, Any] = {}

        def done() -> dict[str, Any] | None:
            nonlocal last
            last = self.job(job_id)
            return last if last["status"] in statuses else None

        try:
            return wait_until(done, timeout=timeout, interval=0.05, what=f"job in {statuses}")
        except TimeoutError:
            raise AssertionError(f"job {job_id} never reached {statuses}: {last}") from None

    def wait_run(
        self, job_id: int, node: str, *statuses: str, timeout: float = 20.0
    ) -> dict[str, Any]:
        last: dict[str, Any] = {}

        def done() -> dict[str, Any] | None:
            nonlocal last
            last = runs_of(self.job(job_id))[node]
            return last if last["status"] in statuses else None

        try:
            return wait_until(done, timeout=timeout, what=f"{node} in {statuses}")
        except TimeoutError:
            raise AssertionError(f"run of {node} never reached {statuses}: {last}") from None

    def node(self, name: str) -> dict[str, Any]:
        r = self.api.get(f"/api/v1/nodes/{name}")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    def output(self, job_id: int, node: str, stream: str = "stdout") -> str:
        r = self.api.get(f"/api/v1/jobs/{job_id}/output/{node}/{stream}")
        assert r.status_code == 200, r.text
        return r.text

    def run_history(self, job_id: int, node: str) -> list[str]:
        """Every status the node's run went through, from the job's event log."""
        events = sse_events(self, job_id)
        return [
            e["data"]["to_status"]
            for e in events
            if e["event"] == "node_run.status" and e["data"]["node"] == node
        ]


def runs_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["node"]: r for r in job["node_runs"]}


def states(job: dict[str, Any]) -> dict[str, str]:
    return {r["node"]: r["status"] for r in job["node_runs"]}


def _start_server(root: Path, seed: Seed, database_url: str | None = None) -> Server:
    data = root / "server"
    data.mkdir(parents=True)
    if database_url is None:
        shutil.copy(seed.db, data / "jobyard.db")
    server = Server(data, database_url=database_url, env=SERVER_ENV)
    server.start()
    return server


@contextlib.contextmanager
def yard_at(root: Path, seed: Seed) -> Iterator[Yard]:
    server = _start_server(root, seed)
    yard = Yard(server, seed.token, seed.agent_token, root)
    try:
        yield yard
    finally:
        yard.close_agents()
        if yard._api is not None:
            yard._api.close()
        server.close()


@pytest.fixture(scope="module")
def shared_yard(tmp_path_factory: pytest.TempPathFactory, seed: Seed) -> Iterator[Yard]:
    with yard_at(tmp_path_factory.mktemp("yard"), seed) as yard:
        yield yard


@pytest.fixture
def yard(shared_yard: Yard) -> Iterator[Yard]:
    """The shared server; the test's agents are stopped afterwards."""
    try:
        yield shared_yard
    finally:
        shared_yard.close_agents()


@pytest.fixture
def own_yard(tmp_path: Path, seed: Seed) -> Iterator[Yard]:
    """A server of the test's own (it gets killed or restarted)."""
    with yard_at(tmp_path, seed) as yard:
        yield yard


# -- processes the commands leave behind


def gone(pid: int) -> bool:
    """True once ``pid`` no longer runs. A zombie counts as gone: the process is dead and
    only waits for a reaper (PID 1 of a container may never reap orphans)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except (OSError, ValueError):
        return []


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def long_command(pidfile: Path, seconds: int = 60) -> str:
    """A shell that starts a child in its process group, writes both pids, and waits."""
    return f"sleep {seconds} & echo $$ $! > {pidfile}; wait"


# -- server-sent events


def parse_sse(text: str) -> list[dict[str, Any]]:
    import json

    out = []
    for block in text.split("\n\n"):
        item: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            if key == "id":
                item["id"] = int(value)
            elif key == "event":
                item["event"] = value
            elif key == "data":
                item["data"] = json.loads(value)
        if "data" in item:
            out.append(item)
    return out


def sse_events(yard: Yard, job_id: int, last_event_id: int | None = None) -> list[dict[str, Any]]:
    """The job's stream read to its end (the stream ends after the job's final status)."""
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    with yard.api.stream(
        "GET", f"/api/v1/jobs/{job_id}/events", headers=headers, timeout=30.0
    ) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(r.read().decode())


# ---------------------------------------------------------------- scenarios


def check_three_nodes_complete(yard: Yard, prefix: str) -> None:
    names = [f"{prefix}-{i}" for i in range(1, 4)]
    yard.start(*names)
    job_id = yard.submit(
        command='echo "hello from $JOBYARD_NODE_NAME job $CHEF_PUSH_JOB_ID"; echo oops >&2',
        nodes=names,
        run_timeout=30,
    )
    job = yard.wait_job(job_id)
    assert job["status"] == "complete", job
    assert states(job) == dict.fromkeys(names, "succeeded")
    for name in names:
        run = runs_of(job)[name]
        assert run["exit_code"] == 0
        assert run["started_at"] and run["finished_at"]
        assert yard.output(job_id, name) == f"hello from {name} job {job_id}\n"
        assert yard.output(job_id, name, "stderr") == "oops\n"
    history = yard.api.get(f"/api/v1/jobs/{job_id}/history").json()["results"]
    assert [e["to_status"] for e in history if e["type"] == "job.status"] == [
        "new",
        "voting",
        "running",
        "complete",
    ]


def test_a_job_on_three_nodes_completes_with_each_nodes_output(yard: Yard) -> None:
    check_three_nodes_complete(yard, "three")


def test_a_busy_node_nacks(yard: Yard, tmp_path: Path) -> None:
    yard.start("busy-1", "busy-2")
    pidfile = tmp_path / "pids"
    long_job = yard.submit(command=long_command(pidfile), nodes=["busy-1"], run_timeout=60)
    yard.wait_run(long_job, "busy-1", "running")
    # busy-1 runs one job already (one slot): it refuses; quorum 1 lets busy-2 run alone.
    job_id = yard.submit(command="echo ok", nodes=["busy-1", "busy-2"], quorum=1)
    job = yard.wait_job(job_id)
    assert job["status"] == "complete", job
    assert states(job) == {"busy-1": "nacked", "busy-2": "succeeded"}
    assert runs_of(job)["busy-1"]["reason"] == "busy"
    # The long job was not disturbed.
    assert states(yard.job(long_job)) == {"busy-1": "running"}
    yard.api.post(f"/api/v1/jobs/{long_job}/stop")
    yard.wait_job(long_job, "aborted")


def test_quorum_failure_leaves_the_ready_nodes_was_ready(yard: Yard) -> None:
    *_, qf3 = yard.start("qf-1", "qf-2", "qf-3")
    # qf-3's machine dies: the server still counts it online until TTL + grace pass.
    qf3.kill()
    job_id = yard.submit(command="echo never", nodes=["qf-1", "qf-2", "qf-3"])
    job = yard.wait_job(job_id, timeout=TTL + GRACE + 10)
    assert job["status"] == "quorum_failed", job
    assert states(job) == {"qf-1": "was_ready", "qf-2": "was_ready", "qf-3": "unavailable"}
    assert yard.output(job_id, "qf-1") == ""
    # The abort released the nodes that had said ready: they take the next job at once.
    next_job = yard.submit(command="echo next", nodes=["qf-1", "qf-2"])
    assert states(yard.wait_job(next_job)) == {"qf-1": "succeeded", "qf-2": "succeeded"}


def test_a_never_seen_node_fails_the_quorum_at_once(yard: Yard) -> None:
    yard.start("qg-1")
    job_id = yard.submit(command="echo never", nodes=["qg-1", "qg-ghost"])
    job = yard.wait_job(job_id)
    assert job["status"] == "quorum_failed", job
    st = states(job)
    assert st["qg-ghost"] == "unavailable"
    # No run is left behind in a non-terminal state once the job has ended.
    assert st["qg-1"] not in ("new", "ready", "running"), st
    next_job = yard.submit(command="echo next", nodes=["qg-1"])
    assert states(yard.wait_job(next_job)) == {"qg-1": "succeeded"}


def test_a_command_off_the_allowlist_is_nacked(yard: Yard) -> None:
    yard.start("allow-1", allow=["echo *"])
    ok = yard.submit(command="echo allowed", nodes=["allow-1"])
    assert states(yard.wait_job(ok)) == {"allow-1": "succeeded"}
    refused = yard.submit(command="touch /tmp/jobyard-should-not-exist", nodes=["allow-1"])
    job = yard.wait_job(refused)
    assert job["status"] == "quorum_failed", job
    run = runs_of(job)["allow-1"]
    assert run["status"] == "nacked"
    assert "allowlist" in run["reason"]
    # argv jobs are matched in their shell-quoted form.
    argv = yard.submit(argv=["echo", "two words"], nodes=["allow-1"])
    assert states(yard.wait_job(argv)) == {"allow-1": "succeeded"}
    assert yard.output(argv, "allow-1") == "two words\n"


def test_run_timeout_kills_the_process_group(yard: Yard, tmp_path: Path) -> None:
    yard.start("to-1", "to-2")
    pidfiles = {n: tmp_path / f"{n}.pids" for n in ("to-1", "to-2")}
    job_id = yard.submit(
        command=long_command(tmp_path / "$JOBYARD_NODE_NAME.pids"),
        nodes=["to-1", "to-2"],
        run_timeout=2,
    )
    yard.wait_run(job_id, "to-1", "running")
    pids = {n: wait_until(lambda p=p: read_pids(p), what=f"{p}") for n, p in pidfiles.items()}
    try:
        job = yard.wait_job(job_id, timeout=15)
        assert job["status"] == "timed_out", job
        assert states(job) == {"to-1": "timed_out", "to-2": "timed_out"}
        started = runs_of(job)["to-1"]["started_at"]
        assert started is not None
        # The shell and its child (same process group) are gone, killed by the agents.
        for node, (shell, child) in pids.items():
            wait_until(lambda s=shell, c=child: gone(s) and gone(c), timeout=10, what=node)
    finally:
        kill_pids([p for both in pids.values() for p in both])


def test_stop_aborts_and_the_processes_are_gone(yard: Yard, tmp_path: Path) -> None:
    yard.start("stop-1", "stop-2")
    job_id = yard.submit(
        command=long_command(tmp_path / "$JOBYARD_NODE_NAME.pids"), nodes=["stop-1", "stop-2"]
    )
    yard.wait_run(job_id, "stop-1", "running")
    yard.wait_run(job_id, "stop-2", "running")
    pids = [wait_until(lambda n=n: read_pids(tmp_path / f"{n}.pids")) for n in ("stop-1", "stop-2")]
    try:
        r = yard.api.post(f"/api/v1/jobs/{job_id}/stop", json={"reason": "enough"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "aborted"
        job = yard.job(job_id)
        assert states(job) == {"stop-1": "aborted", "stop-2": "aborted"}
        for shell, child in pids:
            wait_until(lambda s=shell, c=child: gone(s) and gone(c), timeout=10, what="kill")
        # Stopping twice is a conflict, not a second abort.
        assert yard.api.post(f"/api/v1/jobs/{job_id}/stop").status_code == 409
    finally:
        kill_pids([p for both in pids for p in both])


def test_an_agent_killed_mid_run_crashes_its_run_within_ttl_and_grace(
    yard: Yard, tmp_path: Path
) -> None:
    (agent,) = yard.start("kill-1")
    pidfile = tmp_path / "pids"
    job_id = yard.submit(command=long_command(pidfile), nodes=["kill-1"])
    yard.wait_run(job_id, "kill-1", "running")
    pids = wait_until(lambda: read_pids(pidfile))
    try:
        agent.kill()
        killed = time.monotonic()
        run = yard.wait_run(job_id, "kill-1", "crashed", timeout=TTL + GRACE + 5)
        elapsed = time.monotonic() - killed
        # TTL + grace, plus one check interval and the time to read the API.
        assert elapsed < TTL + GRACE + 2.0, elapsed
        assert "heartbeat" in run["reason"]
        assert yard.wait_job(job_id)["status"] == "complete"
        assert yard.node("kill-1")["status"] == "offline"
    finally:
        kill_pids(pids)


def test_an_agent_stopped_mid_run_aborts_its_command(yard: Yard, tmp_path: Path) -> None:
    (agent,) = yard.start("term-1")
    pidfile = tmp_path / "pids"
    job_id = yard.submit(command=long_command(pidfile), nodes=["term-1"])
    yard.wait_run(job_id, "term-1", "running")
    pids = wait_until(lambda: read_pids(pidfile))
    try:
        assert agent.stop() == 0  # SIGTERM: the agent kills its commands and says goodbye
        assert all(gone(p) for p in pids)
        job = yard.wait_job(job_id)
        run = runs_of(job)["term-1"]
        # Always the same answer, whichever reaches the server first (result or goodbye).
        assert (run["status"], run["reason"]) == ("aborted", "aborted on the node"), run
        wait_until(lambda: yard.node("term-1")["status"] == "offline", what="offline")
    finally:
        kill_pids(pids)


def test_an_agent_frozen_past_grace_crashes_its_run_then_comes_back_online(
    yard: Yard, tmp_path: Path
) -> None:
    (agent,) = yard.start("frozen-1")
    pidfile = tmp_path / "pids"
    job_id = yard.submit(command=long_command(pidfile), nodes=["frozen-1"])
    yard.wait_run(job_id, "frozen-1", "running")
    pids = wait_until(lambda: read_pids(pidfile))
    try:
        agent.signal(signal.SIGSTOP)  # the machine stalls; its TCP connection stays open
        try:
            run = yard.wait_run(job_id, "frozen-1", "crashed", timeout=TTL + GRACE + 5)
            assert "heartbeat" in run["reason"]
            assert yard.node("frozen-1")["status"] == "offline"
        finally:
            agent.signal(signal.SIGCONT)
        # Heartbeats resume on the old connection: the node must not stay offline for good,
        # and the command of its crashed run must not go on running.
        wait_until(lambda: yard.node("frozen-1")["status"] == "online", timeout=10, what="online")
        for pid in pids:
            wait_until(lambda p=pid: gone(p), timeout=10, what=f"{pid} aborted")
        wait_until(lambda: not yard.node("frozen-1")["busy"], what="frozen-1 free")
        again = yard.submit(command="echo back", nodes=["frozen-1"])
        assert states(yard.wait_job(again)) == {"frozen-1": "succeeded"}
    finally:
        kill_pids(pids)


def test_an_agent_restarted_mid_run_crashes_its_run_and_never_runs_it_again(
    yard: Yard, tmp_path: Path
) -> None:
    (agent,) = yard.start("restart-1")
    ran = tmp_path / "ran"
    pidfile = tmp_path / "pids"
    job_id = yard.submit(command=f"echo ran >> {ran}; {long_command(pidfile)}", nodes=["restart-1"])
    yard.wait_run(job_id, "restart-1", "running")
    pids = wait_until(lambda: read_pids(pidfile))
    before = yard.node("restart-1")["incarnation"]
    try:
        agent.kill()  # no goodbye: the server learns of the restart from the new hello
        agent.start()
        assert yard.node("restart-1")["incarnation"] != before
        job = yard.wait_job(job_id)
        assert job["status"] == "complete", job
        run = runs_of(job)["restart-1"]
        assert run["status"] == "crashed", run
        assert run["reason"] == "the agent restarted"
        assert "succeeded" not in yard.run_history(job_id, "restart-1")
        # The new incarnation killed what the old one left running, and ran nothing again.
        for pid in pids:
            wait_until(lambda p=pid: gone(p), timeout=10, what=f"orphan {pid}")
        assert ran.read_text() == "ran\n"
        # The node takes new work.
        again = yard.submit(command="echo again", nodes=["restart-1"])
        assert states(yard.wait_job(again)) == {"restart-1": "succeeded"}
    finally:
        kill_pids(pids)


def test_output_files_are_uploaded_and_downloadable(yard: Yard) -> None:
    import hashlib

    yard.start("files-1")
    job_id = yard.submit(
        command=(
            'mkdir -p "$JOBYARD_OUTPUT_DIR/sub" && echo report > "$JOBYARD_OUTPUT_DIR/report.txt"'
            " && printf 'bin\\000ary' > \"$JOBYARD_OUTPUT_DIR/sub/data.bin\""
        ),
        nodes=["files-1"],
    )
    assert yard.wait_job(job_id)["status"] == "complete"
    files = yard.api.get(f"/api/v1/jobs/{job_id}/files").json()
    by_name = {f["name"]: f for f in files}
    assert set(by_name) == {"report.txt", "sub/data.bin"}
    expected = {"report.txt": b"report\n", "sub/data.bin": b"bin\x00ary"}
    for name, content in expected.items():
        f = by_name[name]
        assert f["node"] == "files-1" and f["size"] == len(content)
        assert f["md5"] == hashlib.md5(content).hexdigest()
        r = yard.api.get(f["download_url"])
        assert r.status_code == 200 and r.content == content


def test_a_tag_selector_with_a_count_picks_available_nodes(yard: Yard, tmp_path: Path) -> None:
    agents = yard.start("tag-1", "tag-2", "tag-3", "tag-4", tags=["web-tag"])
    agents[3].stop()  # tag-4 said goodbye: offline
    wait_until(lambda: yard.node("tag-4")["status"] == "offline", what="tag-4 offline")
    pidfile = tmp_path / "pids"
    long_job = yard.submit(command=long_command(pidfile), nodes=["tag-1"])
    yard.wait_run(long_job, "tag-1", "running")
    wait_until(lambda: yard.node("tag-1")["busy"], what="tag-1 busy")
    try:
        job_id = yard.submit(command="echo picked", tags=["web-tag"], count=2)
        job = yard.wait_job(job_id)
        assert job["status"] == "complete", job
        assert states(job) == {"tag-2": "succeeded", "tag-3": "succeeded"}
    finally:
        yard.api.post(f"/api/v1/jobs/{long_job}/stop")
        kill_pids(read_pids(pidfile))


def test_a_cluster_becomes_available_and_runs_a_job(yard: Yard) -> None:
    r = yard.api.post("/api/v1/clusters", json={"name": "pool", "nodes": 2})
    assert r.status_code == 201, r.text
    cluster = r.json()
    assert cluster["status"] == "pending"
    yard.start("pool-1", "pool-2", cluster="pool")

    def available() -> bool:
        return bool(yard.api.get(cluster["url"]).json()["status"] == "available")

    wait_until(available, timeout=10, what="cluster available")
    history = yard.api.get(f"{cluster['url']}/history").json()["results"]
    assert [e["to_status"] for e in history] == ["pending", "creating", "available"]
    job_id = yard.submit(command="echo on the pool", cluster="pool")
    job = yard.wait_job(job_id)
    assert job["status"] == "complete", job
    assert states(job) == {"pool-1": "succeeded", "pool-2": "succeeded"}
    started = [e for e in sse_events(yard, job_id) if e["event"] == "cluster.job_started"]
    assert len(started) == 1 and started[0]["data"]["subject_id"] == cluster["id"]


def test_the_job_event_stream_delivers_transitions_and_replays(yard: Yard) -> None:
    yard.start("sse-1")
    job_id = yard.submit(command="sleep 0.5; echo done", nodes=["sse-1"])
    events = sse_events(yard, job_id)  # follows live until the job's final status
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    job_moves = [e["data"]["to_status"] for e in events if e["event"] == "job.status"]
    assert job_moves == ["new", "voting", "running", "complete"]
    run_moves = [e["data"]["to_status"] for e in events if e["event"] == "node_run.status"]
    assert run_moves == ["ready", "running", "succeeded"]
    # Reconnecting with Last-Event-ID replays only what came after.
    running = next(
        e for e in events if e["event"] == "job.status" and e["data"]["to_status"] == "running"
    )
    tail = sse_events(yard, job_id, last_event_id=running["id"])
    assert [e["id"] for e in tail] == [e["id"] for e in events if e["id"] > running["id"]]


def test_a_connection_cut_and_restored_within_grace_keeps_the_run(
    yard: Yard, tmp_path: Path
) -> None:
    from tests.e2e.procs import TcpProxy

    proxy = TcpProxy(yard.server.port)
    try:
        (agent,) = [yard.agent("cut-1", server_url=proxy.url)]
        start_agents([agent])
        marker = tmp_path / "go"
        job_id = yard.submit(
            command=f"while [ ! -e {marker} ]; do sleep 0.05; done; echo finished",
            nodes=["cut-1"],
        )
        yard.wait_run(job_id, "cut-1", "running")
        assert proxy.cut() == 1
        wait_until(lambda: agent.connections() >= 2, timeout=TTL + GRACE + 5, what="reconnect")
        marker.touch()
        job = yard.wait_job(job_id)
        assert job["status"] == "complete", job
        assert states(job) == {"cut-1": "succeeded"}
        assert yard.run_history(job_id, "cut-1") == ["ready", "running", "succeeded"]
        assert yard.output(job_id, "cut-1") == "finished\n"
        node_moves = yard.api.get("/api/v1/nodes/cut-1/history").json()["results"]
        assert [e["to_status"] for e in node_moves] == ["online"], node_moves
    finally:
        proxy.close()


def test_a_job_stopped_while_its_agent_is_cut_off_is_killed_on_reconnect(
    yard: Yard, tmp_path: Path
) -> None:
    from tests.e2e.procs import TcpProxy

    proxy = TcpProxy(yard.server.port)
    pidfile = tmp_path / "pids"
    try:
        agent = yard.agent("away-1", server_url=proxy.url)
        start_agents([agent])
        job_id = yard.submit(command=long_command(pidfile), nodes=["away-1"])
        yard.wait_run(job_id, "away-1", "running")
        pids = wait_until(lambda: read_pids(pidfile))
        with proxy.down():
            r = yard.api.post(f"/api/v1/jobs/{job_id}/stop")
            assert r.json()["status"] == "aborted"
            # The abort could not reach the node: its command still runs.
            assert not any(gone(p) for p in pids)
        # Back within grace: the agent reports what it runs, the server says abort.
        for pid in pids:
            wait_until(lambda p=pid: gone(p), timeout=10, what=f"{pid} killed after reconnect")
        # The slot is free once the agent has wrapped the run up (its heartbeat says so).
        wait_until(lambda: not yard.node("away-1")["busy"], what="away-1 free")
        again = yard.submit(command="echo free", nodes=["away-1"])
        assert states(yard.wait_job(again)) == {"away-1": "succeeded"}
    finally:
        proxy.close()
        kill_pids(read_pids(pidfile))


def test_a_slot_held_for_a_failed_vote_is_released_after_a_reconnect(yard: Yard) -> None:
    from tests.e2e.procs import TcpProxy

    proxy = TcpProxy(yard.server.port)
    try:
        held = yard.agent("held-1", server_url=proxy.url)
        dead = yard.agent("held-2")
        start_agents([held, dead])
        dead.kill()  # the server counts it online until TTL + grace pass
        job_id = yard.submit(command="echo never", nodes=["held-1", "held-2"])
        yard.wait_run(job_id, "held-1", "ready")  # held-1 keeps a slot for the job
        with proxy.down():
            # The quorum fails while held-1 is cut off: its abort is lost.
            assert yard.wait_job(job_id, timeout=TTL + GRACE + 10)["status"] == "quorum_failed"
        wait_until(lambda: held.connections() >= 2, timeout=10, what="reconnect")
        # Not "busy" forever: on reconnect the server releases the slot.
        again = yard.submit(command="echo free", nodes=["held-1"])
        assert states(yard.wait_job(again)) == {"held-1": "succeeded"}
    finally:
        proxy.close()


def test_the_server_killed_mid_run_and_restarted_ends_the_job_once(
    own_yard: Yard, tmp_path: Path
) -> None:
    yard = own_yard
    yard.start("crash-1", "crash-2")
    ran = tmp_path / "ran"
    marker = tmp_path / "go"
    job_id = yard.submit(
        command=(
            f"echo $JOBYARD_NODE_NAME >> {ran}; "
            f"while [ ! -e {marker} ]; do sleep 0.05; done; echo finished; "
            'echo "$JOBYARD_NODE_NAME" > "$JOBYARD_OUTPUT_DIR/report.txt"'
        ),
        nodes=["crash-1", "crash-2"],
    )
    yard.wait_run(job_id, "crash-1", "running")
    yard.wait_run(job_id, "crash-2", "running")
    yard.server.kill()
    # The commands finish while the server is down: the results wait in the agents' journals.
    marker.touch()
    time_down = time.monotonic()
    yard.server.restart()
    yard._api = None
    job = yard.wait_job(job_id)
    assert job["status"] == "complete", (job, time.monotonic() - time_down)
    assert states(job) == {"crash-1": "succeeded", "crash-2": "succeeded"}, (job, yard.server.log())
    assert sorted(ran.read_text().split()) == ["crash-1", "crash-2"]
    for node in ("crash-1", "crash-2"):
        assert yard.run_history(job_id, node) == ["ready", "running", "succeeded"]
        # Printed while the server was down: kept by the agent and sent after reconnecting.
        assert yard.output(job_id, node) == "finished\n"
    # Likewise the output files the commands left while the server was down.
    files = yard.api.get(f"/api/v1/jobs/{job_id}/files").json()
    assert sorted((f["node"], f["name"]) for f in files) == [
        ("crash-1", "report.txt"),
        ("crash-2", "report.txt"),
    ]
    for f in files:
        assert yard.api.get(f["download_url"]).text == f"{f['node']}\n"
    # New work after the restart.
    again = yard.submit(command="echo again", nodes=["crash-1", "crash-2"])
    assert yard.wait_job(again)["status"] == "complete"


def test_three_nodes_complete_on_postgresql(tmp_path: Path, pg_url: str, seed: Seed) -> None:
    # The CLI's bootstrap is covered on SQLite; here the same accounts are made in-process,
    # which is quicker than four more CLI processes.
    token, agent_token = asyncio.run(_bootstrap_in_process(pg_url))
    server = _start_server(tmp_path, seed, database_url=pg_url)
    try:
        yard = Yard(server, token, agent_token, tmp_path)
        try:
            check_three_nodes_complete(yard, "pg")
        finally:
            yard.close_agents()
    finally:
        server.close()


def test_jobyard_run_exit_codes(yard: Yard) -> None:
    # Four jobs at once on the same nodes: let each agent run them side by side.
    yard.start("cli-1", "cli-2", args=["--slots", "4"])
    env = {"JOBYARD_URL": yard.server.url, "JOBYARD_TOKEN": yard.token}
    cases = {
        "all succeed": (["--nodes", "cli-1,cli-2", "--", "true"], 0),
        "one fails": (
            ["--nodes", "cli-1,cli-2", "--", "sh", "-c", "test $JOBYARD_NODE_NAME = cli-1"],
            1,
        ),
        # An unavailable node is fine for knife-push's rule once the quorum is met...
        "unavailable": (["--nodes", "cli-1,cli-ghost", "--quorum", "1", "--", "true"], 0),
        # ...but not when the quorum fails.
        "quorum failed": (["--nodes", "cli-1,cli-ghost", "--", "true"], 1),
    }
    results: dict[str, Any] = {}

    def run(case: str) -> None:
        results[case] = run_cli("run", "-q", *cases[case][0], env=env)

    threads = [threading.Thread(target=run, args=(c,)) for c in cases]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for case, (_, code) in cases.items():
        proc = results[case]
        assert proc.returncode == code, (case, proc.stdout, proc.stderr)
