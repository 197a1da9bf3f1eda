"""Input asked for by a running command: a local socket between the command and its agent.

The command runs ``jobyard ask --field NAME[:TYPE] ... [--prompt P] [--timeout S]`` (or
writes one JSON line to ``$JOBYARD_INPUT_SOCKET`` itself):

    → {"job": 7, "attempt": 0, "fields": [{"name": "version", "type": "text"}],
       "prompt": "Which version?", "timeout": 600}
    ← {"status": "answered", "values": {"version": "1.2"}}   (or "expired" / "refused")

The agent relays the request to the server (``input_request``), a person answers through
``POST /api/v1/jobs/{id}/input`` (or the dashboard), and the answer comes back (``input``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from jobyard.wire import agent as wire

MAX_REQUEST = 64 * 1024

Relay = Callable[[wire.InputRequest], Awaitable[None]]


class InputDesk:
    """Accepts commands' questions on a Unix socket and waits for the server's answers."""

    def __init__(self, relay: Relay, is_running: Callable[[int, int], bool]) -> None:
        self.relay = relay
        self.is_running = is_running
        # A short path: Unix socket paths are limited to ~100 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="jobyard-agent-"))
        self.path = self.dir / "input.sock"
        self.waiting: dict[tuple[int, int], asyncio.Future[dict[str, Any]]] = {}
        self.server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        for future in self.waiting.values():
            if not future.done():
                future.set_result({"status": "refused", "error": "the agent is stopping"})
        with contextlib.suppress(OSError):
            self.path.unlink()
            self.dir.rmdir()

    def answer(self, msg: wire.Input) -> None:
        """The server's ``input`` message: wake the command that asked."""
        future = self.waiting.get(msg.ref)
        if future is not None and not future.done():
            reply: dict[str, Any] = {"status": msg.status, "values": msg.values}
            if msg.error:
                reply["error"] = msg.error
            future.set_result(reply)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._ask(await reader.readline())
        except Exception as exc:  # the command gets a readable refusal, never a hang
            reply = {"status": "refused", "error": str(exc)}
        writer.write(json.dumps(reply).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _ask(self, line: bytes) -> dict[str, Any]:
        if len(line) > MAX_REQUEST:
            return {"status": "refused", "error": "the request is too large"}
        request = json.loads(line)
        job, attempt = request.get("job"), request.get("attempt")
        if (
            not isinstance(job, int)
            or not isinstance(attempt, int)
            or not self.is_running(job, attempt)
        ):
            return {"status": "refused", "error": "no such job is running on this node"}
        fields = request.get("fields") or []
        if not isinstance(fields, list):
            return {"status": "refused", "error": "fields must be a list"}
        timeout = float(request.get("timeout") or 3600)
        key = (job, attempt)
        if key in self.waiting:
            return {"status": "refused", "error": "this job already waits for an answer"}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[key] = future
        try:
            await self.relay(
                wire.InputRequest(
                    job=job,
                    attempt=attempt,
                    fields=fields,
                    prompt=str(request.get("prompt") or ""),
                    timeout=timeout,
                )
            )
            # The server expires the request at its deadline; a little slack for the trip.
            return await asyncio.wait_for(future, timeout + 30)
        except TimeoutError:
            return {"status": "expired", "values": None}
        finally:
            self.waiting.pop(key, None)
