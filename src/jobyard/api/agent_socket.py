"""``jobyard serve``'s own WebSocket protocol for the agents' connections (``wire.PATH``).

uvicorn's HTTP protocol hands an upgrade request to the ``ws`` protocol class it is
configured with (cli/server.py): this one answers the agents' path itself and passes any
other path to uvicorn's WebSocket protocol unchanged. An agent's connection is then one
``AgentSocket`` (the transport's protocol, parsing frames as bytes arrive: api/ws_frames.py)
and one ``Session`` (api/agent_ws.py, shared with the ASGI endpoint): no uvicorn protocol
object, no ASGI task or suspended coroutine while idle, no parser generator. Frames are
handled as they arrive; the few messages that wait (a file, a request for input, an error
reply, the hello and registration, a credentials check) run in a short-lived task, the
connection's later frames queued behind it in order (reading paused while many wait).
What the agent sees is what uvicorn's protocol and the ASGI endpoint showed it: HTTP 403
for a refused token, the server's identity in the 101's headers, the same frames and
close codes.
"""

from __future__ import annotations

import asyncio
import binascii
import email.utils
import logging
from base64 import b64decode
from collections import deque
from collections.abc import Coroutine
from typing import Any, ClassVar
from urllib.parse import unquote

from starlette.requests import HTTPConnection

from jobyard.api import ws_frames as frames_
from jobyard.api.agent_ws import HELLO_TIMEOUT, Frame, Session, open_session, refuse
from jobyard.api.auth import authenticate, token_from
from jobyard.domain.errors import JobyardError
from jobyard.service import nodes
from jobyard.service.context import Services
from jobyard.service.metrics import AgentFrames
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.agents")

CLOSE_TIMEOUT = 10.0  # after our close frame, the agent's answer (uvicorn's close_timeout)
QUEUE_HIGH = 64  # frames waiting behind a handler: pause reading from here
QUEUE_LOW = 8  # and resume below this
# Commands written but not yet taken by the kernel: past this the agent does not read
# (its machine or link is stuck), and the connection is dropped rather than buffered.
WRITE_LIMIT = 16 * 1024 * 1024


def agent_sockets(
    svc: Services, frames: AgentFrames, fallback: type[asyncio.Protocol]
) -> type[AgentSocket]:
    """The ``ws`` protocol class for uvicorn's Config: agents' connections served by
    ``AgentSocket``, any other WebSocket path by ``fallback`` (uvicorn's protocol)."""
    return type(
        "AgentSockets",
        (AgentSocket,),
        {"__slots__": (), "svc": svc, "frames": frames, "fallback": fallback},
    )


