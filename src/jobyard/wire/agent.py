"""The agent protocol: JSON text frames over one WebSocket the agent dials out.

Every frame is a JSON object whose ``type`` names its message; each message is a frozen
model below, shared by the server, the agent and the tests. ``encode(message)`` writes a
frame, ``decode(frame)`` reads one: it dispatches on ``type`` and checks every field's
type, raising ``ProtocolError`` (with ``reason`` ``malformed`` or ``unknown``) otherwise.
Fields a message does not define are ignored (a newer peer may send more).

agent → server                              server → agent
  hello {version, node, incarnation, tags,    welcome {version, node, server,
         cluster, running[], pending[],                heartbeat_interval, reconnect_within}
         busy, slots}                         commit {job, attempt, command, argv, ...}
  heartbeat {busy, held}                      run {job, attempt}
  ack_commit {job, attempt}                   abort {job, attempt}
  nack_commit {job, attempt, reason}          ack {job, attempt}      (result applied)
  ack_run {job, attempt}                      input {job, attempt, status, values, ...}
  output {job, attempt, stream, data}         error {message, code}
  file {job, attempt, name, data (base64)}
  result {job, attempt, status, exit_code, reason}
  input_request {job, attempt, fields, prompt, timeout}
  bye {}

``batch {messages[]}`` carries several messages in one frame, in order, in either
direction: each side gathers what it sends in one turn of its event loop into one frame.
A side sends batches only to a peer of version 2 or later (``BATCH_VERSION``); a batch
whose messages are not all valid is refused whole (``error``), like any malformed frame.

``version`` (in hello and welcome) is the protocol version the peer speaks. The server
accepts an agent whose version is in ``SUPPORTED_VERSIONS``; any other is answered with
``error {code: "protocol_version"}`` naming both versions, and the connection is closed
with ``CLOSE_PROTOCOL_VERSION`` (the agent stops: retrying cannot help).

A frame the server cannot read (not JSON, an unknown type, a field of the wrong type) is
answered with ``error {code: "malformed" | "unknown" | "unexpected"}``; the connection
stays open for the frames that follow.

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

from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 2
# The agents' versions a server of this version serves.
SUPPORTED_VERSIONS = frozenset({1, 2})
# From this version on a peer reads batch frames (version 1 reads one message a frame).
BATCH_VERSION = 2
PATH = "/api/v1/agent/ws"
SERVER_HEADER = "x-jobyard-server"
MAX_SLOTS = 10_000

# WebSocket close codes the server uses (4000-4999 are the application's).
CLOSE_RECONNECT = 4000  # the agent's credentials changed: reconnect and authenticate again
CLOSE_BAD_HELLO = 4400  # no valid hello in time
CLOSE_TOKEN_REFUSED = 4401  # the token is unknown, revoked or expired
CLOSE_REPLACED = 4409  # a newer connection of the same node took over
CLOSE_PROTOCOL_VERSION = 4426  # the agent's protocol version is not served (as HTTP 426)

Stream = Literal["stdout", "stderr"]
ResultStatus = Literal["succeeded", "failed", "aborted"]
RESULT_STATUSES: tuple[str, ...] = ("succeeded", "failed", "aborted")
STREAMS: tuple[str, ...] = ("stdout", "stderr")


class ProtocolError(ValueError):
    """A frame that is not a valid protocol message (or not one this side accepts).

    ``reason`` says which: ``malformed`` (not a JSON object, or a field missing or of
    the wrong type), ``unknown`` (a type no side sends) or ``unexpected`` (a type of the
    other direction, or out of turn)."""

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """A protocol message; its ``type`` is the class's tag."""

    @property
    def kind(self) -> str:
        return str(self.__struct_config__.tag)


class JobMessage(Message, frozen=True, kw_only=True):
    """A message about one node run: (job, attempt)."""

    job: int
    attempt: int

    @property
    def ref(self) -> tuple[int, int]:
        return self.job, self.attempt


class RunRef(msgspec.Struct, frozen=True):
    """A run the agent holds, in hello."""

    job: int
    attempt: int


class InputFile(msgspec.Struct, frozen=True, kw_only=True):
    """An input file a commit asks the agent to download into the run directory."""

    id: int
    name: str
    size: int | None = None
    sha256: str | None = None


# -- agent → server


class Hello(Message, frozen=True, kw_only=True, tag="hello"):
    version: int
    node: str
    incarnation: str
    tags: list[str] = msgspec.field(default_factory=list)
    cluster: str | None = None
    running: list[RunRef] = msgspec.field(default_factory=list)
    pending: list[RunRef] = msgspec.field(default_factory=list)
    busy: bool = False
    slots: Annotated[int, msgspec.Meta(ge=1, le=MAX_SLOTS)] = 1


class Heartbeat(Message, frozen=True, kw_only=True, tag="heartbeat"):
    busy: bool = False
    held: Annotated[int, msgspec.Meta(ge=0)] | None = None  # None: reports only busy


class AckCommit(JobMessage, frozen=True, kw_only=True, tag="ack_commit"):
    pass


