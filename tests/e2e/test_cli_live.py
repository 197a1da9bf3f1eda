"""`jobyard run` as a person sees it, in a real terminal (tmux) against a real server and
agents: output live and prefixed by node, the summary view at 200 nodes (simulated agents
from bench.swarm beside one real agent), Ctrl-C to detach, to stop, and twice to detach."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from jobyard.wire.listing import SCHEMAS
from tests.e2e.procs import (
    Agent,
    Server,
    bootstrap_admin,
    clean_env,
    jobyard_command,
    run_cli,
    start_agents,
    wait_until,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is missing: run `make tmux`"),
]
NODE = "real1"
SWARM = 199


class Terminal:
    """A tmux session of 160x50 running a shell with the given environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.name = f"jy-{uuid.uuid4().hex[:8]}"
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        subprocess.run(
            ["tmux", "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", "sh"],
            check=True,
            env=clean_env(),
        )
        self.type(f"export {exports} PS1='$ '")

    def type(self, text: str, enter: bool = True) -> None:
        keys = [text, "Enter"] if enter else [text]
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", keys[0]], check=True)
        if enter:
            subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def ctrl_c(self) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "C-c"], check=True)

    def screen(self) -> str:
        out = subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-S", "-200", "-t", self.name],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        return wait_until(
            lambda: self.screen() if text in self.screen() else "",
            timeout=timeout,
            interval=0.1,
            what=f"{text!r} on the screen",
        )

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)


@dataclass
class Yard:
    server: Server
    token: str
    agent_token: str
    tmp: Path

    def cli(self, *args: str) -> str:
        """The shell line that runs `jobyard ARGS` and then prints its exit code."""
        line = " ".join(shlex.quote(a) for a in jobyard_command(*args))
        return f"{line}; echo RC=$?"

    def api_job(self, job_id: int) -> dict[str, Any]:
        with self.server.client(self.token) as c:
            job: dict[str, Any] = c.get(f"/api/v1/jobs/{job_id}").json()
            return job

    def latest_job(self) -> dict[str, Any]:
        with self.server.client(self.token) as c:
            results = c.get("/api/v1/jobs", params={"page_size": 1}).json()["results"]
            assert results, "no job yet"
            job: dict[str, Any] = results[0]
            return job


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Server(tmp_path / "server", env={"JOBYARD_ALLOW_UNKNOWN_NODES": "0"}) as server:
        _, _, token = bootstrap_admin(server)
        agent_token = server.admin(
            "create-token", "--org", "acme", "--email", "admin@acme.test", "--role", "agent"
        )["token"]
        agent = Agent(tmp_path / "agent", server_url=server.url, token=agent_token, node=NODE)
        try:
            start_agents([agent])
            yield Yard(server, token, agent_token, tmp_path)
        finally:
            agent.stop()


@pytest.fixture
def term(yard: Yard) -> Iterator[Terminal]:
    t = Terminal({"JOBYARD_URL": yard.server.url, "JOBYARD_TOKEN": yard.token, "COLUMNS": "160"})
    try:
        yield t
    finally:
        t.close()


def gated(gate: Path, before: str, after: str) -> str:
    return f"echo {before}; while [ ! -e {gate} ]; do sleep 0.05; done; echo {after}; echo bad >&2"


def test_output_is_live_and_prefixed(yard: Yard, term: Terminal) -> None:
    gate = yard.tmp / "gate"
    term.type(yard.cli("run", "--nodes", NODE, "--", gated(gate, "first", "second")))
    screen = term.wait_for(f"{NODE} | first")
    # Printed while the job still runs: nothing was waiting for its end.
    assert yard.latest_job()["status"] == "running"
    assert f"{NODE} | second" not in screen
    gate.touch()
    screen = term.wait_for("RC=0")
    assert f"{NODE} | second" in screen and f"{NODE} ! bad" in screen
    assert "complete · 1 of 1 succeeded" in screen
    assert "┃ node" not in screen.split("complete · 1 of 1")[1]  # no table: all succeeded


def test_unknown_node_is_refused_with_the_known_ones(yard: Yard, term: Terminal) -> None:
    term.type(yard.cli("run", "--nodes", "nosuch", "--", "true"))
    screen = term.wait_for("RC=2")
    assert "no agent has ever registered as 'nosuch'" in " ".join(screen.split())
    assert f"known nodes: {NODE}" in screen


