"""The agent protocol against a real ``jobyard serve``: a raw WebSocket client speaks it.

Frames a server cannot read are counted and answered with an ``error`` frame, and the
connection goes on; a hello of a protocol version the server does not speak is refused
with an error naming both versions and a documented close code, and a real ``jobyard
agent`` of such a version stops with a clear message instead of retrying.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from jobyard.wire import agent as wire
from tests.e2e.procs import Server, bootstrap_admin, clean_env
from tests.e2e.test_metrics import sample

pytestmark = pytest.mark.e2e
M = TypeVar("M", bound=wire.Message)


@dataclass(frozen=True)
class Yard:
    server: Server
    token: str
    agent_token: str

    def connect(self) -> ClientConnection:
        url = self.server.url.replace("http://", "ws://") + wire.PATH
        return connect(url, additional_headers={"Authorization": f"Bearer {self.agent_token}"})

    def api(self) -> httpx.Client:
        return self.server.client(self.token)


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Yard]:
    with Server(tmp_path_factory.mktemp("protocol") / "server") as server:
        org, email, token = bootstrap_admin(server)
        made = server.admin("create-token", "--org", org, "--email", email, "--role", "agent")
        yield Yard(server, token, made["token"])


def hello(node: str, version: int = wire.PROTOCOL_VERSION) -> wire.Hello:
    return wire.Hello(version=version, node=node, incarnation=uuid.uuid4().hex)


# Messages received in a batch frame and not read yet, by connection.
_unread: dict[int, list[wire.AnyMessage]] = {}
# Frames received, by connection, as text.
_frames: dict[int, list[str]] = {}


def receive(ws: ClientConnection) -> wire.AnyMessage:
    """The next message, whether it came alone or in a batch frame."""
    unread = _unread.setdefault(id(ws), [])
    if not unread:
        frame = ws.recv(timeout=15)
        _frames.setdefault(id(ws), []).append(str(frame))
        unread.extend(wire.unbatch(wire.decode(frame)))
    return unread.pop(0)


def receive_kind(ws: ClientConnection, kind: type[M]) -> M:
    """The next message of ``kind``; heartbeat-driven messages of other kinds are skipped."""
    while not isinstance(message := receive(ws), kind):
        pass
    return message


def batch(*messages: wire.AgentMessage | str) -> str:
    """One batch frame of these messages (a str is put in as it is: a malformed one)."""
    return wire.frame_of([m if isinstance(m, str) else wire.encode(m) for m in messages])


def refused(yard: Yard) -> dict[str, float]:
    with yard.api() as api:
        text = api.get("/metrics").text
    return {
        reason: sample(text, "jobyard_agent_frames_refused_total", reason=reason) or 0.0
        for reason in ("malformed", "unknown", "unexpected")
    }


def test_bad_frames_are_answered_with_errors_and_the_connection_still_runs_a_job(
    yard: Yard,
) -> None:
    before = refused(yard)
    with yard.connect() as ws:
        # A version 1 agent: one message a frame, both ways.
        ws.send(wire.encode(hello("raw1", version=1)))
        assert isinstance(receive(ws), wire.Welcome)
        bad = [
            ("not json at all", "malformed", "not a JSON message"),
            ("[1, 2, 3]", "malformed", "Expected `object`"),
            ('{"job": 1}', "malformed", "missing required field `type`"),
            ('{"type": "teleport", "job": 1}', "unknown", "'teleport'"),
            ('{"type": "ack_commit", "job": "7", "attempt": 0}', "malformed", "$.job"),
            ('{"type": "ack_run", "job": true, "attempt": 0}', "malformed", "$.job"),
            ('{"type": "output", "job": 1, "attempt": 0, "stream": "tty", "data": "x"}',
             "malformed", "$.stream"),
            ('{"type": "result", "job": 1, "attempt": 0, "status": "fine"}', "malformed",
             "$.status"),
            ('{"type": "heartbeat", "held": -1}', "malformed", "$.held"),
            ('{"type": "file", "job": 1, "attempt": 0, "name": "f", "data": "%%%"}',
             "malformed", "base64"),
            (b"\x00\xff binary", "malformed", "not a JSON message"),
            (wire.encode(wire.Commit(job=1, attempt=0)), "unexpected", "commit"),
            (wire.encode(hello("raw1")), "unexpected", "hello"),
            (batch(wire.Heartbeat(), '{"type": "ack", "job": 1}'), "malformed", "$.messages[1]"),
        ]  # fmt: skip
        for frame, code, words in bad:
            ws.send(frame)
            error = receive_kind(ws, wire.Error)
            assert (error.code, words in error.message) == (code, True), (frame, error)

        # The same connection still carries a whole run.
        with yard.api() as api:
            made = api.post("/api/v1/jobs", json={"command": "true", "nodes": ["raw1"]})
            assert made.status_code == 201, made.text
            job_id = made.json()["id"]
            commit = receive_kind(ws, wire.Commit)
            assert (commit.job, commit.command) == (job_id, "true")
            ws.send(wire.encode(wire.AckCommit(job=job_id, attempt=commit.attempt)))
            run = receive_kind(ws, wire.Run)
            ws.send(wire.encode(wire.AckRun(job=job_id, attempt=run.attempt)))
            ws.send(wire.encode(wire.Output(job=job_id, attempt=0, stream="stdout", data="hi\n")))
            done = wire.Result(job=job_id, attempt=run.attempt, status="succeeded", exit_code=0)
            ws.send(wire.encode(done))
            assert receive_kind(ws, wire.Ack).job == job_id
            job = api.get(f"/api/v1/jobs/{job_id}").json()
            assert job["status"] == "complete", job
            assert [r["status"] for r in job["node_runs"]] == ["succeeded"]
            assert api.get(f"/api/v1/jobs/{job_id}/output/raw1/stdout").text == "hi\n"
        ws.send(wire.encode(wire.Bye()))
    assert not any('"type":"batch"' in frame for frame in _frames[id(ws)])

    after = refused(yard)
    counts = {code: 0 for code in before}
    for _, code, _ in bad:
        counts[code] += 1
    assert {k: after[k] - before[k] for k in after} == counts


def test_a_hello_that_is_not_valid_is_refused_with_the_reason(yard: Yard) -> None:
    with yard.connect() as ws:
        ws.send('{"type": "hello", "version": 1, "node": "raw2", "incarnation": "i", "slots": 0}')
        error = receive(ws)
        assert isinstance(error, wire.Error) and "$.slots" in error.message, error
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == wire.CLOSE_BAD_HELLO


def test_an_agent_of_another_protocol_version_is_refused_naming_both(yard: Yard) -> None:
    with yard.connect() as ws:
        ws.send(wire.encode(hello("raw3", version=99)))
        error = receive(ws)
        assert isinstance(error, wire.Error) and error.code == "protocol_version", error
        served = " or ".join(str(v) for v in sorted(wire.SUPPORTED_VERSIONS))
        assert "version 99" in error.message and f"speaks version {served}" in error.message
        assert "install jobyard" in error.message
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=15)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == wire.CLOSE_PROTOCOL_VERSION
    with yard.api() as api:
        assert api.get("/api/v1/nodes/raw3").status_code == 404  # never registered


def test_the_agent_command_stops_when_its_version_is_refused(yard: Yard, tmp_path: Path) -> None:
    """A real ``jobyard agent`` whose protocol version the server does not speak (the
    constant changed in its process, as an agent of another release would have it)."""
    start = (
        "import sys; import jobyard.wire.agent as w; w.PROTOCOL_VERSION = 99;"
        " from jobyard.cli.main import main; sys.argv[0] = 'jobyard'; main()"
    )
    args = ["--server", yard.server.url, "--token", yard.agent_token, "--name", "old1"]
    proc = subprocess.run(
        [sys.executable, "-c", start, "agent", *args, "--state-dir", str(tmp_path / "state")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 7, proc.stderr
    assert "protocol version 99" in proc.stderr and "install jobyard" in proc.stderr, proc.stderr


def test_batch_frames_carry_a_whole_run_and_each_message_is_checked(yard: Yard) -> None:
    with yard.connect() as ws, yard.api() as api:
        ws.send(wire.encode(hello("raw4")))
        welcome = receive(ws)
        assert isinstance(welcome, wire.Welcome) and welcome.version == wire.PROTOCOL_VERSION
        made = api.post("/api/v1/jobs", json={"command": "true", "nodes": ["raw4"]})
        assert made.status_code == 201, made.text
        job_id = made.json()["id"]
        commit = receive_kind(ws, wire.Commit)
        # A message the server does not take, inside a batch: refused alone, the rest goes on.
        vote = wire.AckCommit(job=job_id, attempt=commit.attempt)
        ws.send(batch(wire.Heartbeat(held=1), wire.Run(job=job_id, attempt=0), vote))
        error = receive_kind(ws, wire.Error)
        assert (error.code, "run is not a message" in error.message) == ("unexpected", True)
        run = receive_kind(ws, wire.Run)
        ws.send(
            batch(
                wire.AckRun(job=job_id, attempt=run.attempt),
                wire.Output(job=job_id, attempt=run.attempt, stream="stdout", data="one\n"),
                wire.Output(job=job_id, attempt=run.attempt, stream="stdout", data="two\n"),
                wire.Heartbeat(held=0),
                wire.Result(job=job_id, attempt=run.attempt, status="succeeded", exit_code=0),
            )
        )
        assert receive_kind(ws, wire.Ack).job == job_id
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        assert (job["status"], job["node_runs"][0]["status"]) == ("complete", "succeeded"), job
        assert api.get(f"/api/v1/jobs/{job_id}/output/raw4/stdout").text == "one\ntwo\n"
        ws.send(batch(wire.Heartbeat(), wire.Bye()))