class NackCommit(JobMessage, frozen=True, kw_only=True, tag="nack_commit"):
    reason: str | None = None


class AckRun(JobMessage, frozen=True, kw_only=True, tag="ack_run"):
    pass


class Output(JobMessage, frozen=True, kw_only=True, tag="output"):
    stream: Stream
    data: str


class File(JobMessage, frozen=True, kw_only=True, tag="file"):
    name: str
    data: str  # base64


class Result(JobMessage, frozen=True, kw_only=True, tag="result"):
    status: ResultStatus
    exit_code: int | None = None
    reason: str | None = None  # why a run failed before or after its command


class InputRequest(JobMessage, frozen=True, kw_only=True, tag="input_request"):
    fields: list[Any]  # checked by the server's input rules, answered there if wrong
    prompt: str = ""
    timeout: float = 3600.0


class Bye(Message, frozen=True, kw_only=True, tag="bye"):
    pass


# -- server → agent


class Welcome(Message, frozen=True, kw_only=True, tag="welcome"):
    node: str
    server: str
    heartbeat_interval: float = 5.0
    # How soon a lost connection must be back before the node's runs crash.
    reconnect_within: float | None = None
    version: int = 1  # servers before the version was sent spoke 1


class Commit(JobMessage, frozen=True, kw_only=True, tag="commit"):
    command: str = ""
    argv: list[str] | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    # The names in env whose values are secret: the agent masks them in the output it sends.
    secret_env: list[str] = msgspec.field(default_factory=list)
    dir: str | None = None
    run_timeout: int | None = None
    capture_output: bool = True
    node: str = ""
    # Chef Push Jobs: a file the command receives (CHEF_PUSH_JOB_FILE) and the user to run as.
    file: str | None = None
    user: str | None = None
    # Files: what to download into the run directory (with sha256), what to keep.
    input_files: list[InputFile] = msgspec.field(default_factory=list)
    outputs: list[str] | None = None
    files_cap: int | None = None


class Run(JobMessage, frozen=True, kw_only=True, tag="run"):
    pass


class Abort(JobMessage, frozen=True, kw_only=True, tag="abort"):
    pass


class Ack(JobMessage, frozen=True, kw_only=True, tag="ack"):
    pass


class Input(JobMessage, frozen=True, kw_only=True, tag="input"):
    status: str
    values: dict[str, Any] | None = None
    request_id: int | None = None
    error: str | None = None


class Error(Message, frozen=True, kw_only=True, tag="error"):
    message: str
    # malformed | unknown | unexpected | protocol_version | refused
    code: str | None = None


AgentMessage = (
    Hello
    | Heartbeat
    | AckCommit
    | NackCommit
    | AckRun
    | Output
    | File
    | Result
    | InputRequest
    | Bye
)
ServerMessage = Welcome | Commit | Run | Abort | Ack | Input | Error
AnyMessage = AgentMessage | ServerMessage


class Batch(Message, frozen=True, kw_only=True, tag="batch"):
    """Several messages in one frame, in order (either direction, version 2 on)."""

    messages: list[AnyMessage]


Frame = AnyMessage | Batch

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Frame] = msgspec.json.Decoder(Frame)  # type: ignore[arg-type]
_BATCH_HEAD = '{"type":"batch","messages":['


def encode(message: Message) -> str:
    """The text frame of one message."""
    return _encoder.encode(message).decode()


def commit_per_node(commit: Commit) -> Callable[[str], str]:
    """The frame of ``commit`` for each node (its ``node`` set to it): encoded once, each
    node's name spliced into its place, the same text as ``encode`` gives. The place is
    where two encodings that differ only by the node's name differ, so no value of the
    other fields can be mistaken for it."""
    blank = encode(msgspec.structs.replace(commit, node=""))
    probe = encode(msgspec.structs.replace(commit, node="x"))
    # the closing quote of the blank name: where the two first differ
    at = next(i for i, (a, b) in enumerate(zip(blank, probe, strict=False)) if a != b)
    head, tail = blank[: at - 1], blank[at + 1 :]
    return lambda node: head + _encoder.encode(node).decode() + tail


def frame_of(encoded: list[str]) -> str:
    """One frame for messages already encoded: the message itself, or a batch of them."""
    if len(encoded) == 1:
        return encoded[0]
    return _BATCH_HEAD + ",".join(encoded) + "]}"


def unbatch(frame: Frame) -> list[AnyMessage]:
    """The messages a frame carries, in order."""
    return frame.messages if isinstance(frame, Batch) else [frame]


def decode(frame: str | bytes) -> Frame:
    """The message of a frame, its fields checked; ProtocolError if it is none."""
    try:
        return _decoder.decode(frame)
    except msgspec.ValidationError as exc:
        text = str(exc)
        if text.endswith("at `$.type`") and text.startswith("Invalid value"):
            raise ProtocolError(f"unknown message type: {text}", "unknown") from None
        raise ProtocolError(f"invalid message: {text}") from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a JSON message: {exc}") from None
