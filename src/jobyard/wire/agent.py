"""The agent protocol: JSON text frames over one WebSocket the agent dials out.

agent → server                              server → agent
  hello {node, incarnation, tags, cluster,    welcome {node, server, heartbeat_interval,
         running[], pending[], busy, slots}            reconnect_within}
                                              commit {job, attempt, command, argv, ...}
  heartbeat {busy, held}                      run {job, attempt}
  ack_commit {job, attempt}                   abort {job, attempt}
  nack_commit {job, attempt, reason}          ack {job, attempt}      (result applied)
  ack_run {job, attempt}                      error {message}
  output {job, attempt, stream, data}
  file {job, attempt, name, data (base64)}
  result {job, attempt, status, exit_code}
  input_request {job, attempt, fields, prompt, timeout}   input {job, attempt, status, values}
  bye {}

``slots`` is how many runs the agent takes at once; ``held`` (in heartbeats) how many
slots are taken. The agent also sends a heartbeat as soon as a slot is taken or freed.

``running`` in hello lists every run the agent holds a slot for (committed or running):
the server answers ``abort`` for those it no longer wants, ``run`` for ready ones whose
job runs, and crashes a running run the agent does not list.

The server's identity (an id made once per database) is sent as the ``X-Jobyard-Server``
header of the handshake's response, and again in ``welcome``: job ids are unique per
database only, so the agent keeps one journal per server identity and picks it before hello.

Every job message carries (job, attempt): the server refuses a result for a stale
attempt (fencing), and the agent never runs the same (job, attempt) twice.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

PROTOCOL_VERSION = 1
PATH = "/api/v1/agent/ws"
SERVER_HEADER = "x-jobyard-server"

AgentMessage = Literal[
    "hello",
    "heartbeat",
    "ack_commit",
    "nack_commit",
    "ack_run",
    "output",
    "file",
    "result",
    "input_request",
    "bye",
]
ServerMessage = Literal["welcome", "commit", "run", "abort", "ack", "input", "error"]

RESULT_STATUSES = ("succeeded", "failed", "aborted")
STREAMS = ("stdout", "stderr")


class ProtocolError(ValueError):
    """A frame that is not a valid protocol message."""


def encode(kind: str, **fields: Any) -> str:
    return orjson.dumps({"type": kind, **fields}).decode()


def decode(frame: str | bytes) -> dict[str, Any]:
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise ProtocolError("a message is a JSON object with a 'type'")
    return msg


def job_ref(msg: dict[str, Any]) -> tuple[int, int]:
    """The (job, attempt) a message is about."""
    job, attempt = msg.get("job"), msg.get("attempt")
    if not isinstance(job, int) or not isinstance(attempt, int) or isinstance(job, bool):
        raise ProtocolError("job and attempt must be integers")
    return job, attempt
