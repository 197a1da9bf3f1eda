"""The agents' WebSocket: one connection per node, dialled out by ``jobyard agent``."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from jobyard.api.auth import token_from
from jobyard.dispatch.engine import Engine
from jobyard.domain.errors import JobyardError
from jobyard.domain.records import Principal
from jobyard.service import accounts, approvals, nodes, outputs, revocations
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
        who = await accounts.authenticate(svc, secret or "")
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
            await accounts.authenticate(svc, secret or "")
            node = await nodes.node_connected(svc, who, hello, engine.replica)
        except JobyardError as exc:
            await _refuse(ws, exc)
            return
        session = Session(svc, engine, ws, who, node.id, hello.node)
        await session.serve(outbox, changes, secret or "")


async def _refuse(ws: WebSocket, exc: Exception) -> None:
    detail = getattr(exc, "detail", None) or str(exc) or "no hello"
    with contextlib.suppress(Exception):
        await ws.send_text(wire.encode("error", message=detail))
        await ws.close(code=4400, reason=detail[:120])


class Session:
    """One agent connection: its reads, its commands, and the input its commands wait for."""

    def __init__(
        self, svc: Services, engine: Engine, ws: WebSocket, who: Principal, node_id: int, name: str
    ) -> None:
        self.svc, self.engine, self.ws, self.who = svc, engine, ws, who
        self.node_id, self.name = node_id, name
        self.key = (who.org_id, name)
        self.said_bye = False
        self.revoked = False
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
            await accounts.authenticate(self.svc, secret)
        except JobyardError:
            self.revoked = True
            log.warning("node %s: its credentials were revoked; disconnected", self.name)
            await self.close("the agent's credentials were revoked", code=4401)
            return
        await self.close("the agent's credentials changed; reconnect", code=4000)

    async def _write(self, outbox: asyncio.Queue[Any]) -> None:
        while True:
            message = await outbox.get()
            await self.ws.send_text(message)

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
        elif kind in ("ack_commit", "nack_commit", "ack_run"):
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
