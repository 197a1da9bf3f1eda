"""The agents' WebSocket: one connection per node, dialled out by ``jobyard agent``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections import deque
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from jobyard import __version__
from jobyard.api.auth import authenticate, token_from
from jobyard.dispatch.engine import Engine
from jobyard.domain.errors import JobyardError
from jobyard.domain.nodes import Availability
from jobyard.domain.records import Principal
from jobyard.service import approvals, nodes, outputs, revocations
from jobyard.service.context import Services
from jobyard.service.metrics import AgentFrames
from jobyard.service.rounds import Report, node_topic
from jobyard.wire import agent as wire

router = APIRouter(tags=["agents"])
log = logging.getLogger("jobyard.agents")
HELLO_TIMEOUT = 10.0
BATCH_FRAME = 500  # messages in one frame at most


@router.websocket(wire.PATH)
async def agent_socket(ws: WebSocket) -> None:
    svc: Services = ws.app.state.services
    try:
        secret = token_from(ws)
        who = await authenticate(svc, secret or "", agent=True)
    except JobyardError as exc:
        await ws.close(code=4401, reason=exc.detail[:120])
        return
    # The database's identity rides on the handshake, before hello: the agent picks the
    # journal of this server (its job ids are only unique per database) before it says
    # which runs it holds and which results it will re-send.
    server_id = await nodes.server_identity(svc)
    await ws.accept(headers=[(wire.SERVER_HEADER.encode(), server_id.encode())])
    frames: AgentFrames = ws.app.state.metrics.agent_frames
    try:
        first = wire.decode(await asyncio.wait_for(receive_frame(ws), HELLO_TIMEOUT))
        frames.frames_in.inc()
        if not isinstance(first, wire.Hello):
            raise wire.ProtocolError("the first message must be hello", "unexpected")
        if first.version not in wire.SUPPORTED_VERSIONS:
            await _refuse(
                ws,
                version_refusal(first.version),
                code=wire.CLOSE_PROTOCOL_VERSION,
                why="protocol_version",
            )
            return
        hello = nodes.Hello.parse(first)
    except (TimeoutError, wire.ProtocolError, JobyardError, WebSocketDisconnect) as exc:
        if isinstance(exc, wire.ProtocolError):
            frames.refused.labels(exc.reason).inc()
        await _refuse(ws, exc)
        return
    engine = Engine.of(svc)
    # Listen before registering: what node_connected owes the node (commits, runs, aborts
    # sent while it was away) is published as its transaction commits, before serve().
    async with (
        svc.hub.subscribe(node_topic(who.org_id, hello.node), maxsize=0) as outbox,
        revocations.watch(svc, who) as changes,
    ):
        try:
            # Once more, now that changes are heard: a revocation since the first look
            # cleared the remembered authentication, so this one reads the database.
            await authenticate(svc, secret or "", agent=True)
            before = await nodes.availability_of(svc, who.org_id, hello.node)
            node = await nodes.node_connected(svc, who, hello, engine.replica)
        except JobyardError as exc:
            await _refuse(ws, exc)
            return
        session = Session(svc, engine, ws, who, node.id, hello.node, frames)
        session.slots, session.held = hello.slots, len(hello.running)
        session.batching = first.version >= wire.BATCH_VERSION
        session.reconnecting = before is Availability.RECONNECTING
        await session.serve(outbox, changes, secret or "")


def version_refusal(version: int) -> str:
    served = " or ".join(str(v) for v in sorted(wire.SUPPORTED_VERSIONS))
    return (
        f"this agent speaks protocol version {version}, this server (jobyard {__version__})"
        f" speaks version {served}: install jobyard {__version__} on the node"
        " (pip install jobyard==VERSION) and start the agent again"
    )


async def _refuse(
    ws: WebSocket, exc: Exception | str, code: int = wire.CLOSE_BAD_HELLO, why: str = "refused"
) -> None:
    """Say why in an error frame, then close: the agent cannot be served as it is."""
    if isinstance(exc, wire.ProtocolError):
        why = exc.reason
    detail = exc if isinstance(exc, str) else getattr(exc, "detail", None) or str(exc)
    detail = detail or "no hello"
    with contextlib.suppress(Exception):
        await ws.send_text(wire.encode(wire.Error(message=detail, code=why)))
        await ws.close(code=code, reason=detail[:120])


async def receive_frame(ws: WebSocket) -> str | bytes:
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

    def __init__(
        self,
        svc: Services,
        engine: Engine,
        ws: WebSocket,
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
        self.paced: deque[str] = deque()
        self.reconnecting = False  # was it reconnecting (after a server restart) at hello?
        self.pace_until = 0.0
        self.freed = asyncio.Event()
        self.waiting: set[asyncio.Task[None]] = set()

    async def serve(
        self, outbox: asyncio.Queue[Any], changes: asyncio.Queue[Any], secret: str
    ) -> None:
        """Serve the connection; ``outbox`` is the node's subscription to its commands,
        ``changes`` to changes of the credentials it connected with."""
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
        writer = asyncio.create_task(self._write(outbox))
        guard = asyncio.create_task(self._guard(changes, secret))
        try:
            await self._read()
        except WebSocketDisconnect:
            pass
        finally:
            for task in (writer, guard, *self.waiting):
                task.cancel()
            for task in (writer, guard):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self.engine.sessions.get(self.key) is self:
                del self.engine.sessions[self.key]
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

    async def _guard(self, changes: asyncio.Queue[Any], secret: str) -> None:
        """End the connection when its credentials change (revoked token, a role change
        or removal of its user): the agent reconnects and is authenticated afresh."""
        while not revocations.is_revocation(await changes.get()):
            pass
        try:
            await authenticate(self.svc, secret, agent=True)
        except JobyardError:
            self.revoked = True
            log.warning("node %s: its credentials were revoked; disconnected", self.name)
            await self.close("the agent's credentials were revoked", code=wire.CLOSE_TOKEN_REFUSED)
            return
        await self.close("the agent's credentials changed; reconnect", code=wire.CLOSE_RECONNECT)

    @property
    def free(self) -> int:
        return self.slots - self.held - self.unanswered

    async def _write(self, outbox: asyncio.Queue[Any]) -> None:
        loop = asyncio.get_running_loop()
        s = self.svc.settings
        if self.reconnecting:
            self.pace_until = loop.time() + s.node_ttl + s.node_grace
        getter: asyncio.Future[Any] | None = None
        try:
            while True:
                while self.paced and (self.free > 0 or loop.time() >= self.pace_until):
                    await self._send_out(self.paced.popleft())
                if not self.paced:  # the usual case: pass every message on as it comes
                    message = await (getter if getter is not None else outbox.get())
                    getter = None
                else:  # wait for a message, a freed slot or the end of pacing
                    if getter is None:
                        getter = asyncio.ensure_future(outbox.get())
                    freed = asyncio.ensure_future(self.freed.wait())
                    await asyncio.wait(
                        {getter, freed},
                        timeout=max(0.0, self.pace_until - loop.time()),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    freed.cancel()
                    self.freed.clear()
                    if not getter.done():
                        continue
                    message, getter = getter.result(), None
                # What else is queued by now (published in the same turn: the acks of one
                # batch of results, the commits of jobs started together) goes in one frame.
                messages = [message]
                while self.batching and len(messages) < BATCH_FRAME and not outbox.empty():
                    messages.append(outbox.get_nowait())
                out = []
                for message in messages:
                    if _is_commit(message) and loop.time() < self.pace_until:
                        self.paced.append(message)
                    else:
                        out.append(message)
                if out:
                    await self._send_out(*out)
        finally:
            if getter is not None:
                getter.cancel()

    async def _send_out(self, *messages: str) -> None:
        self.unanswered += sum(1 for m in messages if _is_commit(m))
        self.frames.frames_out.inc()
        await self.ws.send_text(wire.frame_of(list(messages)))

    def _slots_reported(self, msg: wire.Heartbeat) -> None:
        # An agent that reports only busy: all or nothing.
        self.held = msg.held if msg.held is not None else self.slots if msg.busy else 0
        self.freed.set()

    def _voted(self, ack: bool) -> None:
        self.unanswered = max(0, self.unanswered - 1)
        if ack:
            self.held += 1  # until its next heartbeat says how many it holds
        self.freed.set()

    async def _read(self) -> None:
        while True:
            frame = await receive_frame(self.ws)
            self.frames.frames_in.inc()
            try:
                messages = wire.unbatch(wire.decode(frame))
            except wire.ProtocolError as exc:
                await self._refused(exc)
                continue
            for msg in messages:
                try:
                    if await self._handle(msg):
                        return
                except wire.ProtocolError as exc:
                    await self._refused(exc)
                except JobyardError as exc:
                    await self.send(wire.Error(message=exc.detail, code="refused"))

    async def _refused(self, exc: wire.ProtocolError) -> None:
        """Count a frame (or message) that is not valid and say why; the connection goes on."""
        self.frames.refused.labels(exc.reason).inc()
        log.warning("node %s sent a frame refused as %s: %s", self.name, exc.reason, exc)
        await self.send(wire.Error(message=str(exc), code=exc.reason))

    async def _handle(self, msg: wire.AnyMessage) -> bool:
        """Act on one message; True when the agent said goodbye."""
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
