"""The README, walked as a newcomer would: its first-job block runs as written against a
real `jobyard up` (with its local agent), and the job it starts succeeds on this machine."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.procs import Process, clean_env, jobyard_command, wait_until

pytestmark = pytest.mark.e2e
README = Path(__file__).resolve().parents[2] / "README.md"


class UpWithAgent(Process):
    """``jobyard up`` as `make up` runs it: server, first admin, local agent."""

    name = "up"

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir)
        self.port = port

    def command(self) -> list[str]:
        return jobyard_command("up", "--data-dir", str(self.data_dir), "--port", str(self.port))

    def ready(self) -> bool:
        return "token:" in self.log()


def section_blocks(title: str) -> list[str]:
    text = README.read_text()
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert found, f"no sh block under {title!r}"
    return found


def section_block(title: str) -> str:
    return section_blocks(title)[0]


def test_the_first_job_block_runs_as_written(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with UpWithAgent(tmp_path / "up", port) as up:
        token = re.search(r"token:\s+(\S+)", up.log())
        assert token, up.log()
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token.group(1)}"}

        def agent_online() -> bool:
            nodes = httpx.get(f"{url}/api/v1/nodes", headers=headers).json()
            return any(n["name"] == socket.gethostname() and n["online"] for n in nodes)

        wait_until(agent_online, timeout=30, what="the local agent")
        block = section_block("A first job with curl")
        # The block as written, with the token `make up` printed and this server's port.
        script = block.replace("TOKEN=...", f"TOKEN={token.group(1)}").replace(
            "http://127.0.0.1:8400", url
        )
        ran = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
        )
        assert ran.returncode == 0, (ran.stdout, ran.stderr)
        assert '"email":"admin@localhost"' in ran.stdout
        assert '"command":"uptime"' in ran.stdout and "problem" not in ran.stdout

        def finished() -> dict[str, object] | None:
            job: dict[str, object] = httpx.get(f"{url}/api/v1/jobs/1", headers=headers).json()
            return job if job["status"] == "complete" else None

        job = wait_until(finished, timeout=60, what="the first job to finish")
        assert job["outcome"] == "succeeded", job


def test_adding_machines_and_the_cli_blocks_run_as_written(tmp_path: Path) -> None:
    """The agent block (two agents, web1 and web2, here on this machine) and the CLI block,
    run in the directory where `jobyard up` keeps its files, as the README says."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    make_up, agents, cli, _ = section_blocks("Running commands on machines")
    assert "make up ARGS=" in make_up
    env = clean_env(
        {"HOME": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    )
    with UpWithAgent(tmp_path / ".jobyard", port) as up:
        started = subprocess.Popen(
            [
                "bash",
                "-euo",
                "pipefail",
                "-c",
                agents.replace("SERVER:8400", f"127.0.0.1:{port}") + "wait",
            ],
            cwd=tmp_path,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            token = re.search(r"token:\s+(\S+)", up.log())
            assert token
            headers = {"Authorization": f"Bearer {token.group(1)}"}

            def both_online() -> bool:
                nodes = httpx.get(f"{url}/api/v1/nodes", headers=headers).json()
                return {"web1", "web2"} <= {n["name"] for n in nodes if n["online"]}

            wait_until(both_online, timeout=60, what="web1 and web2 online")
            ran = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", cli],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert ran.returncode == 0, (ran.stdout, ran.stderr)
            assert "job 1: complete · 2 of 2 succeeded" in ran.stdout, ran.stdout
            assert "job 2: complete · 1 of 1 succeeded" in ran.stdout, ran.stdout
            assert '"count": 2' in ran.stdout  # jobyard jobs -o json
        finally:
            os.killpg(started.pid, signal.SIGTERM)
            started.wait(timeout=30)
