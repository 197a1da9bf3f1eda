"""How an agent dials the server's WebSocket: the options ``jobyard agent`` uses, shared
with the benchmark's simulated agents so that they cost the server what real ones do."""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import ClientConnection, connect

MAX_FRAME = 64 * 1024 * 1024
PING_INTERVAL = 20.0


def dial(url: str, token: str, *, open_timeout: float = 10) -> connect:
    """``async with dial(...) as ws``: the agent's connection, authenticated by ``token``.

    No permessage-deflate: the server does not negotiate it either (each side's zlib state
    cost about 49 KiB per connection on the server), and output is already sent in chunks.
    """
    options: dict[str, Any] = {
        "additional_headers": {"Authorization": f"Bearer {token}"},
        "max_size": MAX_FRAME,
        "open_timeout": open_timeout,
        "ping_interval": PING_INTERVAL,
        "ping_timeout": PING_INTERVAL,
        "compression": None,
    }
    return connect(url, **options)


__all__ = ["ClientConnection", "dial"]
