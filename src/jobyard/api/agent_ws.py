"""The agents' WebSocket: one connection per node, dialled out by ``jobyard agent``.

``Session`` is one agent's connection once it said hello: it is handed each frame
(``take``: heartbeats, acks, output and results go to the engine at once; a file, a
request for input or an error reply return a coroutine to await before the next frame)
and writes the node's commands as the hub publishes them, from the listener's call
without a task when the connection can take them. Two servers of the protocol share it:
``jobyard serve``'s own (api/agent_socket.py: no task while idle), and the plain ASGI
endpoint below, which ``App`` in api/app.py hands the agent path before any middleware
(other ASGI servers, test clients, ``JOBYARD_AGENT_SOCKET=uvicorn``). Nothing of the
handshake (scope, headers) is kept once connected. No compression is negotiated (agents
do not offer it): its zlib state cost 49 KiB per connection, and output is already batched.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any, Protocol

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from jobyard import __version__
from jobyard.api.auth import authenticate, token_from
from jobyard.dispatch.engine import Engine
from jobyard.domain.errors import JobyardError
from jobyard.domain.nodes import Availability
from jobyard.domain.records import Principal
from jobyard.service import approvals, nodes, outputs, revocations
from jobyard.service.context import Services
from jobyard.service.hub import Listening
from jobyard.service.metrics import AgentFrames
from jobyard.service.rounds import Report, node_topic
from jobyard.wire import agent as wire

log = logging.getLogger("jobyard.agents")
HELLO_TIMEOUT = 10.0
BATCH_FRAME = 500  # messages in one frame at most

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Frame = str | bytes


class Connection(Protocol):
    """What a session writes to: an ASGI ``Socket``, or ``jobyard serve``'s own agent
    protocol (api/agent_socket.py)."""

    @property
    def now(self) -> Callable[[str], bool] | None:
        """Write a text frame without a coroutine (True), or None/False: await send_text."""

    async def send_text(self, text: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Socket:
    """The two ASGI callables of one accepted connection, and the server protocol's
    synchronous writer when it has one (``jobyard serve``'s: cli/server.py)."""

    __slots__ = ("_send", "now", "receive")

    def __init__(self, receive: Receive, send: Send) -> None:
        self.receive, self._send = receive, send
        # Write a frame without a coroutine when the transport can take it (True), else False.
        self.now: Callable[[str], bool] | None = getattr(
            getattr(send, "__self__", None), "send_text_now", None
        )

    async def send_text(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


async def agent_endpoint(
    svc: Services, frames: AgentFrames, scope: Scope, receive: Receive, send: Send
) -> None:
    """The ASGI app of ``wire.PATH``: authenticate, accept, hello, then serve the session
    (for ASGI servers and test clients; ``jobyard serve`` speaks to agents through
    api/agent_socket.py, which shares everything after the handshake)."""
    connect = await receive()
    if connect["type"] != "websocket.connect":
        return
    ws = Socket(receive, send)
    try:
        secret = token_from(HTTPConnection(scope)) or ""
        who = await authenticate(svc, secret, agent=True)
    except JobyardError as exc:
        await ws.close(code=4401, reason=exc.detail[:120])
        return
    # The database's identity rides on the handshake, before hello: the agent picks the
    # journal of this server (its job ids are only unique per database) before it says
    # which runs it holds and which results it will re-send.
    server_id = await nodes.server_identity(svc)
    await send(
        {
            "type": "websocket.accept",
            "headers": [(wire.SERVER_HEADER.encode(), server_id.encode())],
        }
    )
    # Nothing of the handshake is kept for the connection's life (the server's protocol
    # shares this scope; it reads no more of it once accepted).
    for key in ("headers", "state", "extensions"):
        scope.pop(key, None)
    del scope, connect
    try:
        first = await asyncio.wait_for(receive_frame(ws), HELLO_TIMEOUT)
    except (TimeoutError, WebSocketDisconnect) as exc:
        await refuse(ws, exc)
        return
    session = await open_session(svc, frames, ws, who, secret, first)
    if session is None:
        return
    try:
        await session.start()
        while not session.said_bye:
            work = session.take(await receive_frame(ws))
            if work is not None:
                await work
    except WebSocketDisconnect:
        pass
    finally:
        await session.end()


async def open_session(
    svc: Services, frames: AgentFrames, ws: Connection, who: Principal, secret: str, first: Frame
) -> Session | None:
    """Read the agent's hello (its first frame), register the node and listen for its
    commands: the session, not started yet; None when the agent was refused (told why,
    the connection closing)."""
    try:
        hello_msg = wire.decode(first)
        frames.frames_in.inc()
        if not isinstance(hello_msg, wire.Hello):
            raise wire.ProtocolError("the first message must be hello", "unexpected")
        if hello_msg.version not in wire.SUPPORTED_VERSIONS:
            await refuse(
                ws,
                version_refusal(hello_msg.version),
                code=wire.CLOSE_PROTOCOL_VERSION,
                why="protocol_version",
            )
            return None
        hello = nodes.Hello.parse(hello_msg)
    except (wire.ProtocolError, JobyardError) as exc:
        if isinstance(exc, wire.ProtocolError):
            frames.refused.labels(exc.reason).inc()
        await refuse(ws, exc)
        return None
    engine = Engine.of(svc)
    session = Session(svc, engine, ws, who, 0, hello.node, frames)
    session.secret = secret
    # Listen before registering: what node_connected owes the node (commits, runs, aborts
    # sent while it was away) is published as its transaction commits, before start().
    session.listen()
    try:
        # Once more, now that changes are heard: a revocation since the first look
        # cleared the remembered authentication, so this one reads the database.
        await authenticate(svc, secret, agent=True)
        before = await nodes.availability_of(svc, who.org_id, hello.node)
        node = await nodes.node_connected(svc, who, hello, engine.replica)
    except JobyardError as exc:
        session.unlisten()
        await refuse(ws, exc)
        return None
    except BaseException:
        session.unlisten()
        raise
    session.node_id = node.id
    engine.said_hello(node.id, hello.busy)
    session.slots, session.held = hello.slots, len(hello.running)
    session.batching = hello_msg.version >= wire.BATCH_VERSION
    session.reconnecting = before is Availability.RECONNECTING
    return session


def version_refusal(version: int) -> str:
    served = " or ".join(str(v) for v in sorted(wire.SUPPORTED_VERSIONS))
    return (
        f"this agent speaks protocol version {version}, this server (jobyard {__version__})"
        f" speaks version {served}: install jobyard {__version__} on the node"
        " (pip install jobyard==VERSION) and start the agent again"
    )


async def refuse(
    ws: Connection, exc: Exception | str, code: int = wire.CLOSE_BAD_HELLO, why: str = "refused"
) -> None:
    """Say why in an error frame, then close: the agent cannot be served as it is."""
    if isinstance(exc, wire.ProtocolError):
        why = exc.reason
    detail = exc if isinstance(exc, str) else getattr(exc, "detail", None) or str(exc)
    detail = detail or "no hello"
    with contextlib.suppress(Exception):
        await ws.send_text(wire.encode(wire.Error(message=detail, code=why)))
        await ws.close(code=code, reason=detail[:120])


async def receive_frame(ws: Socket) -> Frame:
    """The next frame, text or binary (decode() reads both; a binary frame is no crash)."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if text is not None else message.get("bytes") or b""


def _is_commit(message: Any) -> bool:
    return isinstance(message, str) and message.startswith('{"type":"commit"')


class Session:
    """One agent connection: its reads, its commands, and the input its commands wait for.

    An agent reconnecting after a server restart is owed every commit of the jobs
    submitted meanwhile, and more arrive while the other agents reconnect (jobs that,
    without the restart, would have run one after the other). For the reconnect window
    (TTL + grace after its hello) its commits are paced: handed over in order, each once
    the agent has a free slot, so that it does not answer ``busy`` to a burst. At the end
    of the window whatever still waits is sent, and a busy agent says so, as it does for
    any job sent while it is busy.
    """

    # Thousands are alive at once, most of them idle: no __dict__ each.
    __slots__ = (
        "batching",
        "checking",
        "early",
        "engine",
        "flusher",
        "frames",
        "held",
        "key",
        "listening",
        "name",
        "node_id",
        "pace_timer",
        "pace_until",
        "paced",
        "pending",
        "reconnecting",
        "revoked",
        "said_bye",
        "secret",
        "slots",
        "soon",
        "started",
        "svc",
        "unanswered",
        "waiting",
        "who",
        "ws",
    )

    def __init__(
        self,
        svc: Services,
        engine: Engine,
        ws: Connection,
        who: Principal,
        node_id: int,
        name: str,
        frames: AgentFrames,
    ) -> None:
        self.svc, self.engine, self.ws, self.who = svc, engine, ws, who
        self.frames = frames
        self.node_id, self.name = node_id, name
        self.key = (who.org_id, name)
        self.said_bye = False
        self.batching = False  # the agent reads batch frames: what is queued at once, in one
        self.revoked = False
        # The agent's slots as this connection sees them (for pacing commits).
        self.slots = 1
        self.held = 0  # taken, as the agent last reported (plus acks since)
        self.unanswered = 0  # commits sent, not yet acked or nacked
        self.reconnecting = False  # was it reconnecting (after a server restart) at hello?
        self.pace_until = 0.0
        self.started = False
        self.early: list[Any] | None = []  # delivered before the welcome was sent
        # Commits held back by pacing, and what to write, in order (made when needed:
        # most connections are idle most of the time).
        self.paced: deque[str] | None = None
        self.pending: deque[str] | None = None
        self.flusher: asyncio.Task[None] | None = None  # alive only while writing
        self.soon: asyncio.Handle | None = None  # a write without a task, next turn
        self.pace_timer: asyncio.TimerHandle | None = None
        self.secret = ""
        self.checking: asyncio.Task[None] | None = None
        self.waiting: set[asyncio.Task[None]] | None = None  # input requests' relays
        self.listening: tuple[Listening, ...] = ()

    def listen(self) -> None:
        """Hear the node's commands and changes of the credentials it connected with."""
        hub = self.svc.hub
        self.listening = (
            hub.listen(self.deliver, node_topic(self.who.org_id, self.name)),
            hub.listen(self.credentials_changed, *revocations.topics_of(self.who)),
        )
        for listening in self.listening:
            listening.__enter__()

    def unlisten(self) -> None:
        for listening in self.listening:
            listening.__exit__(None, None, None)
        self.listening = ()

    async def start(self) -> None:
        """Take over from an older connection of the node, welcome the agent and write
        what was published for it meanwhile; then hand it each frame (``take``) until it
        goes, and ``end``."""
        previous = self.engine.sessions.get(self.key)
        if previous is not None:
            await previous.close("replaced by a newer connection")
        self.engine.sessions[self.key] = self
        s = self.svc.settings
        await self.send(
            wire.Welcome(
                version=wire.PROTOCOL_VERSION,
                node=self.name,
                server=await nodes.server_identity(self.svc),
                heartbeat_interval=s.heartbeat_interval,
                # How soon a lost connection must be back before the node's runs crash.
                reconnect_within=s.node_ttl + s.node_grace,
            )
        )
        loop = asyncio.get_running_loop()
        if self.reconnecting:
            self.pace_until = loop.time() + s.node_ttl + s.node_grace
        early, self.early = self.early or [], None
        self.started = True
        for message in early:
            self.deliver(message)

    async def end(self) -> None:
        """The connection is gone (or the agent said goodbye): stop writing, and say so."""
        self.started = False
        self.unlisten()
        if self.pace_timer is not None:
            self.pace_timer.cancel()
        if self.soon is not None:
            self.soon.cancel()
        for task in (self.flusher, self.checking, *(self.waiting or ())):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        for task in (self.flusher, self.checking):
            if task is not None and task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self.engine.sessions.get(self.key) is self:
            del self.engine.sessions[self.key]
            self.engine.went_away(self.node_id)
        if self.revoked and self.key not in self.engine.sessions:
            # Gone now, not after TTL + grace: no new job is sent to it meanwhile (unless
            # it is already back, under a credential that works).
            await nodes.node_gone(
                self.svc, self.who.org_id, self.name, "the agent's credentials were revoked"
            )
        elif self.said_bye:
            await self.engine.caught_up()  # what it reported before saying goodbye first
            await nodes.node_gone(self.svc, self.who.org_id, self.name, "agent stopped")

    async def send(self, message: wire.ServerMessage) -> None:
        self.frames.frames_out.inc()
        await self.ws.send_text(wire.encode(message))

    async def close(self, reason: str, code: int = wire.CLOSE_REPLACED) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason)

    # -- credentials
    def credentials_changed(self, message: Any) -> None:
        """The hub's call when the credentials it connected with change."""
        if revocations.is_revocation(message) and self.checking is None and self.secret:
            self.checking = asyncio.create_task(self._recheck())

    async def _recheck(self) -> None:
        """End the connection when its credentials change (revoked token, a role change
        or removal of its user): the agent reconnects and is authenticated afresh."""
        try:
            await authenticate(self.svc, self.secret, agent=True)
        except JobyardError:
            self.revoked = True
            log.warning("node %s: its credentials were revoked; disconnected", self.name)
            await self.close("the agent's credentials were revoked", code=wire.CLOSE_TOKEN_REFUSED)
            return
        await self.close("the agent's credentials changed; reconnect", code=wire.CLOSE_RECONNECT)

    # -- writing commands
    @property
    def free(self) -> int:
        return self.slots - self.held - self.unanswered

    def deliver(self, message: Any) -> None:
        """The hub's call for each command published to this node: write it now (pacing
        aside), in the order published."""
        if self.early is not None:
            self.early.append(message)
            return
        if not self.started:
            return
        if _is_commit(message) and asyncio.get_running_loop().time() < self.pace_until:
            if self.paced is None:
                self.paced = deque()
            self.paced.append(message)
        else:
            self._queue(message)
        self._pump()

    def _queue(self, message: str) -> None:
        if _is_commit(message):
            self.unanswered += 1
        if self.pending is None:
            self.pending = deque()
        self.pending.append(message)

    def _pump(self) -> None:
        """Release paced commits the agent has room for, and start writing."""
        if self.paced:
            loop = asyncio.get_running_loop()
            over = loop.time() >= self.pace_until
            while self.paced and (over or self.free > 0):
                self._queue(self.paced.popleft())
            if self.paced and self.pace_timer is None:
                self.pace_timer = loop.call_at(self.pace_until, self._pace_over)
        if self.pending and self.flusher is None and self.started:
            if self.ws.now is None:
                self.flusher = asyncio.create_task(self._flush())
            elif self.soon is None:
                # Next turn of the loop, like a task, so that what is published in this
                # one goes in one frame; but written without a task when it can be.
                self.soon = asyncio.get_running_loop().call_soon(self._write_now)

    def _pace_over(self) -> None:
        self.pace_timer = None
        self._pump()

    def _write_now(self) -> None:
        """Write what is pending without a task while the transport takes it; the rest,
        if any, by ``_flush``."""
        self.soon = None
        write = self.ws.now
        if write is None or self.flusher is not None:
            return
        frame = None
        try:
            while self.pending:
                frame = self._next_frame()
                if not write(frame):
                    break
                self.frames.frames_out.inc()
                frame = None
        except Exception:
            self.pending = None  # the connection is gone; the reads end the session
            return
        if frame is not None:
            self.flusher = asyncio.create_task(self._flush(frame))
        else:
            self.pending = None

    def _next_frame(self) -> str:
        """The next frame of what is pending: what was published in the same turn (the
        acks of one batch of results, the commits of jobs started together) in one frame
        to an agent that reads batches."""
        assert self.pending is not None
        count = min(len(self.pending), BATCH_FRAME) if self.batching else 1
        return wire.frame_of([self.pending.popleft() for _ in range(count)])

    async def _flush(self, first: str | None = None) -> None:
        try:
            if first is not None:
                self.frames.frames_out.inc()
                await self.ws.send_text(first)
            while self.pending:
                frame = self._next_frame()
                self.frames.frames_out.inc()
                await self.ws.send_text(frame)
        except Exception:
            pass  # the connection is gone; the reads end the session
        finally:
            self.flusher = None
            self.pending = None

    def _slots_reported(self, msg: wire.Heartbeat) -> None:
        # An agent that reports only busy: all or nothing.
        self.held = msg.held if msg.held is not None else self.slots if msg.busy else 0
        self._pump()

    def _voted(self, ack: bool) -> None:
        self.unanswered = max(0, self.unanswered - 1)
        if ack:
            self.held += 1  # until its next heartbeat says how many it holds
        self._pump()

    def take(self, frame: Frame) -> Coroutine[Any, Any, None] | None:
        """Act on one frame from the agent: at once, as far as its messages allow (beats,
        acks, output and results are handed to the engine); the rest, in order, by the
        coroutine returned, which the caller awaits before the next frame. After a
        goodbye (``said_bye``) the connection ends."""
        self.frames.frames_in.inc()
        try:
            messages = wire.unbatch(wire.decode(frame))
        except wire.ProtocolError as exc:
            return self._rest([], 0, exc)
        for i, msg in enumerate(messages):
            try:
                done = self._act(msg)
            except (wire.ProtocolError, JobyardError) as exc:
                return self._rest(messages, i + 1, exc)
            if done is None:
                return self._rest(messages, i)
            if done:
                return None
        return None

    async def _rest(
        self, messages: list[wire.AnyMessage], i: int, failed: Exception | None = None
    ) -> None:
        if failed is not None:
            await self._answer(failed)
        for msg in messages[i:]:
            try:
                if await self._handle(msg):
                    return
            except (wire.ProtocolError, JobyardError) as exc:
                await self._answer(exc)

    async def _answer(self, exc: Exception) -> None:
        if isinstance(exc, wire.ProtocolError):
            await self._refused(exc)
        elif isinstance(exc, JobyardError):
            await self.send(wire.Error(message=exc.detail, code="refused"))

    async def _refused(self, exc: wire.ProtocolError) -> None:
        """Count a frame (or message) that is not valid and say why; the connection goes on."""
        self.frames.refused.labels(exc.reason).inc()
        log.warning("node %s sent a frame refused as %s: %s", self.name, exc.reason, exc)
        await self.send(wire.Error(message=str(exc), code=exc.reason))

    async def _handle(self, msg: wire.AnyMessage) -> bool:
        """Act on one message; True when the agent said goodbye."""
        done = self._act(msg)
        if done is not None:
            return done
        match msg:
            case wire.File():
                try:
                    data = base64.b64decode(msg.data, validate=True)
                except binascii.Error:
                    raise wire.ProtocolError("file data must be base64") from None
                await outputs.store_file(
                    self.svc, self.who, msg.job, msg.attempt, self.name, msg.name, data
                )
            case wire.InputRequest():
                await self._input_request(msg)
        return False

    def _act(self, msg: wire.AnyMessage) -> bool | None:
        """Act on a message that needs no waiting: True after a goodbye, False once done,
        None for one ``_handle`` acts on (a file, a request for input)."""
        org = self.who.org_id
        match msg:
            case wire.Heartbeat():
                self.engine.heartbeat(self.node_id, msg.busy)
                self._slots_reported(msg)
            case wire.AckCommit() | wire.NackCommit() | wire.AckRun():
                if not isinstance(msg, wire.AckRun):
                    self._voted(isinstance(msg, wire.AckCommit))
                reason = msg.reason if isinstance(msg, wire.NackCommit) else None
                self.engine.report(
                    Report(msg.kind, org, self.name, msg.job, msg.attempt, reason=reason)
                )
            case wire.Output():
                self.engine.report(
                    Report(
                        "output",
                        org,
                        self.name,
                        msg.job,
                        msg.attempt,
                        stream=msg.stream,
                        data=msg.data,
                    )
                )
            case wire.Result():
                self.engine.report(
                    Report(
                        "result",
                        org,
                        self.name,
                        msg.job,
                        msg.attempt,
                        status=msg.status,
                        exit_code=msg.exit_code,
                        reason=msg.reason[:500] if msg.reason else None,
                    )
                )
            case wire.File() | wire.InputRequest():
                return None
            case wire.Bye():
                self.said_bye = True
                return True
            case _:
                raise wire.ProtocolError(
                    f"{msg.kind} is not a message an agent sends once connected", "unexpected"
                )
        return False

    async def _input_request(self, msg: wire.InputRequest) -> None:
        """A running command asks a person for input: record it, then relay the answer."""
        job, attempt = msg.ref
        ask = approvals.InputAsk(
            job_id=job,
            node=self.name,
            attempt=attempt,
            fields=msg.fields,
            prompt=msg.prompt,
            timeout=msg.timeout,
        )
        topic = approvals.input_topic(job)
        # Subscribe before recording, so that even an instant answer is not missed.
        ready = asyncio.Event()
        task = asyncio.create_task(self._relay_answer(topic, job, attempt, ready))
        if self.waiting is None:
            self.waiting = set()
        self.waiting.add(task)
        task.add_done_callback(self.waiting.discard)
        await ready.wait()
        try:
            await approvals.request_input(self.svc, self.who.org_id, ask)
        except JobyardError as exc:
            task.cancel()
            await self.send(
                wire.Input(job=job, attempt=attempt, status="refused", error=exc.detail)
            )

    async def _relay_answer(self, topic: str, job: int, attempt: int, ready: asyncio.Event) -> None:
        async with self.svc.hub.subscribe(topic, maxsize=0) as answers:
            ready.set()
            while True:
                answer = await answers.get()
                if not isinstance(answer, dict) or answer.get("node") != self.name:
                    continue
                await self.send(
                    wire.Input(
                        job=job,
                        attempt=attempt,
                        request_id=answer.get("request_id"),
                        status=str(answer.get("status")),
                        values=answer.get("values"),
                    )
                )
                return
