"""Chef Push Jobs' ``file``: the agent writes it for the command and names it in the env."""

from __future__ import annotations

import base64
from pathlib import Path

from jobyard.agent.journal import Journal
from jobyard.agent.runner import Agent, AgentConfig, Run
from jobyard.wire import agent as wire


def _agent(tmp_path: Path) -> Agent:
    return Agent(AgentConfig(server="http://x", token="t", name="n1", state_dir=tmp_path))


def test_raw_and_base64_files_are_written(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    raw = Run(1, 0, wire.Commit(job=1, attempt=0, file="raw:hello\n"), Journal(tmp_path))
    assert (path := agent._job_file(raw, tmp_path)) is not None
    assert path.read_bytes() == b"hello\n"
    encoded = base64.b64encode(b"\x00\x01bin").decode()
    b64 = Run(2, 0, wire.Commit(job=2, attempt=0, file=f"base64:{encoded}"), Journal(tmp_path))
    assert (path := agent._job_file(b64, tmp_path)) is not None
    assert path.read_bytes() == b"\x00\x01bin"


def test_no_file_no_path(tmp_path: Path) -> None:
    assert (
        _agent(tmp_path)._job_file(
            Run(1, 0, wire.Commit(job=1, attempt=0), Journal(tmp_path)), tmp_path
        )
        is None
    )