def test_ctrl_c_detaches_and_the_job_goes_on(yard: Yard, term: Terminal) -> None:
    gate = yard.tmp / "gate"
    term.type(yard.cli("run", "--nodes", NODE, "--", gated(gate, "first", "second")))
    term.wait_for(f"{NODE} | first")
    term.ctrl_c()
    term.wait_for("[d/s]")
    term.type("d")
    screen = term.wait_for("RC=130")
    job = yard.latest_job()
    assert f"jobyard job {job['id']} --follow" in screen and f"jobyard stop {job['id']}" in screen
    assert yard.api_job(job["id"])["status"] == "running"
    # Following it again shows what it printed so far, then the rest.
    term.type(yard.cli("job", str(job["id"]), "--follow", "--no-prefix"))
    term.wait_for("command:")
    gate.touch()
    screen = term.wait_for("RC=0")
    tail = screen.split("--follow --no-prefix")[-1]
    assert "\nfirst" in tail and "\nsecond" in tail


def test_ctrl_c_then_stop(yard: Yard, term: Terminal) -> None:
    gate = yard.tmp / "never"
    term.type(yard.cli("run", "--nodes", NODE, "--", gated(gate, "first", "second")))
    term.wait_for(f"{NODE} | first")
    term.ctrl_c()
    term.wait_for("[d/s]")
    term.type("s")
    screen = term.wait_for("RC=1")
    job = yard.latest_job()
    assert yard.api_job(job["id"])["status"] == "aborted"
    assert f"job {job['id']}: aborted" in screen
    assert "stopped from the command line" in screen  # the node table says why


def test_second_ctrl_c_detaches(yard: Yard, term: Terminal) -> None:
    gate = yard.tmp / "never"
    term.type(yard.cli("run", "--nodes", NODE, "--", gated(gate, "first", "second")))
    term.wait_for(f"{NODE} | first")
    term.ctrl_c()
    term.wait_for("[d/s]")
    term.ctrl_c()
    term.wait_for("RC=130")
    job = yard.latest_job()
    assert yard.api_job(job["id"])["status"] == "running"
    with yard.server.client(yard.token) as c:
        assert c.post(f"/api/v1/jobs/{job['id']}/stop").status_code == 200


@pytest.fixture
def swarm(yard: Yard) -> Iterator[subprocess.Popen[str]]:
    """SWARM simulated agents (bench.swarm) that succeed at once."""
    ws = yard.server.url.replace("http://", "ws://") + "/api/v1/agent/ws"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.swarm", "--url", ws, "--token", yard.agent_token],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        assert json.loads(proc.stdout.readline())["event"] == "started"
        proc.stdin.write(json.dumps({"cmd": "connect", "first": 0, "count": SWARM}) + "\n")
        proc.stdin.flush()
        while (msg := json.loads(proc.stdout.readline()))["event"] != "connected":
            pass
        assert msg.get("ok", SWARM) == SWARM, msg  # every simulated agent said hello

        def online() -> bool:
            with yard.server.client(yard.token) as c:
                nodes = c.get("/api/v1/nodes").json()
                return sum(1 for n in nodes if n["online"]) == SWARM + 1

        wait_until(online, timeout=60, what="every node online")
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            proc.stdin.flush()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_summary_view_at_200_nodes(
    yard: Yard, term: Terminal, swarm: subprocess.Popen[str]
) -> None:
    gate = yard.tmp / "gate"
    total = SWARM + 1
    term.type(yard.cli("run", "--count", str(total), "--", gated(gate, "first", "second")))
    screen = term.wait_for(f"{total - 1}/{total} nodes done", timeout=60)
    # A line of counts and a bar, not a row per node.
    assert f"succeeded {total - 1}" in screen and "running 1" in screen
    assert "█" in screen
    assert "sim-00150" not in screen
    gate.touch()
    screen = term.wait_for("RC=0", timeout=60)
    assert f"complete · {total} of {total} succeeded" in screen
    assert "┃ node" not in screen  # every node succeeded: no table at the end


