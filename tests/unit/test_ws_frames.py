"""The agents' WebSocket frame parser: any chunking of the same bytes gives the same
frames, masking is required of clients, oversize and broken frames close with the right
code, fragments are joined and control frames come through between them."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobyard.api import ws_frames as f


def client(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return f.encode(opcode, payload, mask=os.urandom(4), fin=fin)


def parse_in(chunks: list[bytes], **kwargs: int) -> list[f.Event]:
    parser = f.FrameParser(**kwargs)  # type: ignore[arg-type]
    out: list[f.Event] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out


messages = st.lists(
    st.one_of(
        st.tuples(st.just(f.TEXT), st.text(max_size=300)),
        st.tuples(st.just(f.BINARY), st.binary(max_size=70_000)),
        st.tuples(st.just(f.PING), st.binary(max_size=125)),
    ),
    max_size=6,
)


def stream_of(msgs: list[tuple[int, str | bytes]]) -> bytes:
    out = b""
    for opcode, payload in msgs:
        raw = payload.encode() if isinstance(payload, str) else payload
        if opcode == f.TEXT and len(raw) > 3:
            # Fragmented, with a ping between the fragments.
            out += client(f.TEXT, raw[:3], fin=False) + client(f.PING, b"between")
            out += client(f.CONT, raw[3:])
        else:
            out += client(opcode, raw)
    return out


def expected(msgs: list[tuple[int, str | bytes]]) -> list[f.Event]:
    out: list[f.Event] = []
    for opcode, payload in msgs:
        if opcode == f.TEXT and len(str(payload).encode()) > 3:
            out.append((f.PING, b"between"))
        out.append((opcode, payload))
    return out


@given(messages, st.lists(st.integers(min_value=1, max_value=80_000), max_size=20))
def test_any_split_of_a_stream_gives_the_same_frames(
    msgs: list[tuple[int, str | bytes]], cuts: list[int]
) -> None:
    data = stream_of(msgs)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(data[pos : pos + cut])
        pos += cut
    chunks.append(data[pos:])
    assert parse_in(chunks) == expected(msgs)
    assert parse_in([bytes([b]) for b in data[:2000]] + [data[2000:]]) == expected(msgs)


def test_an_unmasked_client_frame_is_a_protocol_error() -> None:
    with pytest.raises(f.FrameError) as err:
        parse_in([client(f.TEXT, b"ok") + f.encode(f.TEXT, b"unmasked")])
    assert err.value.code == f.CLOSE_PROTOCOL_ERROR
    assert err.value.events == [(f.TEXT, "ok")]  # what came before is not lost


def test_a_server_parser_reads_unmasked_frames_and_refuses_masked_ones() -> None:
    assert parse_in([f.encode(f.TEXT, b"hi")], masked=False) == [(f.TEXT, "hi")]
    with pytest.raises(f.FrameError):
        parse_in([client(f.TEXT, b"hi")], masked=False)


def test_oversize_is_refused_from_the_header_alone() -> None:
    header = client(f.BINARY, b"x" * 200)[:8]  # no payload yet
    with pytest.raises(f.FrameError) as err:
        parse_in([header], max_size=100)
    assert err.value.code == f.CLOSE_TOO_BIG


def test_fragments_count_towards_the_limit() -> None:
    data = client(f.BINARY, b"x" * 60, fin=False) + client(f.CONT, b"y" * 60)
    with pytest.raises(f.FrameError) as err:
        parse_in([data], max_size=100)
    assert err.value.code == f.CLOSE_TOO_BIG
    assert parse_in([data], max_size=120) == [(f.BINARY, b"x" * 60 + b"y" * 60)]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (bytes([0x81 | 0x40, 0x80]) + b"\0\0\0\0", f.CLOSE_PROTOCOL_ERROR),  # RSV1
        (bytes([0x83, 0x80]) + b"\0\0\0\0", f.CLOSE_PROTOCOL_ERROR),  # opcode 3
        (client(f.CONT, b"x"), f.CLOSE_PROTOCOL_ERROR),  # continuation of nothing
        (client(f.TEXT, b"a", fin=False) + client(f.TEXT, b"b"), f.CLOSE_PROTOCOL_ERROR),
        (client(f.PING, b"p", fin=False), f.CLOSE_PROTOCOL_ERROR),  # fragmented control
        (client(f.PING, b"p" * 126), f.CLOSE_PROTOCOL_ERROR),  # control over 125 bytes
        (client(f.TEXT, b"\xff\xfe"), f.CLOSE_INVALID_DATA),  # not UTF-8
        (client(f.CLOSE, b"\x03"), f.CLOSE_PROTOCOL_ERROR),  # a one-byte close code
        (client(f.CLOSE, (999).to_bytes(2, "big")), f.CLOSE_PROTOCOL_ERROR),
        (client(f.CLOSE, (1000).to_bytes(2, "big") + b"\xff"), f.CLOSE_INVALID_DATA),
    ],
)
def test_broken_frames_name_their_close_code(data: bytes, code: int) -> None:
    with pytest.raises(f.FrameError) as err:
        parse_in([data])
    assert err.value.code == code


def test_a_broken_parser_parses_nothing_more() -> None:
    parser = f.FrameParser()
    with pytest.raises(f.FrameError):
        parser.feed(client(f.CONT, b"x"))
    assert parser.feed(client(f.TEXT, b"later")) == []


def test_ping_pong_and_close_come_through() -> None:
    data = (
        client(f.PING, b"p")
        + client(f.PONG, b"q")
        + client(f.CLOSE, f.close_payload(4000, "bye"))
        + client(f.CLOSE, b"")
    )
    events = parse_in([data])
    assert events == [
        (f.PING, b"p"),
        (f.PONG, b"q"),
        (f.CLOSE, f.close_payload(4000, "bye")),
        (f.CLOSE, b""),
    ]
    assert f.parse_close(f.close_payload(4000, "bye")) == (4000, "bye")
    assert f.parse_close(b"") == (1005, "")


def test_a_long_close_reason_is_cut_to_fit_a_control_frame() -> None:
    payload = f.close_payload(1000, "é" * 100)
    assert len(payload) <= 125 and f.parse_close(payload)[1] == "é" * 61


def test_accept_key_of_the_rfc_example() -> None:
    assert f.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