class AgentSocket(asyncio.Protocol):
    """One agent's connection, from its upgrade request to the end."""

    svc: ClassVar[Services]
    frames: ClassVar[AgentFrames]
    fallback: ClassVar[type[asyncio.Protocol]]

    # Ten thousand idle ones must stay small: no __dict__, nothing of the handshake kept.
    __slots__ = (
        "accepted",
        "close_sent",
        "closer",
        "handshake",
        "inbox",
        "lost",
        "other",
        "parser",
        "paused",
        "session",
        "state",
        "task",
        "transport",
        "waiter",
    )

    def __init__(self, config: Any, server_state: Any, app_state: Any, **_: Any) -> None:
        # What uvicorn's protocol needs, should the path be another one; dropped at once.
        self.handshake: tuple[Any, Any, Any] | None = (config, server_state, app_state)
        self.state = server_state  # uvicorn's: its connections and tasks, default headers
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser: frames_.FrameParser | None = None
        self.session: Session | None = None
        self.task: asyncio.Task[None] | None = None  # a handler (or the handshake) running
        self.inbox: deque[Frame] | None = None  # frames waiting behind it
        self.waiter: asyncio.Future[Frame] | None = None  # the hello, awaited
        self.closer: asyncio.TimerHandle | None = None
        self.other: asyncio.Protocol | None = None  # the protocol a non-agent path went to
        self.accepted = self.lost = self.close_sent = self.paused = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.other is not None:
            self.other.data_received(data)
            return
        if self.handshake is not None:
            self._upgrade(data)
            return
        if self.parser is None:
            return
        try:
            events = self.parser.feed(data)
        except frames_.FrameError as exc:
            for opcode, payload in exc.events:
                self._event(opcode, payload)
            self._broken(exc)
            return
        for opcode, payload in events:
            self._event(opcode, payload)

    def eof_received(self) -> bool | None:
        if self.other is not None:
            return self.other.eof_received()
        return None

    def pause_writing(self) -> None:
        if self.other is not None:
            self.other.pause_writing()

    def resume_writing(self) -> None:
        if self.other is not None:
            self.other.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.other is not None:
            self.other.connection_lost(exc)
            return
        self.lost = True
        self.state.connections.discard(self)
        if self.closer is not None:
            self.closer.cancel()
            self.closer = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the agent went away"))
        if self.session is not None and self.task is None:
            self._spawn(self._end())

    def shutdown(self) -> None:
        """uvicorn's graceful stop: close as its protocol does (1012: service restart)."""
        if self.lost:
            return
        if self.close_sent:
            self.transport.close()
            return
        if self.accepted:
            self.close_sent = True
            self.transport.write(
                frames_.encode(frames_.CLOSE, frames_.close_payload(frames_.CLOSE_SERVICE_RESTART))
            )
        else:
            self._http(500, "Internal Server Error")
        self.transport.close()

    # -- the handshake
    def _upgrade(self, data: bytes) -> None:
        """The upgrade request, as uvicorn's HTTP protocol hands it over (whole)."""
        assert self.handshake is not None
        config, server_state, app_state = self.handshake
        self.handshake = None
        head, _, _ = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        target = lines[0].split(b" ")[1] if lines[0].count(b" ") >= 2 else b""
        raw_path, _, query = target.partition(b"?")
        path = config.root_path + unquote(raw_path.decode("latin-1"))
        if path != wire.PATH:
            other = self.fallback(config=config, server_state=server_state, app_state=app_state)  # type: ignore[call-arg]
            self.state.connections.discard(self)
            self.other = other
            other.connection_made(self.transport)
            other.data_received(data)
            # uvicorn sets this protocol on the transport once this call returns: the other
            # one takes over on the next turn (until then, this one passes everything on).
            asyncio.get_running_loop().call_soon(self.transport.set_protocol, other)
            return
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        found = dict(headers)
        version = found.get(b"sec-websocket-version", b"")
        key = found.get(b"sec-websocket-key", b"").decode("latin-1")
        try:
            valid_key = len(b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if version != b"13":
            self._http(426, "Upgrade Required", b"Sec-WebSocket-Version: 13\r\n")
            self.transport.close()
            return
        if not valid_key:
            self._http(400, "Bad Request")
            self.transport.close()
            return
        scope = {"type": "websocket", "headers": headers, "query_string": query}
        error: JobyardError | None = None
        try:
            secret = token_from(HTTPConnection(scope)) or ""
        except JobyardError as exc:
            secret, error = "", exc
        self.parser = frames_.FrameParser()
        self._spawn(self._open(secret, error, frames_.accept_key(key)))

    def _http(self, status: int, phrase: str, extra: bytes = b"") -> None:
        """An HTTP answer instead of the upgrade, as websockets' ``reject`` writes it."""
        if self.lost or self.transport.is_closing():
            return
        date = email.utils.formatdate(usegmt=True).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\n".encode()
            + b"Date: "
            + date
            + b"\r\nConnection: close\r\nContent-Length: 0\r\n"
            + b"Content-Type: text/plain; charset=utf-8\r\n"
            + extra
            + b"\r\n"
        )

    async def _open(self, secret: str, error: JobyardError | None, accept: str) -> None:
        try:
            await self._opening(secret, error, accept)
        except Exception:
            # As uvicorn's protocol did for an ASGI app that failed: say so, and close.
            log.exception("an agent's connection failed as it opened")
            if self.session is not None:
                await self._end()
            if not self.lost:
                self.transport.close()

    async def _opening(self, secret: str, error: JobyardError | None, accept: str) -> None:
        """Authenticate, accept, read the hello, register: then the frames' handling."""
        svc = self.svc
        try:
            if error is not None:
                raise error
            who = await authenticate(svc, secret, agent=True)
        except JobyardError:
            # Refused before the upgrade, as uvicorn's protocol answered a close before
            # accept: the agent sees 403 and stops (retrying cannot help).
            self._http(403, "Forbidden")
            self.transport.close()
            return
        # The database's identity rides on the handshake (see agent_ws.agent_endpoint).
        server_id = await nodes.server_identity(svc)
        if self.lost or self.transport.is_closing():
            return
        response = [
            b"HTTP/1.1 101 Switching Protocols",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + accept.encode(),
        ]
        response += [name + b": " + value for name, value in self.state.default_headers]
        response.append(wire.SERVER_HEADER.encode() + b": " + server_id.encode())
        self.transport.write(b"\r\n".join(response) + b"\r\n\r\n")
        self.accepted = True
        try:
            first = await asyncio.wait_for(self._first(), HELLO_TIMEOUT)
        except TimeoutError as exc:
            await refuse(self, exc)
            return
        except ConnectionError:
            return
        session = await open_session(svc, self.frames, self, who, secret, first)
        if session is None:
            return
        self.session = session
        try:
            await session.start()
        except Exception:
            if not self.lost:
                log.exception("node %s: its connection failed as it started", session.name)
            await self._end()
            return
        await self._serve(None)

    async def _first(self) -> Frame:
        if self.inbox:
            return self._pop()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            return await self.waiter
        finally:
            self.waiter = None

    # -- frames
    def _event(self, opcode: int, payload: bytes | str) -> None:
        if opcode == frames_.TEXT or opcode == frames_.BINARY:
            if self.close_sent:
                return  # past our close: only the agent's answer matters
            session = self.session
            if session is None or self.task is not None:
                waiter = self.waiter
                if session is None and waiter is not None and not waiter.done():
                    waiter.set_result(payload)
                else:
                    self._queue(payload)
                return
            try:
                work = session.take(payload)
            except Exception:
                log.exception("node %s: a frame could not be handled", session.name)
                self.transport.close()
                return
            if work is not None or session.said_bye:
                self._spawn(self._serve(work))
        elif opcode == frames_.PING:
            if not self.close_sent and not self.lost:
                self._write(frames_.encode(frames_.PONG, bytes(payload)))  # type: ignore[arg-type]
        elif opcode == frames_.CLOSE:
            if not self.close_sent and not self.lost:
                code, _ = frames_.parse_close(payload)  # type: ignore[arg-type]
                answer = b"" if code == 1005 else frames_.close_payload(code)
                self.close_sent = True
                self.transport.write(frames_.encode(frames_.CLOSE, answer))
            self.transport.close()
        # a pong: nothing was asked

    def _broken(self, exc: frames_.FrameError) -> None:
        """The agent broke the WebSocket protocol: say why in a close frame, and close."""
        self.frames.refused.labels("websocket").inc()
        log.warning("an agent's connection broke the WebSocket protocol: %s", exc.reason)
        self.parser = None
        if not self.close_sent and not self.lost:
            self.close_sent = True
            self.transport.write(
                frames_.encode(frames_.CLOSE, frames_.close_payload(exc.code, exc.reason))
            )
        self.transport.close()

    def _queue(self, frame: Frame) -> None:
        if self.inbox is None:
            self.inbox = deque()
        self.inbox.append(frame)
        if len(self.inbox) >= QUEUE_HIGH and not self.paused and not self.lost:
            self.paused = True
            self.transport.pause_reading()

    def _pop(self) -> Frame:
        assert self.inbox is not None
        frame = self.inbox.popleft()
        if not self.inbox:
            self.inbox = None
        if self.paused and (self.inbox is None or len(self.inbox) <= QUEUE_LOW):
            self.paused = False
            if not self.lost:
                self.transport.resume_reading()
        return frame

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self.task = task
        tasks = self.state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def _serve(self, work: Coroutine[Any, Any, None] | None) -> None:
        """Handle frames in order until none waits (then no task is left), the agent
        says goodbye or the connection is gone (then the session ends)."""
        session = self.session
        assert session is not None
        try:
            while not (self.lost or session.said_bye):
                if work is not None:
                    await work
                    work = None
                elif self.inbox:
                    work = session.take(self._pop())
                else:
                    self.task = None
                    return
        except Exception:
            log.exception("node %s: a frame could not be handled", session.name)
        await self._end()

    async def _end(self) -> None:
        session, self.session = self.session, None
        self.inbox = None
        if session is None:
            return
        try:
            await session.end()
        finally:
            self.task = None
            if not self.lost and not self.close_sent:
                self.transport.close()

    # -- writing (the session's Connection)
    @property
    def now(self) -> Any:
        return self._write_text

    def _write_text(self, text: str) -> bool:
        if self.lost or self.close_sent or self.transport.is_closing():
            return False
        self._write(frames_.encode(frames_.TEXT, text.encode()))
        return True

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport.is_closing():
            return  # closed by our side: what is not sent is owed on reconnecting
        transport.write(data)
        if transport.get_write_buffer_size() > WRITE_LIMIT:
            name = self.session.name if self.session is not None else "?"
            log.warning(
                "node %s: over %d bytes written and not read: disconnected as too slow",
                name,
                WRITE_LIMIT,
            )
            transport.abort()

    async def send_text(self, text: str) -> None:
        if not self._write_text(text):
            raise ConnectionError("the agent's connection is closed")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.lost or self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        self.transport.write(frames_.encode(frames_.CLOSE, frames_.close_payload(code, reason)))
        if self.paused:
            self.paused = False
            self.transport.resume_reading()  # to read the agent's answer
        self.closer = asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.close)
