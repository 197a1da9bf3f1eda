"""Right after a server restart, and right after a run is killed, nodes are what they say.

Real ``jobyard serve`` and ``jobyard agent`` processes, with the production heartbeat
interval (5 s) so that nothing rides on a frequent beat.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.procs import Server, wait_until
from tests.e2e.test_agents import ORG, Seed, Yard, _bootstrap, states

pytestmark = pytest.mark.e2e

ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "5",
    "JOBYARD_NODE_TTL": "6",
    "JOBYARD_NODE_GRACE": "10",
    "JOBYARD_VOTING_TIMEOUT": "30",
}


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    data = tmp_path_factory.mktemp("seed")
    token, agent_token = _bootstrap(["--data-dir", str(data)])
    return Seed(data / "jobyard.db", token, agent_token)


@pytest.fixture
def herd_yard(tmp_path: Path, accounts: Seed) -> Iterator[Yard]:
    data = tmp_path / "server"
    data.mkdir()
    shutil.copy(accounts.db, data / "jobyard.db")
    with Server(data, env=ENV) as server:
        yard = Yard(server, accounts.token, accounts.agent_token, tmp_path)
        try:
            yield yard
        finally:
            yard.close_agents()
            if yard._api is not None:
                yard._api.close()


def test_jobs_submitted_right_after_a_restart_all_run(herd_yard: Yard) -> None:
    yard = herd_yard
    names = ["hd-1", "hd-2", "hd-3"]
    yard.start(*names)
    yard.server.kill()
    yard.server.start()
    started = time.monotonic()
    yard._api = None
    # From the moment it answers, while the agents reconnect: a job a second, each on all
    # three nodes (without the restart each would be over before the next one comes).
    jobs = []
    for i in range(6):
        wait_until(lambda i=i: time.monotonic() >= started + i, interval=0.01)
        jobs.append(yard.submit(command="sleep 0.1", nodes=names))
    ended = [yard.wait_job(j, timeout=60) for j in jobs]
    assert [j["status"] for j in ended] == ["complete"] * 6, [states(j) for j in ended]
    for job in ended:
        assert states(job) == dict.fromkeys(names, "succeeded"), job


def _chef_state(yard: Yard, node: str) -> dict[str, Any]:
    r = yard.api.get(f"/compat/chef/organizations/{ORG}/pushy/node_states/{node}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def test_a_node_killed_out_of_a_run_is_unavailable_until_its_agent_is_free(
    herd_yard: Yard,
) -> None:
    yard = herd_yard
    # The command ignores TERM: the agent needs its abort grace (3 s) to kill it.
    yard.start("kt-1", args=["--abort-grace", "3"])
    job_id = yard.submit(command="trap '' TERM; sleep 60", nodes=["kt-1"], run_timeout=1)
    assert yard.wait_job(job_id)["status"] == "timed_out"
    # Killed on the server's side, not yet on the node's: every view says so.
    assert yard.node("kt-1")["availability"] == "unavailable"
    assert _chef_state(yard, "kt-1")["availability"] == "unavailable"
    # Once the agent has killed it, it is available, and the next job finds it so.
    wait_until(lambda: _chef_state(yard, "kt-1")["availability"] == "available", timeout=15)
    assert yard.node("kt-1")["availability"] == "available"
    again = yard.submit(command="echo next", nodes=["kt-1"])
    job = yard.wait_job(again)
    assert states(job) == {"kt-1": "succeeded"}, job
