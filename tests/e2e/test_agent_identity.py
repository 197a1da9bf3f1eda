"""An agent keeps one journal per server identity (real ``jobyard serve`` and agents)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from tests.e2e.procs import Agent
from tests.e2e.test_agents import Seed, Yard, _bootstrap, states, yard_at

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def accounts(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    data = tmp_path_factory.mktemp("seed")
    token, agent_token = _bootstrap(["--data-dir", str(data)])
    return Seed(data / "jobyard.db", token, agent_token)


def _agent(yard: Yard, data_dir: Path) -> Agent:
    agent = Agent(
        data_dir,
        server_url=yard.server.url,
        token=yard.agent_token,
        node="ident-1",
        args=["--abort-grace", "1"],
    )
    yard.agents.append(agent)
    return agent


def test_an_agent_moved_to_a_fresh_server_runs_its_job_1(tmp_path: Path, accounts: Seed) -> None:
    agent_dir = tmp_path / "agent"  # the same node, the same state directory, twice
    with contextlib.ExitStack() as stack:
        x = stack.enter_context(yard_at(tmp_path / "x", accounts))
        y = stack.enter_context(yard_at(tmp_path / "y", accounts))
        first = _agent(x, agent_dir).start()
        job_x = x.submit(command="echo on x", nodes=["ident-1"])
        assert states(x.wait_job(job_x)) == {"ident-1": "succeeded"}
        first.stop()
        # Server y has a database of its own: its job ids start from 1 again.
        _agent(y, agent_dir).start()
        job_y = y.submit(command="echo on y", nodes=["ident-1"])
        assert job_y == job_x
        job = y.wait_job(job_y)
        assert states(job) == {"ident-1": "succeeded"}, job
        assert y.output(job_y, "ident-1") == "on y\n"
        journals = sorted(p.name for p in (agent_dir / "state" / "servers").iterdir())
        assert len(journals) == 2, journals
