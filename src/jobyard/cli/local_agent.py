"""The agent that ``jobyard up`` runs beside the server (filled in with the agent)."""

from __future__ import annotations

from typing import Any

from jobyard.service.context import Services


async def start_local_agent(svc: Services, boot: Any, name: str) -> None:
    return None
