"""Packaging: the agent installs without the server, the unit files verify, the image builds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# What only the server uses: a node running `jobyard agent` never imports these.
SERVER_ONLY = (
    "sqlalchemy",
    "alembic",
    "asyncpg",
    "aiosqlite",
    "argon2",
    "aiosmtplib",
    "uvloop",
    "fastapi",
    "starlette",
    "uvicorn",
    "jinja2",
    "croniter",
    "prometheus_client",
    "multipart",
    "authlib",
    "joserfc",
)

_BLOCKER = """
import importlib.abc, sys
BLOCK = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCK:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Block())
sys.argv = ["jobyard", *sys.argv[2:]]
from jobyard.cli.main import main
main()
"""


def _without_server(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _BLOCKER, ",".join(SERVER_ONLY), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "120"},
    )


def test_base_dependencies_leave_the_server_out() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    for name in ("sqlalchemy", "alembic", "asyncpg", "aiosqlite", "argon2", "aiosmtplib"):
        assert name not in base, f"{name} is a server dependency, not an agent one"
    server = " ".join(project["optional-dependencies"]["server"]).lower()
    for name in ("sqlalchemy", "fastapi", "uvicorn", "asyncpg"):
        assert name in server


def test_agent_and_client_run_without_the_server_dependencies() -> None:
    for command in (["agent", "--help"], ["ask", "--help"], ["jobs", "--help"], ["version"]):
        done = _without_server(*command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    # The agent's whole runtime imports, not only its --help.
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            _BLOCKER.replace(
                "from jobyard.cli.main import main\nmain()",
                "import jobyard.agent.runner, jobyard.client, jobyard.wire.agent",
            ),
            ",".join(SERVER_ONLY),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]


@pytest.mark.parametrize("command", ["migrate", "serve", "up", "admin backup x.db"])
def test_server_commands_say_what_to_install_when_the_server_is_missing(command: str) -> None:
    done = _without_server(*command.split(), "--data-dir", "/nonexistent/jobyard")
    assert done.returncode != 0
    assert "jobyard[server]" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("unit", ["jobyard.service", "jobyard-agent.service"])
def test_systemd_unit_verifies(unit: str, tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's jobyard.
    jobyard = Path(sys.executable).with_name("jobyard")
    text = (DEPLOY / "systemd" / unit).read_text()
    for prefix in ("/opt/jobyard-agent/bin/jobyard", "/opt/jobyard/bin/jobyard"):
        text = text.replace(prefix, str(jobyard))
    (tmp_path / unit).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines() if unit in line]
    assert problems == [], problems
    assert "NoNewPrivileges=yes" in text


def _docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return info.returncode == 0


def test_dockerfile_runs_unprivileged_with_the_server_by_default() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER jobyard" in text
    assert 'CMD ["serve"]' in text
    assert 'ENTRYPOINT ["jobyard"]' in text
    assert "'.[server]'" in text
    assert "HEALTHCHECK" in text


@pytest.mark.skipif(not _docker_ready(), reason="no Docker daemon on this machine")
def test_image_builds_and_serves_healthz() -> None:  # pragma: no cover - needs Docker
    tag = "jobyard-test:latest"
    build = subprocess.run(
        ["docker", "build", "-f", str(DEPLOY / "Dockerfile"), "-t", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run(
        ["docker", "run", "-d", "-p", "127.0.0.1:18400:8400", tag],
        capture_output=True,
        text=True,
        timeout=60,
    )
    container = run.stdout.strip()
    try:
        import time

        import httpx

        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get("http://127.0.0.1:18400/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the container never answered /healthz"
            time.sleep(0.5)
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, timeout=60)
