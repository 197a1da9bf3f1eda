"""A real jobyard for browser tests and screenshots: a ``jobyard serve`` process, an
organization with an admin who has a password, tokens, agents; and headless Chromium
(Debian's package, driven by Playwright)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.procs import Agent, Server, start_agents

CHROMIUM = os.environ.get("JOBYARD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVER_ENV = {
    "JOBYARD_HEARTBEAT_INTERVAL": "0.2",
    "JOBYARD_NODE_TTL": "1",
    "JOBYARD_NODE_GRACE": "1",
    "JOBYARD_VOTING_TIMEOUT": "5",
    "JOBYARD_ABORT_GRACE": "1",
}
ORG = "acme"
EMAIL = "ada@acme.test"
PASSWORD = "correct horse battery"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: run `make browser` (apt-get install chromium)"
    return None


@dataclass
class Yard:
    server: Server
    root: Path
    token: str = ""
    agent_token: str = ""
    agents: list[Agent] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def api(self) -> httpx.Client:
        return self.server.client(self.token)

    def setup_accounts(self) -> None:
        self.server.admin("create-org", ORG)
        self.server.admin(
            "create-user",
            "--org",
            ORG,
            "--email",
            EMAIL,
            "--role",
            "admin",
            "--password",
            PASSWORD,
            "--display-name",
            "Ada Admin",
        )
        self.token = self.server.admin("create-token", "--org", ORG, "--email", EMAIL)["token"]
        self.agent_token = self.server.admin(
            "create-token", "--org", ORG, "--email", EMAIL, "--role", "agent", "--name", "agents"
        )["token"]

    def start_agents(self, *names: str, **kwargs: Any) -> list[Agent]:
        agents = [
            Agent(
                self.root / f"agent-{name}",
                server_url=self.url,
                token=self.agent_token,
                node=name,
                args=["--abort-grace", "1"],
                **kwargs,
            )
            for name in names
        ]
        self.agents.extend(agents)
        start_agents(agents)
        return agents

    def close(self) -> None:
        for agent in self.agents:
            with contextlib.suppress(Exception):
                agent.close()
        self.server.close()


@contextlib.contextmanager
def running_yard(
    root: Path, *, agents: tuple[str, ...] = (), database_url: str | None = None
) -> Iterator[Yard]:
    server = Server(root / "server", env=SERVER_ENV, database_url=database_url)
    yard = Yard(server, root)
    try:
        server.start()
        yard.setup_accounts()
        if agents:
            yard.start_agents(*agents)
        yield yard
    finally:
        yard.close()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def sign_in(page: Any, url: str, email: str = EMAIL, password: str = PASSWORD) -> None:
    page.goto(f"{url}/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/jobs")
