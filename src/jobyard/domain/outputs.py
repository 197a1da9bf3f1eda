"""What a run's stdout and stderr keep: the head and the tail of each stream.

A stream is stored as append-only chunks. Each chunk knows where it sits in the stream as
the command printed it (``offset`` in UTF-8 bytes, ``line`` in newlines before it), so the
bytes dropped between the head and the tail show as a gap between two kept chunks:

    [head chunks: offsets 0 .. head_cap)  ... dropped ...  [tail chunks: the last tail_cap]

The head is never trimmed; the tail is a rolling window: once a new chunk lands, the tail
chunks that lie wholly before ``end - tail_cap`` are deleted. Reading a stream joins its
chunks in order and puts a marker line wherever a gap is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

STREAMS = ("stdout", "stderr")
# Tail chunks are at most this long, so the rolling tail, which keeps the chunk the
# window's start falls in, holds at most this much beyond its cap.
TAIL_PIECE = 65_536


@dataclass(frozen=True, slots=True)
class OutputCaps:
    """Bytes of one stream that a run keeps: its first ``head`` and its last ``tail``."""

    head: int
    tail: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of one stream: ``size`` UTF-8 bytes and ``lines`` newlines of ``data``,
    starting ``offset`` bytes and ``line`` newlines into the stream."""

    offset: int
    line: int
    size: int
    lines: int
    head: bool
    data: str

    @property
    def end(self) -> int:
        return self.offset + self.size

    @property
    def end_line(self) -> int:
        return self.line + self.lines


class Stored(NamedTuple):
    """What an append did: whether bytes fell out of what is kept, and the stream's
    length in bytes (as the command printed it) after the append."""

    dropped: bool
    end: int


class Printed(NamedTuple):
    """A run printed ``data`` on ``stream``; the stream is ``end`` bytes long with it."""

    node: str
    stream: str
    data: str
    end: int

    @property
    def start(self) -> int:
        return self.end - len(self.data.encode())

    def past(self, have: int) -> str | None:
        """What of ``data`` lies past byte ``have`` of the stream (a reader has the bytes
        before it); None when nothing does."""
        if self.end <= have:
            return None
        if self.start >= have:
            return self.data
        return self.data.encode()[have - self.start :].decode(errors="replace")


@dataclass(frozen=True, slots=True)
class Appended:
    """What one append stores: the new chunks, the tail chunks ending at or before
    ``trim_before`` to delete (None: none), and whether part of the text was skipped
    (longer than the whole tail)."""

    chunks: list[Chunk]
    trim_before: int | None
    dropped: bool


def _utf8_prefix(data: bytes, limit: int) -> bytes:
    """The longest prefix of ``data`` of at most ``limit`` bytes that ends on a character."""
    cut = min(limit, len(data))
    while 0 < cut < len(data) and (data[cut] & 0xC0) == 0x80:
        cut -= 1
    return data[:cut]


def _utf8_suffix(data: bytes, limit: int) -> bytes:
    """The longest suffix of ``data`` of at most ``limit`` bytes that starts on a character."""
    start = max(0, len(data) - limit)
    while start < len(data) and (data[start] & 0xC0) == 0x80:
        start += 1
    return data[start:]


def _chunk(offset: int, line: int, raw: bytes, head: bool) -> Chunk:
    return Chunk(offset, line, len(raw), raw.count(b"\n"), head, raw.decode())


def plan_append(last: Chunk | None, text: str, caps: OutputCaps) -> Appended:
    """The chunks that ``text`` adds to a stream whose newest chunk is ``last``."""
    data = text.encode()
    offset = last.end if last else 0
    line = last.end_line if last else 0
    out: list[Chunk] = []
    if (last is None or last.head) and offset < caps.head:
        piece = _utf8_prefix(data, caps.head - offset)
        if piece:
            out.append(_chunk(offset, line, piece, True))
            offset += len(piece)
            line += out[-1].lines
            data = data[len(piece) :]
    if not data:
        return Appended(out, None, False)
    kept = _utf8_suffix(data, caps.tail)
    skipped = data[: len(data) - len(kept)]
    offset += len(skipped)
    line += skipped.count(b"\n")
    while kept:
        piece = _utf8_prefix(kept, TAIL_PIECE)
        out.append(_chunk(offset, line, piece, False))
        offset += len(piece)
        line += out[-1].lines
        kept = kept[len(piece) :]
    trim = offset - caps.tail
    return Appended(out, trim if trim > 0 else None, bool(skipped))


def marker(dropped_bytes: int, dropped_lines: int) -> str:
    """The line that stands for the bytes dropped between the head and the tail."""
    lines = "line" if dropped_lines == 1 else "lines"
    return (
        f"[jobyard: {dropped_bytes:,} bytes ({dropped_lines:,} {lines}) of output "
        "dropped here; the head and the tail of the stream are kept]\n"
    )


def assemble(chunks: Iterable[Chunk], start: int = 0, start_line: int = 0) -> str:
    """The text of chunks in order, with a marker wherever bytes are missing (from
    ``start`` on: a reader that already has the bytes before it)."""
    parts: list[str] = []
    end, end_line = start, start_line
    for c in chunks:
        if c.offset > end:
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
            parts.append(marker(c.offset - end, c.line - end_line))
        parts.append(c.data)
        end, end_line = c.end, c.end_line
    return "".join(parts)


def last_lines(text: str, limit: int) -> str:
    """At most the last ``limit`` UTF-8 bytes of ``text``, from the start of a line when
    a line starts within them."""
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = _utf8_suffix(data, limit)
    newline = kept.find(b"\n")
    if 0 <= newline < len(kept) - 1:
        kept = kept[newline + 1 :]
    return kept.decode()
