"""The head-and-tail rule of output (domain/outputs), without a database."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from jobyard.domain.outputs import Chunk, OutputCaps, assemble, last_lines, plan_append


def _stream(pieces: list[str], caps: OutputCaps) -> list[Chunk]:
    """What a store keeps after appending ``pieces`` one by one."""
    kept: list[Chunk] = []
    for piece in pieces:
        plan = plan_append(kept[-1] if kept else None, piece, caps)
        kept += plan.chunks
        if plan.trim_before is not None:
            cut = plan.trim_before
            kept = [c for c in kept if c.head or c.end > cut]
    return kept


@given(
    st.lists(st.text(st.sampled_from("ab\né€𝄞"), max_size=40), max_size=40),
    st.integers(0, 30),
    st.integers(4, 30),  # a tail holds a character at least (settings ask for 1 KiB)
)
def test_head_and_tail_are_kept_and_the_gap_is_counted(
    pieces: list[str], head: int, tail: int
) -> None:
    whole = "".join(pieces)
    data = whole.encode()
    kept = _stream(pieces, OutputCaps(head, tail))
    text = assemble(kept)
    heads = [c for c in kept if c.head]
    head_text = "".join(c.data for c in heads)
    # The head is the start of the stream, at most `head` bytes, cut on a character.
    assert whole.startswith(head_text) and len(head_text.encode()) <= head
    assert len(head_text.encode()) > head - 4 or head_text == whole
    # The tail ends the stream and holds at least its last `tail` bytes (whole characters).
    tail_text = "".join(c.data for c in kept if not c.head)
    assert whole.endswith(tail_text)
    assert len(tail_text.encode()) >= min(tail - 3, len(data) - len(head_text.encode()))
    # Stored bytes stay bounded by the caps plus one piece.
    assert sum(c.size for c in kept) <= head + tail + max(
        (len(p.encode()) for p in pieces), default=0
    )
    # Offsets are positions in the stream as printed: the gap says exactly what is missing.
    if head_text + tail_text == whole:
        assert text == whole
    else:
        missing = data[len(head_text.encode()) : len(data) - len(tail_text.encode())]
        lines = missing.count(b"\n")
        assert f"{len(missing):,} bytes ({lines:,} line" in text
        assert text.startswith(head_text) and text.endswith(tail_text)


def test_marker_starts_on_its_own_line() -> None:
    kept = _stream(["abc", "d" * 50, "end\n"], OutputCaps(3, 4))
    assert assemble(kept) == (
        "abc\n[jobyard: 50 bytes (0 lines) of output dropped here; the head and the"
        " tail of the stream are kept]\nend\n"
    )


def test_last_lines_starts_at_a_line() -> None:
    assert last_lines("one\ntwo\nthree\n", 8) == "three\n"
    assert last_lines("one\ntwo\n", 100) == "one\ntwo\n"
    assert last_lines("ééé", 3) == "é"  # never half a character
    assert last_lines("no newline at all", 4) == " all"
