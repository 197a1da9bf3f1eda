"""The agents' WebSocket as ``jobyard serve`` speaks it (api/agent_socket.py), and as it
spoke it before (``JOBYARD_AGENT_SOCKET=uvicorn``: uvicorn's protocol and the ASGI
endpoint): the same handshake, frames and close codes; a client that breaks the WebSocket
protocol is closed with 1002 (or 1009 for an oversized message) and the others go on."""

from __future__ import annotations

import base64
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from jobyard.api import ws_frames as f
from jobyard.wire import agent as wire
from tests.e2e.procs import Server, bootstrap_admin
from tests.e2e.test_metrics import sample

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Yard:
    server: Server
    token: str
    agent_token: str

    def connect(self, token: str | None = None) -> ClientConnection:
        url = self.server.url.replace("http://", "ws://") + wire.PATH
        secret = token or self.agent_token
        return connect(url, additional_headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture(scope="module", params=["own", "uvicorn"])
def yard(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Yard]:
    env = {"JOBYARD_AGENT_SOCKET": request.param}
    with Server(tmp_path_factory.mktemp("socket") / "server", env=env) as server:
        org, email, token = bootstrap_admin(server)
        made = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
        yield Yard(server, token, made["token"])


def hello(node: str) -> str:
    return wire.encode(
        wire.Hello(version=wire.PROTOCOL_VERSION, node=node, incarnation=uuid.uuid4().hex)
    )


def messages(ws: ClientConnection) -> list[wire.AnyMessage]:
    return wire.unbatch(wire.decode(ws.recv(timeout=15)))


def welcomed(ws: ClientConnection, node: str) -> None:
    ws.send(hello(node))
    assert isinstance(messages(ws)[0], wire.Welcome)


def error_of(ws: ClientConnection) -> wire.Error:
    while True:
        for message in messages(ws):
            if isinstance(message, wire.Error):
                return message


def raw_upgrade(yard: Yard) -> tuple[socket.socket, bytes]:
    """A WebSocket handshake by hand: the socket and the server's response head."""
    sock = socket.create_connection(("127.0.0.1", yard.server.port), timeout=15)
    try:
        return _upgraded(yard, sock)
    except BaseException:
        sock.close()
        raise


def _upgraded(yard: Yard, sock: socket.socket) -> tuple[socket.socket, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {wire.PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {yard.agent_token}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    fields = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    assert fields[b"sec-websocket-accept"] == f.accept_key(key).encode(), head
    assert fields[wire.SERVER_HEADER.lower().encode()], head
    return sock, head


def closing_frames(sock: socket.socket) -> list[f.Event]:
    """What the server sends until it closes the connection."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return f.FrameParser(masked=False).feed(data)


def refused_frames(yard: Yard) -> float:
    with yard.server.client(yard.token) as api:
        return (
            sample(
                api.get("/metrics").text, "jobyard_agent_frames_refused_total", reason="malformed"
            )
            or 0.0
        )


def test_a_connection_is_welcomed_answers_bad_messages_and_says_goodbye(yard: Yard) -> None:
    with yard.connect() as ws:
        assert ws.response.headers[wire.SERVER_HEADER]
        welcomed(ws, "sock1")
        before = refused_frames(yard)
        ws.send("not json")
        assert error_of(ws).code == "malformed"
        assert refused_frames(yard) == before + 1
        ws.ping(b"still there").wait(timeout=15)
        ws.send(wire.encode(wire.Bye()))


def test_a_bad_token_is_refused_with_403(yard: Yard) -> None:
    with pytest.raises(InvalidStatus) as refused:
        yard.connect(token="jy_not_a_token").close()
    assert refused.value.response.status_code == 403


def test_another_websocket_path_is_left_to_uvicorn_as_before(yard: Yard) -> None:
    url = yard.server.url.replace("http://", "ws://") + "/api/v1/not-a-socket"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers={"Authorization": f"Bearer {yard.agent_token}"}).close()
    assert refused.value.response.status_code == 403  # FastAPI: no such WebSocket route
    with yard.connect() as ws:
        welcomed(ws, "sock4")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (f.encode(f.TEXT, hello("sockbad").encode()), f.CLOSE_PROTOCOL_ERROR),  # unmasked
        (bytes([0x81 | 0x20, 0x80]) + b"\0\0\0\0", f.CLOSE_PROTOCOL_ERROR),  # RSV2
        (bytes([0x82, 0xFF]) + (32 << 20).to_bytes(8, "big") + b"mask", f.CLOSE_TOO_BIG),
    ],
)
def test_a_malformed_frame_closes_that_connection_cleanly_and_the_others_go_on(
    yard: Yard, frame: bytes, code: int
) -> None:
    with yard.connect() as ws:
        welcomed(ws, "sock2")
        sock, _ = raw_upgrade(yard)
        with sock:
            sock.sendall(frame)
            events = closing_frames(sock)
        assert events and events[-1][0] == f.CLOSE, events
        assert f.parse_close(events[-1][1])[0] == code  # type: ignore[arg-type]
        # The other connection is still served, and new ones are welcomed.
        ws.send("[1]")
        assert error_of(ws).code == "malformed"
        with yard.connect() as other:
            welcomed(other, "sock3")
