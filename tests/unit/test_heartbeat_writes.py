"""Heartbeats cost no database write unless something changed (dispatch/engine.py), on
SQLite and PostgreSQL: the statements each flush sends are counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from jobyard.dispatch.engine import Engine
from jobyard.domain.accounts import Role
from jobyard.domain.clock import FakeClock
from jobyard.domain.records import Principal
from jobyard.service import accounts, nodes
from jobyard.service.context import Services
from tests.conftest import Factory


@contextmanager
def statements(svc: Services) -> Iterator[list[str]]:
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    targets = svc.db.write_engines()
    for target in targets:
        event.listen(target, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        for target in targets:
            event.remove(target, "before_cursor_execute", seen)


async def _agent(svc: Services) -> Principal:
    factory = Factory(svc)
    org = await factory.org()
    return await accounts.authenticate(svc, (await factory.account(org, Role.AGENT)).token)


async def _node(svc: Services, agent: Principal, name: str) -> int:
    hello = nodes.Hello(
        node=name, incarnation="i1", tags=[], cluster=None, running=[], pending=[], busy=False
    )
    return (await nodes.node_connected(svc, agent, hello, "r1")).id


async def test_heartbeats_without_a_change_write_nothing(any_svc: Services) -> None:
    # Last-seen times are due once a third of TTL + grace has passed: not within this test.
    svc = dataclasses.replace(
        any_svc,
        clock=FakeClock(),
        settings=any_svc.settings.replace(node_ttl=3600, heartbeat_interval=60),
    )
    node = await _node(svc, await _agent(svc), "quiet")
    engine = Engine(svc)
    engine.said_hello(node, busy=False)
    with statements(svc) as sent:
        for _ in range(5):
            engine.heartbeat(node, False)
            await engine.flush_heartbeats()
    assert sent == []
    # A change of the busy flag is written at once, and only the flag.
    with statements(svc) as sent:
        engine.heartbeat(node, True)
        await engine.flush_heartbeats()
        engine.heartbeat(node, True)
        await engine.flush_heartbeats()
    writes = [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1 and "busy" in writes[0] and "last_heartbeat" not in writes[0]


async def test_last_seen_is_written_when_due_in_one_statement(any_svc: Services) -> None:
    clock = FakeClock()
    svc = dataclasses.replace(
        any_svc, clock=clock, settings=any_svc.settings.replace(node_ttl=0.0, node_grace=0.0)
    )
    agent = await _agent(svc)
    ids = [await _node(svc, agent, f"n{i}") for i in range(3)]
    engine = Engine(svc)
    for node in ids:
        engine.said_hello(node, busy=False)
        engine.heartbeat(node, False)
    clock.advance(30)
    with statements(svc) as sent:
        await engine.flush_heartbeats()
    writes = [s for s in sent if s.lstrip().upper().startswith("UPDATE")]
    assert len(writes) == 1 and "last_heartbeat" in writes[0]
    async with svc.db.read() as tx:
        seen = {n.id: n.last_heartbeat for n in await tx.nodes.online_of_replica("r1")}
    assert {seen[n] for n in ids} == {clock.now()}


async def test_a_node_gone_quiet_has_its_last_heartbeat_written_as_heard(
    any_svc: Services,
) -> None:
    clock = FakeClock()
    svc = dataclasses.replace(
        any_svc, clock=clock, settings=any_svc.settings.replace(node_ttl=3600)
    )
    node = await _node(svc, await _agent(svc), "quiet")
    engine = Engine(svc)
    engine.said_hello(node, busy=False)
    clock.advance(1)
    engine.heartbeat(node, False)
    heard = clock.now()
    await engine.flush_heartbeats()  # not due: nothing written yet
    clock.advance(svc.settings.heartbeat_interval * 3)  # then it says nothing more
    with statements(svc) as sent:
        await engine.flush_heartbeats()
    assert len([s for s in sent if s.lstrip().upper().startswith("UPDATE")]) == 1
    async with svc.db.read() as tx:
        seen = {n.id: n.last_heartbeat for n in await tx.nodes.online_of_replica("r1")}
    assert seen[node] == heard
    with statements(svc) as sent:
        await engine.flush_heartbeats()
    assert sent == []
