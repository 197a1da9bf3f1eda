"""The agents' socket once connected, on a fake transport: frames are handled as they
arrive, those behind a handler that waits are queued in order (reading paused while many
wait), pings are answered, a goodbye ends the session, and a writer that does not read is
dropped."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any

from prometheus_client import CollectorRegistry
from uvicorn.server import ServerState

from jobyard.api import agent_socket
from jobyard.api import ws_frames as f
from jobyard.service.metrics import AgentFrames


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.paused = self.closed = self.aborted = False
        self.pauses = 0
        self.buffered = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class FakeSession:
    """Frames starting with "wait" need a coroutine (as a file does), the rest not."""

    name = "n1"

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.said_bye = False
        self.gate = asyncio.Event()
        self.ended = False

    def take(self, frame: str | bytes) -> Coroutine[Any, Any, None] | None:
        text = str(frame)
        if text == "bye":
            self.said_bye = True
            return None
        if text.startswith("wait"):
            return self._wait(text)
        self.seen.append(text)
        return None

    async def _wait(self, text: str) -> None:
        await self.gate.wait()
        self.seen.append(text)

    async def end(self) -> None:
        self.ended = True


def connected() -> tuple[agent_socket.AgentSocket, Transport, FakeSession]:
    state = ServerState()
    frames = AgentFrames(CollectorRegistry())
    kind = agent_socket.agent_sockets(None, frames, asyncio.Protocol)  # type: ignore[arg-type]
    sock = kind(config=None, server_state=state, app_state={})
    transport = Transport()
    sock.connection_made(transport)
    sock.handshake = None
    sock.parser = f.FrameParser()
    sock.accepted = True
    session = FakeSession()
    sock.session = session  # type: ignore[assignment]
    return sock, transport, session


def text(payload: str) -> bytes:
    return f.encode(f.TEXT, payload.encode(), mask=os.urandom(4))


def sent(transport: Transport) -> list[f.Event]:
    return f.FrameParser(masked=False).feed(b"".join(transport.written))


async def test_frames_behind_a_waiting_handler_keep_their_order() -> None:
    sock, transport, session = connected()
    sock.data_received(text("a") + text("wait-b") + text("c"))
    assert session.seen == ["a"] and sock.task is not None  # c waits behind wait-b
    many = [f"d{i}" for i in range(agent_socket.QUEUE_HIGH)]
    sock.data_received(b"".join(text(m) for m in many))
    assert transport.paused  # too many waiting: reading paused
    session.gate.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert session.seen == ["a", "wait-b", "c", *many]
    assert not transport.paused and sock.task is None and sock.inbox is None
    sock.data_received(text("e"))  # idle again: handled at once, no task
    assert session.seen[-1] == "e" and sock.task is None


async def test_ping_is_answered_and_a_close_is_echoed() -> None:
    sock, transport, _ = connected()
    sock.data_received(f.encode(f.PING, b"hi", mask=os.urandom(4)))
    assert sent(transport) == [(f.PONG, b"hi")]
    sock.data_received(f.encode(f.CLOSE, f.close_payload(1000, "done"), mask=os.urandom(4)))
    assert sent(transport)[-1] == (f.CLOSE, f.close_payload(1000))
    assert transport.closed


async def test_a_goodbye_ends_the_session_and_the_connection() -> None:
    sock, transport, session = connected()
    sock.data_received(text("a") + text("bye") + text("ignored"))
    assert sock.task is not None
    await sock.task
    assert session.ended and session.seen == ["a"] and transport.closed


async def test_the_session_ends_when_the_connection_is_lost() -> None:
    sock, _, session = connected()
    sock.connection_lost(None)
    assert sock.task is not None
    await sock.task
    assert session.ended and sock.session is None


async def test_a_malformed_frame_closes_with_1002() -> None:
    sock, transport, session = connected()
    sock.data_received(text("a") + f.encode(f.TEXT, b"unmasked"))
    assert session.seen == ["a"]
    assert sock.frames.refused.labels("websocket")._value.get() == 1
    assert f.parse_close(sent(transport)[-1][1]) == (  # type: ignore[arg-type]
        1002,
        "a client's frames must be masked",
    )
    assert transport.closed


async def test_a_peer_that_does_not_read_is_dropped() -> None:
    sock, transport, _ = connected()
    assert sock.now is not None and sock.now("one")
    transport.buffered = agent_socket.WRITE_LIMIT + 1
    sock.now("two")
    assert transport.aborted
    assert not sock.now("three")  # nothing more is written
