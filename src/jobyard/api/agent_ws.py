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

from jobyard.api.auth import authenticate, token_from
from jobyard.dispatch.engine import Engine
from jobyard.domain.errors import JobyardError
from jobyard.domain.nodes import Availability
from jobyard.domain.records import Principal
from jobyard.service import approvals, nodes, outputs, revocations
from jobyard.service.context import Services
from jobyard.service.rounds import Report, node_topic
from jobyard.wire import agent as wire

router = APIRouter(tags=["agents"])
log = logging.getLogger("jobyard.agents")
HELLO_TIMEOUT = 10.0


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
    try:
        first = wire.decode(await asyncio.wait_for(ws.receive_text(), HELLO_TIMEOUT))
        if first["type"] != "hello":
            raise wire.ProtocolError("the first message must be hello")
        hello = nodes.Hello.parse(first)
    except (TimeoutError, wire.ProtocolError, JobyardError, WebSocketDisconnect) as exc:
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
        session = Session(svc, engine, ws, who, node.id, hello.node)
        session.slots, session.held = hello.slots, len(hello.running)
        session.reconnecting = before is Availability.RECONNECTING
        await session.serve(outbox, changes, secret or "")


async def _refuse(ws: WebSocket, exc: Exception) -> None:
    detail = getattr(exc, "detail", None) or str(exc) or "no hello"
    with contextlib.suppress(Exception):
        await ws.send_text(wire.encode("error", message=detail))
        await ws.close(code=4400, reason=detail[:120])


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
        self, svc: Services, engine: Engine, ws: WebSocket, who: Principal, node_id: int, name: str
    ) -> None:
        self.svc, self.engine, self.ws, self.who = svc, engine, ws, who
        self.node_id, self.name = node_id, name
        self.key = (who.org_id, name)
        self.said_bye = False
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
        await self.ws.send_text(
            wire.encode(
                "welcome",
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

    async def close(self, reason: str, code: int = 4409) -> None:
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
            await self.close("the agent's credentials were revoked", code=4401)
            return
        await self.close("the agent's credentials changed; reconnect", code=4000)

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
                if _is_commit(message) and loop.time() < self.pace_until:
                    self.paced.append(message)
                else:
                    await self._send_out(message)
        finally:
            if getter is not None:
                getter.cancel()

    async def _send_out(self, message: str) -> None:
        if _is_commit(message):
            self.unanswered += 1
        await self.ws.send_text(message)

    def _slots_reported(self, msg: dict[str, Any]) -> None:
        held = msg.get("held")
        if isinstance(held, int) and not isinstance(held, bool):
            self.held = held
        else:  # an agent that reports only busy
            self.held = self.slots if msg.get("busy") else 0
        self.freed.set()

    def _voted(self, ack: bool) -> None:
        self.unanswered = max(0, self.unanswered - 1)
        if ack:
            self.held += 1  # until its next heartbeat says how many it holds
        self.freed.set()

    async def _read(self) -> None:
        while True:
            frame = await self.ws.receive_text()
            try:
                msg = wire.decode(frame)
                if await self._handle(msg):
                    return
            except (wire.ProtocolError, JobyardError) as exc:
                detail = getattr(exc, "detail", None) or str(exc)
                await self.ws.send_text(wire.encode("error", message=detail))

    async def _handle(self, msg: dict[str, Any]) -> bool:
        kind = msg["type"]
        org = self.who.org_id
        if kind == "heartbeat":
            self.engine.heartbeat(self.node_id, bool(msg.get("busy")))
            self._slots_reported(msg)
        elif kind in ("ack_commit", "nack_commit", "ack_run"):
            if kind != "ack_run":
                self._voted(kind == "ack_commit")
            job, attempt = wire.job_ref(msg)
            reason = msg.get("reason") if isinstance(msg.get("reason"), str) else None
            self.engine.report(Report(kind, org, self.name, job, attempt, reason=reason))
        elif kind == "output":
            job, attempt = wire.job_ref(msg)
            stream, data = msg.get("stream"), msg.get("data")
            if stream not in wire.STREAMS or not isinstance(data, str):
                raise wire.ProtocolError("output needs stream stdout|stderr and string data")
            self.engine.report(
                Report("output", org, self.name, job, attempt, stream=stream, data=data)
            )
        elif kind == "result":
            job, attempt = wire.job_ref(msg)
            status, code = msg.get("status"), msg.get("exit_code")
            if status not in wire.RESULT_STATUSES:
                raise wire.ProtocolError(f"result status is one of {wire.RESULT_STATUSES}")
            if code is not None and not isinstance(code, int):
                raise wire.ProtocolError("exit_code must be an integer")
            why = msg.get("reason")  # why a run failed before or after its command
            reason = why[:500] if isinstance(why, str) and why else None
            self.engine.report(
                Report(
                    "result",
                    org,
                    self.name,
                    job,
                    attempt,
                    status=status,
                    exit_code=code,
                    reason=reason,
                )
            )
        elif kind == "file":
            job, attempt = wire.job_ref(msg)
            try:
                data = base64.b64decode(msg.get("data") or "", validate=True)
            except (binascii.Error, TypeError):
                raise wire.ProtocolError("file data must be base64") from None
            await outputs.store_file(
                self.svc, self.who, job, attempt, self.name, str(msg.get("name")), data
            )
        elif kind == "input_request":
            await self._input_request(msg)
        elif kind == "bye":
            self.said_bye = True
            return True
        else:
            raise wire.ProtocolError(f"unknown message type {kind!r}")
        return False

    async def _input_request(self, msg: dict[str, Any]) -> None:
        """A running command asks a person for input: record it, then relay the answer."""
        job, attempt = wire.job_ref(msg)
        fields = msg.get("fields")
        timeout = msg.get("timeout", 3600)
        if not isinstance(fields, list) or not isinstance(timeout, (int, float)):
            raise wire.ProtocolError("input_request needs fields (a list) and a timeout")
        ask = approvals.InputAsk(
            job_id=job,
            node=self.name,
            attempt=attempt,
            fields=fields,
            prompt=str(msg.get("prompt") or ""),
            timeout=float(timeout),
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
            await self.ws.send_text(
                wire.encode(
                    "input",
                    job=job,
                    attempt=attempt,
                    status="refused",
                    values=None,
                    error=exc.detail,
                )
            )

    async def _relay_answer(self, topic: str, job: int, attempt: int, ready: asyncio.Event) -> None:
        async with self.svc.hub.subscribe(topic, maxsize=0) as answers:
            ready.set()
            while True:
                answer = await answers.get()
                if not isinstance(answer, dict) or answer.get("node") != self.name:
                    continue
                await self.ws.send_text(
                    wire.encode(
                        "input",
                        job=job,
                        attempt=attempt,
                        request_id=answer.get("request_id"),
                        status=answer.get("status"),
                        values=answer.get("values"),
                    )
                )
                return
