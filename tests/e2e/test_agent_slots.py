"""Slots: one real ``jobyard agent --slots 2`` runs two jobs at once, and each is killed
alone (stop, run_timeout) while the other goes on to succeed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e import test_agents
from tests.e2e.procs import run_cli, wait_until
from tests.e2e.test_agents import Yard, gone, kill_pids, long_command, read_pids, runs_of

pytestmark = pytest.mark.e2e
# The agent suite's fixtures: a server of this module's own, with the same accounts.
seed, shared_yard, yard = test_agents.seed, test_agents.shared_yard, test_agents.yard


def waiting_command(pidfile: Path, release: Path) -> str:
    """A shell that writes its pid, then waits until ``release`` exists, then says done."""
    return f"echo $$ > {pidfile}; while [ ! -e {release} ]; do sleep 0.05; done; echo done"


def _runs_alongside(yard: Yard, tmp_path: Path, kill: str) -> None:
    """Job A waits for a release file; job B runs on the same node beside it and is killed
    (``kill``: stop or timeout). A keeps running, then succeeds once released."""
    node = f"slots-{kill}"
    yard.start(node, args=["--slots", "2"])
    release = tmp_path / "release"
    a = yard.submit(command=waiting_command(tmp_path / "a.pid", release), nodes=[node])
    yard.wait_run(a, node, "running")
    (a_pid,) = wait_until(lambda: read_pids(tmp_path / "a.pid"), what="job A's pid")
    b_body: dict[str, object] = {"command": long_command(tmp_path / "b.pids"), "nodes": [node]}
    if kill == "timeout":
        b_body["run_timeout"] = 2
    b = yard.submit(**b_body)
    b_pids: list[int] = []
    try:
        yard.wait_run(b, node, "running")
        b_pids = wait_until(lambda: read_pids(tmp_path / "b.pids"), what="job B's pids")
        # Both at once on the one agent: A still waits while B runs.
        assert yard.job(a)["status"] == "running" and not gone(a_pid)
        if kill == "stop":
            stopped = yard.api.post(f"/api/v1/jobs/{b}/stop", json={"reason": "only B"})
            assert stopped.status_code == 200, stopped.text
        job_b = yard.wait_job(b, timeout=20)
        expected = "aborted" if kill == "stop" else "timed_out"
        assert (job_b["status"], runs_of(job_b)[node]["status"]) == (expected, expected), job_b
        for pid in b_pids:
            wait_until(lambda p=pid: gone(p), timeout=10, what="job B's processes killed")
        # A was left alone: still running, its process alive.
        assert yard.job(a)["status"] == "running" and not gone(a_pid)
        release.touch()
        job_a = yard.wait_job(a, timeout=20)
        assert runs_of(job_a)[node]["status"] == "succeeded", job_a
        assert yard.output(a, node) == "done\n"
    finally:
        release.touch()
        kill_pids(b_pids)


def test_two_slots_run_two_jobs_at_once_and_a_stop_kills_only_its_job(
    yard: Yard, tmp_path: Path
) -> None:
    _runs_alongside(yard, tmp_path, "stop")


def test_two_slots_run_two_jobs_at_once_and_a_run_timeout_kills_only_its_job(
    yard: Yard, tmp_path: Path
) -> None:
    _runs_alongside(yard, tmp_path, "timeout")


def test_node_lists_show_the_slots(yard: Yard) -> None:
    yard.start("slots-shown", args=["--slots", "3"])
    yard.start("slots-old-flag", args=["--max-jobs", "2"])  # the old name still works
    listed = {n["name"]: n for n in yard.api.get("/api/v1/nodes").json()}
    assert (listed["slots-shown"]["slots"], listed["slots-old-flag"]["slots"]) == (3, 2)
    env = {"JOBYARD_URL": yard.server.url, "JOBYARD_TOKEN": yard.token, "COLUMNS": "200"}
    table = run_cli("nodes", env=env).stdout
    row = next(line for line in table.splitlines() if "slots-shown" in line)
    assert " 3 " in row, table
