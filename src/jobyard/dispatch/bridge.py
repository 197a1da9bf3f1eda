"""Several ``jobyard serve`` replicas on one PostgreSQL: carrying hub messages between them.

Agents connect to any replica. A command for a node connected elsewhere, and every event
(for live streams), travel through PostgreSQL ``LISTEN/NOTIFY`` on one channel:

    {"r": replica, "t": "node:ORG:NAME", "m": "<frame>"}   a command for a node
    {"r": replica, "t": "node:ORG:NAME", "resync": true}   too big to carry: re-derive it
    {"r": replica, "t": "events", "ids": [..]}             events to load and publish
    {"r": replica, "t": "events", "a": {"o": ORG, "j": [..], "k": [..], "e": [..]}}
                                                           an organization's events appended
                                                           (jobs, kinds, jobs ended): told to
                                                           the streams that follow them
    {"r": replica, "t": "input:JOB", "j": {..}}            an answer for a waiting command
    {"r": replica, "t": "revoked:...", "j": {..}}          credentials changed: forget them,
                                                           end the connections they opened

NOTIFY is delivered only after commit and never to a listener that was not there, so a
replica that restarts relies on the usual reconnect path (agents re-hello, streams replay
by id): the bridge only makes things faster, never the only path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from jobyard.domain.records import Event
from jobyard.service import accounts, nodes, revocations
from jobyard.service.context import Services
from jobyard.service.events import EVENTS, Appended
from jobyard.service.events import publish as publish_event

log = logging.getLogger("jobyard.bridge")
CHANNEL = "jobyard"
MAX_PAYLOAD = 7000
MAX_IDS = 500
MAX_TOPICS = 500  # jobs in one appended-notice


def _dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class Bridge:
    def __init__(self, svc: Services, replica: str, has_node: Any) -> None:
        self.svc = svc
        self.replica = replica
        self.has_node = has_node  # (org_id, name) -> bool: is that node connected here?
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.tasks: set[asyncio.Task[Any]] = set()

    def forward(self, topic: str, message: Any, delivered: bool) -> None:
        if topic.startswith("node:"):
            if delivered:
                return  # the node is connected to this replica
            if isinstance(message, str) and len(message) < MAX_PAYLOAD:
                self.outgoing.put_nowait({"t": topic, "m": message})
            else:
                self.outgoing.put_nowait({"t": topic, "resync": True})
        elif topic.startswith(("input:", revocations.PREFIX)) and isinstance(message, dict):
            self.outgoing.put_nowait({"t": topic, "j": message})
        elif topic == EVENTS and isinstance(message, Event):
            self.outgoing.put_nowait({"t": EVENTS, "ids": [message.id]})
        elif topic == EVENTS and isinstance(message, Appended):
            self.outgoing.put_nowait({"t": EVENTS, "a": message})

    async def _send(self, conn: asyncpg.Connection) -> None:
        while True:
            first = await self.outgoing.get()
            batch = [first]
            while not self.outgoing.empty() and len(batch) < 2000:
                batch.append(self.outgoing.get_nowait())
            ids = [i for p in batch if "ids" in p for i in p["ids"]]
            appended = [p["a"] for p in batch if "a" in p]
            payloads = [p for p in batch if p["t"] != EVENTS]
            for start in range(0, len(ids), MAX_IDS):
                payloads.append({"t": EVENTS, "ids": ids[start : start + MAX_IDS]})
            if appended:
                payloads += [{"t": EVENTS, "a": a} for a in _merged(appended)]
            for p in payloads:
                p["r"] = self.replica
                await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps(p))

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            data = json.loads(payload)
        except ValueError:
            return
        if data.get("r") == self.replica:
            return
        task = asyncio.create_task(self._handle(data))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, data: dict[str, Any]) -> None:
        topic = data.get("t", "")
        try:
            if topic == EVENTS and isinstance(data.get("a"), dict):
                self._appended(data["a"])
            elif topic == EVENTS:
                async with self.svc.db.read() as tx:
                    events = await tx.events.by_ids([int(i) for i in data.get("ids", [])])
                for event in events:
                    _publish_local(self.svc, event)
            elif topic.startswith("input:") and isinstance(data.get("j"), dict):
                self.svc.hub.publish_local(topic, data["j"])
            elif topic.startswith(revocations.PREFIX) and isinstance(data.get("j"), dict):
                accounts.forget_tokens(self.svc)  # not 2 s of remembered authentications
                self.svc.hub.publish_local(topic, data["j"])
            elif topic.startswith("node:"):
                _, org, name = topic.split(":", 2)
                if not self.has_node(int(org), name):
                    return
                if data.get("resync"):
                    await nodes.resend_pending(self.svc, int(org), name)
                elif isinstance(data.get("m"), str):
                    self.svc.hub.publish_local(topic, data["m"])
        except Exception:
            log.exception("bridge message %s failed", topic)

    def _appended(self, notice: dict[str, Any]) -> None:
        """Another replica appended events: tell the streams here that follow their topics
        (they read the events from the log); nothing is read for topics nobody follows."""
        appended = Appended(
            org=int(notice.get("o", 0)),
            jobs=frozenset(int(i) for i in notice.get("j", [])),
            kinds=frozenset(str(k) for k in notice.get("k", [])),
            ended=frozenset(int(i) for i in notice.get("e", [])),
        )
        hub = self.svc.hub
        for topic in appended.topics():
            if hub.subscribers(topic):
                hub.publish_local(topic, appended)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        dsn = _dsn(self.svc.db.url)
        # Named after the replica: a replica starting reads which others are alive
        # (pg_stat_activity), so that only the nodes of a dead one count as reconnecting.
        listener = await asyncpg.connect(
            dsn, server_settings={"application_name": f"jobyard:{self.replica}"}
        )
        sender = await asyncpg.connect(dsn)
        await listener.add_listener(CHANNEL, self._on_notify)
        self.svc.hub.forward = self.forward
        task = asyncio.create_task(self._send(sender), name="bridge-send")
        try:
            yield
        finally:
            self.svc.hub.forward = None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for t in list(self.tasks):
                t.cancel()
            await listener.close()
            await sender.close()


def _merged(notices: list[Appended]) -> list[dict[str, Any]]:
    """Notices as few payloads: one per organization (a topic needs telling once), at most
    MAX_TOPICS jobs each, so that a payload stays under MAX_PAYLOAD."""
    by_org: dict[int, list[Appended]] = {}
    for n in notices:
        by_org.setdefault(n.org, []).append(n)
    out = []
    for org, mine in by_org.items():
        jobs = sorted({i for n in mine for i in n.jobs})
        kinds = sorted({k for n in mine for k in n.kinds})
        ended = {i for n in mine for i in n.ended}
        for start in range(0, max(len(jobs), 1), MAX_TOPICS):
            part = jobs[start : start + MAX_TOPICS]
            out.append({"o": org, "j": part, "k": kinds, "e": [j for j in part if j in ended]})
    return out


def _publish_local(svc: Services, event: Event) -> None:
    hub = svc.hub
    forward, hub.forward = hub.forward, None
    try:
        publish_event(svc, event)
    finally:
        hub.forward = forward
