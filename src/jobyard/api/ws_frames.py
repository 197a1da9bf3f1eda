"""WebSocket frames (RFC 6455) for the agents' connections: a parser fed bytes as they
arrive, and the encoding of the server's frames.

The parser keeps nothing between frames but the bytes of an incomplete one (and the parts
of a fragmented message): an idle connection holds a few empty slots. No extension is
negotiated, so the reserved bits must be clear.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode

try:
    from websockets.speedups import apply_mask as _apply_mask
except ImportError:  # pragma: no cover - websockets without its C extension
    from websockets.utils import apply_mask as _apply_mask

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
DATA = (CONT, TEXT, BINARY)
CONTROL = (CLOSE, PING, PONG)
MAX_SIZE = 16 * 1024 * 1024  # a message at most (uvicorn's ws_max_size as configured before)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
# Codes a peer may send in a close frame (RFC 6455 7.4, and the registered 1012-1014).
_VALID_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Event = tuple[int, bytes | str]


class FrameError(Exception):
    """The peer broke the protocol: close with ``code``. ``events`` are the frames parsed
    before the faulty one in the same chunk."""

    def __init__(self, code: int, reason: str, events: list[Event] | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason
        self.events: list[Event] = events or []


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept answering a Sec-WebSocket-Key."""
    return b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def apply_mask(data: bytes, mask: bytes) -> bytes:
    if _apply_mask is not None:
        return bytes(_apply_mask(data, mask))
    n = len(data)  # pragma: no cover
    key = (mask * (n // 4 + 1))[:n]  # pragma: no cover
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(
        n, "big"
    )  # pragma: no cover


def encode(opcode: int, payload: bytes, mask: bytes | None = None, fin: bool = True) -> bytes:
    """One frame: unmasked as a server sends it, or masked with ``mask`` as a client does."""
    n = len(payload)
    head = bytearray([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(bit | 127)
        head += n.to_bytes(8, "big")
    if mask is not None:
        return bytes(head) + mask + apply_mask(payload, mask)
    return bytes(head) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    raw = reason.encode()
    while len(raw) > 123:  # a control frame's payload is 125 bytes at most
        reason = reason[:-1]
        raw = reason.encode()
    return code.to_bytes(2, "big") + raw


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a close frame (1005 when it has none)."""
    if not payload:
        return 1005, ""
    if len(payload) == 1:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "a close frame's code is two bytes")
    code = int.from_bytes(payload[:2], "big")
    if code not in _VALID_CODES and not 3000 <= code < 5000:
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        return code, payload[2:].decode()
    except UnicodeDecodeError:
        raise FrameError(CLOSE_INVALID_DATA, "the close reason is not UTF-8") from None


class FrameParser:
    """Frames from bytes fed in any chunks: whole messages (text as ``str``, binary as
    ``bytes``, fragments joined) and control frames (ping, pong, close payloads as bytes),
    in order. ``masked``: the peer is a client (every frame masked, as it must be)."""

    __slots__ = ("chunks", "have", "kind", "masked", "max_size", "need", "parts", "size")

    def __init__(self, max_size: int = MAX_SIZE, masked: bool = True) -> None:
        self.max_size, self.masked = max_size, masked
        self.chunks: list[bytes] | None = None  # bytes of a frame not complete yet
        self.have = 0
        self.need = 2  # bytes needed before parsing can go on
        self.kind = 0  # the opcode of a fragmented message being joined, 0 when none
        self.parts: list[bytes] | None = None
        self.size = 0  # of the fragmented message so far

    def feed(self, data: bytes) -> list[Event]:
        """The frames completed by ``data``; FrameError when the peer broke the protocol
        (then this parser is done: close the connection)."""
        if self.chunks is None:
            self.chunks = [data]
        else:
            self.chunks.append(data)
        self.have += len(data)
        if self.have < self.need:
            return []
        buf = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
        out: list[Event] = []
        pos, end = 0, len(buf)
        need = 0
        try:
            while end - pos >= 2:
                need = self._frame(buf, pos, end, out)
                if need > 0:
                    break
                pos -= need
                need = 0
        except FrameError as exc:
            exc.events = out
            self.chunks, self.have, self.need = None, 0, 1 << 62  # nothing more is parsed
            raise
        if pos == end:
            self.chunks, self.have, self.need = None, 0, 2
        else:
            rest = buf[pos:] if pos else buf
            self.chunks, self.have = [rest], len(rest)
            self.need = max(need, 2)
        return out

    def _frame(self, buf: bytes, pos: int, end: int, out: list[Event]) -> int:
        """Parse the frame at ``pos``: minus its length once parsed, else the bytes (from
        ``pos``) needed to parse it."""
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 & 0x70:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension was agreed)")
        opcode, fin = b0 & 0x0F, bool(b0 & 0x80)
        if opcode not in DATA and opcode not in CONTROL:
            raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if bool(b1 & 0x80) != self.masked:
            raise FrameError(
                CLOSE_PROTOCOL_ERROR,
                "a client's frames must be masked" if self.masked else "a server's must not be",
            )
        length, head = b1 & 0x7F, 2
        if opcode in CONTROL:
            if not fin:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "a control frame cannot be fragmented")
            if length > 125:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "a control frame is 125 bytes at most")
        elif opcode == CONT:
            if not self.kind:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "a continuation frame without a message")
        elif self.kind:
            raise FrameError(CLOSE_PROTOCOL_ERROR, "a new message before the last one ended")
        if length == 126:
            if end - pos < 4:
                return 4
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if end - pos < 10:
                return 10
            length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if length >> 63:
                raise FrameError(CLOSE_PROTOCOL_ERROR, "frame length out of range")
        if opcode in DATA and self.size + length > self.max_size:
            raise FrameError(
                CLOSE_TOO_BIG, f"message over {self.max_size} bytes ({self.size + length}+)"
            )
        if self.masked:
            head += 4
        total = head + length
        if end - pos < total:
            return total
        payload = buf[pos + head : pos + total]
        if self.masked and length:
            payload = apply_mask(payload, buf[pos + head - 4 : pos + head])
        if opcode in CONTROL:
            if opcode == CLOSE:
                parse_close(payload)  # a valid one, else FrameError
            out.append((opcode, payload))
            return -total
        if opcode != CONT:
            self.kind = opcode
        if not fin:
            if self.parts is None:
                self.parts = []
            self.parts.append(payload)
            self.size += length
            return -total
        if self.parts is not None:
            self.parts.append(payload)
            payload = b"".join(self.parts)
        kind = self.kind
        self.kind, self.parts, self.size = 0, None, 0
        if kind == TEXT:
            try:
                out.append((TEXT, payload.decode()))
            except UnicodeDecodeError:
                raise FrameError(CLOSE_INVALID_DATA, "a text message is not UTF-8") from None
        else:
            out.append((BINARY, payload))
        return -total