def test_read_commands_print_json_and_yaml_matching_their_schema(yard: Yard) -> None:
    env = {"JOBYARD_URL": yard.server.url, "JOBYARD_TOKEN": yard.token}
    with yard.server.client(yard.token) as c:
        task = {"name": "deploy", "command": "true", "target": {"nodes": [NODE]}}
        task_id = c.post("/api/v1/tasks", json=task).json()["id"]
        schedule = c.post("/api/v1/schedules", json={"cron": "0 3 * * *"}).json()
        trigger = {"name": "nightly", "schedule_id": schedule["id"], "task_id": task_id}
        assert c.post("/api/v1/triggers", json=trigger).status_code == 201
    yard.server.admin("chef-key", "add", "knife", "--org", "acme", "--email", "admin@acme.test")
    ran = run_cli("run", "-q", "--nodes", NODE, "--", "sh", "-c", "exit 3", env=env)
    assert ran.returncode == 1, ran.stderr
    job_id = yard.latest_job()["id"]
    db = yard.server.db_args
    commands = {
        "jobs": ["jobs"],
        "job": ["job", str(job_id)],
        "nodes": ["nodes"],
        "tasks": ["tasks"],
        "triggers": ["triggers"],
        "trigger": ["trigger", "nightly"],
        "admin chef-key list": ["admin", "chef-key", "list", "--org", "acme", *db],
        "config show": ["config", "show", *db],
        "version": ["version"],
    }
    assert set(commands) == set(SCHEMAS)  # every read command is run here
    # The commands run side by side: each is a Python start-up, slow on a loaded machine.
    yamled = ["job", "trigger", "config show"]  # a few: the same code prints them all
    with ThreadPoolExecutor(4) as pool:
        json_runs = {
            n: pool.submit(run_cli, *a, "-o", "json", env=env) for n, a in commands.items()
        }
        # The same through JOBYARD_OUTPUT, as YAML.
        yaml_env = {**env, "JOBYARD_OUTPUT": "yaml"}
        yaml_runs = {n: pool.submit(run_cli, *commands[n], env=yaml_env) for n in yamled}
    as_json = {n: f.result() for n, f in json_runs.items()}
    as_yaml = {n: f.result() for n, f in yaml_runs.items()}
    for name, proc in as_json.items():
        assert proc.returncode == 0, (name, proc.stderr)
        data = json.loads(proc.stdout)
        schema = SCHEMAS[name].model_json_schema()
        errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(data)]
        assert not errors, (name, errors)
        if "count" in data:
            assert data["count"] >= 1 and len(data["results"]) >= 1, name
        if name in as_yaml:
            assert yaml.safe_load(as_yaml[name].stdout) == data, name
    assert json.loads(as_json["trigger"].stdout)["fires"] == []
    job = json.loads(as_json["job"].stdout)
    assert (job["outcome"], job["outcome_label"]) == ("failed", "complete · 1 of 1 failed")
    assert [e["to_status"] for e in job["history"]][-1] == "complete"
    bad = run_cli("jobs", "-o", "xml", env=env)
    assert bad.returncode == 2 and "'xml' is not one of" in bad.stderr


def test_jobyard_is_on_the_path_of_a_jobs_command(yard: Yard) -> None:
    env = {"JOBYARD_URL": yard.server.url, "JOBYARD_TOKEN": yard.token}
    script = (
        'PATH=/usr/bin:/bin:"$PATH"; command -v jobyard; "$JOBYARD_BIN" version; jobyard version'
    )
    ran = run_cli("run", "--no-prefix", "--nodes", NODE, "--", "sh", "-c", script, env=env)
    assert ran.returncode == 0, (ran.stdout, ran.stderr)
    lines = [line.strip() for line in ran.stdout.splitlines() if line.strip()]
    assert lines[0].endswith("/jobyard") and Path(lines[0]).is_absolute(), lines
    assert lines[1] == lines[2] and lines[1][0].isdigit(), lines


def test_following_a_job_that_has_output_prints_each_line_once(yard: Yard, term: Terminal) -> None:
    """`jobyard job N --follow` on a job with output already stored: the stored lines, then
    the live ones, each once (the stream's replay and the stored output do not overlap)."""
    gate = yard.tmp / "gate"
    script = (
        "for i in $(seq 1 30); do echo line-$i; done; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done; "
        "for i in $(seq 31 60); do echo line-$i; sleep 0.02; done"
    )
    with yard.server.client(yard.token) as c:
        job_id = c.post("/api/v1/jobs", json={"command": script, "nodes": [NODE]}).json()["id"]
        wait_until(
            lambda: "line-30" in c.get(f"/api/v1/jobs/{job_id}/output/{NODE}/stdout").text,
            what="the first lines stored",
        )
    term.type(yard.cli("job", str(job_id), "--follow"))
    term.wait_for(f"{NODE} | line-30")
    gate.touch()
    screen = term.wait_for("RC=0")
    lines = [line.rstrip() for line in screen.splitlines()]
    for i in range(1, 61):
        assert lines.count(f"{NODE} | line-{i}") == 1, (i, screen)
    assert lines.count(f"job {job_id}: complete · 1 of 1 succeeded") == 1, screen
