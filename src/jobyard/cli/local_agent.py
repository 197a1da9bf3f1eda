"""The agent that ``jobyard up`` runs beside the server, in the same process."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from jobyard.agent.runner import Agent, AgentConfig
from jobyard.domain.accounts import Role
from jobyard.service import accounts
from jobyard.service.context import Services

_tasks: set[asyncio.Task[Any]] = set()


async def _agent_token(svc: Services, boot: Any) -> str:
    path = svc.settings.data_dir / "credentials.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    token = saved.get("agent_token")
    if token:
        try:
            who = await accounts.authenticate(svc, token)
            if who.role is Role.AGENT:
                return str(token)
        except Exception:
            pass
    issued = await accounts.create_token(
        svc, boot.org, boot.email, name="local agent", role=Role.AGENT
    )
    saved["agent_token"] = issued.secret
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh)
    return issued.secret


async def start_local_agent(svc: Services, boot: Any, name: str) -> Agent:
    config = AgentConfig(
        server=svc.settings.base_url,
        token=await _agent_token(svc, boot),
        name=name,
        tags=["local"],
        state_dir=svc.settings.data_dir / "agent",
    )
    agent = Agent(config)
    task = asyncio.create_task(agent.run_forever(), name="local-agent")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return agent
