"""Running the server: uvicorn with jobyard's app, a graceful SIGTERM, and ``up``'s bootstrap."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import secrets
import signal
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from jobyard.api.agent_socket import agent_sockets
from jobyard.api.app import create_app
from jobyard.cli.common import fail
from jobyard.domain.accounts import Role
from jobyard.logs import setup as setup_logs
from jobyard.service import accounts
from jobyard.service.context import Services
from jobyard.service.hub import SHUTDOWN
from jobyard.settings import Settings
from jobyard.store import Database


@dataclass(frozen=True)
class Bootstrap:
    url: str
    org: str
    email: str
    token: str
    password: str | None


class _Server(uvicorn.Server):
    """uvicorn, except that a signal which shut the server down gracefully is not re-raised
    afterwards: uvicorn re-raises it, so the process would die of SIGTERM (exit -15) even
    though every request and loop finished. A graceful stop exits with 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        signals = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def credentials_path(settings: Settings) -> Path:
    return settings.data_dir / "credentials.json"


async def bootstrap(svc: Services, org: str, email: str) -> Bootstrap:
    """Create the first organization and admin once; later runs reuse them."""
    path = credentials_path(svc.settings)
    if path.exists():
        saved = json.loads(path.read_text())
        try:
            await accounts.authenticate(svc, saved["token"])
            return Bootstrap(
                svc.settings.base_url, saved["org"], saved["email"], saved["token"], None
            )
        except Exception:
            pass  # the saved token no longer works (revoked, new database): make a new one
    async with svc.db.read() as tx:
        existing = await tx.accounts.org_by_name(org)
    if existing is None:
        await accounts.create_org(svc, org)
    password = secrets.token_urlsafe(12)
    await accounts.create_user(svc, org, email, Role.ADMIN, display_name="Admin", password=password)
    issued = await accounts.create_token(svc, org, email, name="jobyard up")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(
            {"url": svc.settings.base_url, "org": org, "email": email, "token": issued.secret}, fh
        )
    return Bootstrap(svc.settings.base_url, org, email, issued.secret, password)


async def _announce_exit(server: uvicorn.Server, svc: Services) -> None:
    """Tell live streams (dashboard, event feeds) that the server is stopping, so that they
    end their responses instead of holding the graceful shutdown for its whole timeout."""
    while not server.should_exit:
        await asyncio.sleep(0.1)
    svc.hub.publish_local(SHUTDOWN, SHUTDOWN)  # this replica only: the others keep serving


def serve(
    settings: Settings,
    *,
    on_ready: Callable[[Services], Awaitable[Any]] | None = None,
) -> None:
    """Run the server until SIGINT/SIGTERM; a second Ctrl-C forces exit (uvicorn's)."""
    listener = listen(settings.host, settings.port)
    setup_logs(settings.log_level)
    svc = Services(
        db=Database(
            settings.db_url,
            count_statements=settings.count_statements,
            group_commit=settings.group_commit,
            inline_writes=settings.sqlite_inline_writes,
        ),
        settings=settings,
    )
    app = create_app(settings, services=svc, tune_gc=settings.tune_gc)
    # Agents' connections on jobyard's own WebSocket protocol (api/agent_socket.py);
    # JOBYARD_AGENT_SOCKET=uvicorn serves them through uvicorn's and the ASGI endpoint, as
    # before (to compare, or should a client need it).
    ws: type[asyncio.Protocol] = AgentFriendlyWebSockets
    if settings.agent_socket == "own":
        ws = agent_sockets(svc, app.state.metrics.agent_frames, AgentFriendlyWebSockets)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        ws_max_size=16 * 1024 * 1024,
        ws_ping_interval=None,
        # Agents are the only WebSocket clients: no compression (its zlib state was
        # 49 KiB per connection; output is batched already).
        ws_per_message_deflate=False,
        ws=ws,
        # Forwarded headers are the app's business (JOBYARD_TRUSTED_PROXIES, applied in
        # create_app): uvicorn's own default would believe any X-Forwarded-For from 127.0.0.1.
        proxy_headers=False,
    )
    server = _Server(config)

    async def main() -> None:
        task: asyncio.Task[Any] | None = None
        if on_ready is not None:

            async def after_start() -> None:
                while not server.started:
                    if server.should_exit:
                        return
                    await asyncio.sleep(0.05)
                await on_ready(svc)

            task = asyncio.create_task(after_start())
        closing = asyncio.create_task(_announce_exit(server, svc))
        try:
            await server.serve(sockets=[listener])
        finally:
            closing.cancel()
            if task is not None:
                task.cancel()
            await svc.db.close()

    # uvicorn picks uvloop only when it owns the loop (uvicorn.run); here we own it.
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(main())
    # Everything is closed by now. The interpreter's last garbage collection walks the whole
    # heap of a server (seconds on a busy machine) before the process may exit; nothing
    # left needs it, so the stop stays prompt.
    gc.freeze()


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything starts: a port in use is one
    line naming the fix, instead of a "ready" followed by a bind error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        fail(f"cannot listen on {host!r}: {exc}; pass --host with an address of this machine")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"{host}:{port} is already in use (another jobyard, or another program): "
                f'pick a free port with --port N (JOBYARD_PORT=N; make up ARGS="--port N"), '
                "or stop what listens there"
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (uvicorn[standard] brings it), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class AgentFriendlyWebSockets(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, forgetting the handshake's headers once the connection
    is accepted: agents hold their connection for days, and the parsed headers were about
    4 KiB of each idle one. (The request stays referenced by the websockets parser for the
    connection's life, so its headers are emptied rather than the object dropped.)"""

    def send_text_now(self, text: str) -> bool:
        """Write a text frame at once if the connection can take it without waiting (what
        ``send`` does for ``websocket.send`` then, minus the coroutine); False otherwise,
        and the caller awaits ``send``. The agents' endpoint writes its commands this way:
        a task per write to each of 1,000 agents was a tenth of a fan-out's CPU."""
        if (
            self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or not self.writable.is_set()
        ):
            return False
        self.conn.send_text(text.encode())
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            self.request.headers.clear()
            self.response.headers.clear()
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
