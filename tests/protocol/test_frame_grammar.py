"""The frame grammar, case by case: RFC 6455 section 5.2 length rules, header validity before
size limits, ``max_message_size`` in characters with permessage-deflate, and the places where
wsproto departs from the RFC. Each case runs on the fast path and on the wsproto path, and
in one read as well as one byte at a time (see ``test_differential.py`` for the properties)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from spikard.messages import WebSocketMessage
from spikard.protocol.deflate import BoundedPerMessageDeflate, negotiate_deflate
from spikard.protocol.websocket import ProtocolState, WebSocketProtocol

from .frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    RSV1,
    TEXT,
    DeflateClient,
    Outcome,
    close_payload,
    deflate_protocol,
    frame,
    outgoing_frames,
    run,
)

PATHS = [pytest.param(True, id="fast"), pytest.param(False, id="wsproto")]
READS = [pytest.param(False, id="one-read"), pytest.param(True, id="byte-by-byte")]


def feed(make: Callable[[], WebSocketProtocol], wire: bytes, *, split: bool) -> Outcome:
    return run(make, wire, cuts=range(1, len(wire)) if split else (), check_budget=False)


def plain(max_message_size: int = 1024, fast_path: bool = True) -> Callable[[], WebSocketProtocol]:
    return lambda: WebSocketProtocol(max_message_size=max_message_size, fast_path=fast_path)


# ---- RFC 6455, section 5.2: the payload length ----------------------------------------------


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("length_form", ["16", "64"])
def test_a_length_longer_than_needed_is_1002(
    length_form: str, fast_path: bool, split: bool
) -> None:
    """ "hello" with a 2- or 8-byte length was accepted in one read, refused when split."""
    wire = frame(TEXT, b"hello", length_form=length_form) + frame(TEXT, b"after")
    outcome = feed(plain(fast_path=fast_path), wire, split=split)
    assert outcome.failure_code == 1002
    assert outcome.events == []


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
def test_lengths_at_the_form_boundaries_are_accepted(fast_path: bool, split: bool) -> None:
    payloads = [b"x" * 125, b"y" * 126, b"z" * 65535, b"w" * 65536]
    frames = [frame(BINARY, payload) for payload in payloads]
    wire = b"".join(frames)
    cuts: list[int] = []
    if split:  # every byte of the headers, then the payloads in one piece
        start = 0
        for each in frames:
            cuts += range(start + 1, start + 16)
            start += len(each)
    outcome = run(plain(1 << 20, fast_path), wire, cuts=cuts)
    assert outcome.failure_code is None
    assert outcome.events == [("binary", payload) for payload in payloads]


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("opcode", [TEXT, BINARY, CONTINUATION])
def test_a_64_bit_length_with_the_top_bit_set_is_1002_not_1009(
    opcode: int, fast_path: bool, split: bool
) -> None:
    """The size check used to run before the header was judged: 1009 instead of 1002."""
    wire = frame(opcode, b"hello", length_form="top")
    outcome = feed(plain(fast_path=fast_path), wire, split=split)
    assert outcome.failure_code == 1002


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(frame(BINARY, b"x" * 2000, mask=None), id="unmasked"),
        pytest.param(frame(BINARY, b"x" * 2000, rsv=0b010), id="rsv2"),
        pytest.param(frame(0x3, b"x" * 2000), id="reserved-opcode"),
        pytest.param(frame(CONTINUATION, b"x" * 2000), id="continuation-without-message"),
        pytest.param(
            frame(TEXT, b"a", fin=False) + frame(BINARY, b"x" * 2000), id="new-message-inside"
        ),
    ],
)
def test_header_validity_comes_before_the_size_limit(
    wire: bytes, fast_path: bool, split: bool
) -> None:
    outcome = feed(plain(100, fast_path), wire, split=split)
    assert outcome.failure_code == 1002


@pytest.mark.parametrize("fast_path", PATHS)
def test_an_oversized_frame_is_refused_at_its_header(fast_path: bool) -> None:
    protocol = plain(100, fast_path)()
    header = frame(BINARY, b"x" * 101)[:8]
    assert protocol.receive_data(header) == []
    assert protocol.state is ProtocolState.FAILING
    assert protocol.close_code == 1009


# ---- text limits: characters, on every path ------------------------------------------------------


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
def test_invalid_utf8_in_a_frame_wins_over_its_length(fast_path: bool, split: bool) -> None:
    """Characters are counted once a frame is decoded: the frame's invalid UTF-8 is found first
    (streamed, it used to fail 1009 or 1007 depending on where the reads were cut)."""
    wire = frame(TEXT, b"abcdefgh\xff")
    outcome = feed(plain(4, fast_path), wire, split=split)
    assert outcome.failure_code == 1007


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
def test_a_character_split_across_frames_counts_once(fast_path: bool, split: bool) -> None:
    """A fragment may end with three bytes of a character: 4 x 2 + 3 bytes in a frame of a
    message limited to 2 characters per frame."""
    wire = frame(TEXT, "😀😀".encode() + "😀".encode()[:3], fin=False) + frame(
        CONTINUATION, "😀".encode()[3:]
    )

    def protocol() -> WebSocketProtocol:
        return WebSocketProtocol(max_message_size=3, max_frame_size=2, fast_path=fast_path)

    outcome = feed(protocol, wire, split=split)
    assert outcome.failure_code is None
    assert outcome.events == [("text", "😀😀😀")]


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("character", ["é", "€", "😀"])
def test_text_limits_count_characters(character: str, fast_path: bool, split: bool) -> None:
    fits = frame(TEXT, (character * 10).encode())
    assert feed(plain(10, fast_path), fits, split=split).events == [("text", character * 10)]
    too_long = frame(TEXT, (character * 5).encode(), fin=False) + frame(
        CONTINUATION, (character * 6).encode()
    )
    assert feed(plain(10, fast_path), too_long, split=split).failure_code == 1009


# ---- permessage-deflate ------------------------------------------------------------------------


def compressed_text(text: str, *, fragments: int = 1) -> bytes:
    payload = DeflateClient().compress(text.encode())
    step = -(-len(payload) // fragments)
    pieces = [payload[index : index + step] for index in range(0, len(payload), step)] or [b""]
    return b"".join(
        frame(
            TEXT if index == 0 else CONTINUATION,
            piece,
            fin=index == len(pieces) - 1,
            rsv=RSV1 if index == 0 else 0,
        )
        for index, piece in enumerate(pieces)
    )


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize("character", ["é", "€", "😀"])
def test_deflate_counts_text_in_characters_too(character: str, split: bool) -> None:
    """The inflation cap was max_message_size + 1 bytes: ten two-byte characters, within a
    limit of ten characters, closed with 1009 with deflate and passed without it."""
    outcome = feed(lambda: deflate_protocol(10), compressed_text(character * 10), split=split)
    assert outcome.failure_code is None
    assert outcome.events == [("text", character * 10)]
    outcome = feed(lambda: deflate_protocol(10), compressed_text(character * 11), split=split)
    assert outcome.failure_code == 1009


@pytest.mark.parametrize("split", READS)
def test_deflate_counts_binary_in_bytes(split: bool) -> None:
    def binary(size: int) -> bytes:
        return frame(BINARY, DeflateClient().compress(b"\x00" * size), rsv=RSV1)

    assert feed(lambda: deflate_protocol(10), binary(10), split=split).events == [
        ("binary", b"\x00" * 10)
    ]
    assert feed(lambda: deflate_protocol(10), binary(11), split=split).failure_code == 1009


def test_a_deflate_bomb_stops_at_four_times_the_limit_for_text() -> None:
    """Inflation stops at 4 x max_message_size bytes for text, the UTF-8 worst case."""
    extension = BoundedPerMessageDeflate(1000)
    extension.accept("permessage-deflate")
    protocol = WebSocketProtocol(max_message_size=1000, extensions=[extension])
    bomb = frame(TEXT, DeflateClient().compress(b"a" * 10_000_000), rsv=RSV1)
    assert len(bomb) < 20_000
    protocol.receive_data(bomb)
    assert protocol.close_code == 1009
    assert protocol.buffered_bytes == 0


@pytest.mark.parametrize("split", READS)
def test_a_ping_between_compressed_fragments_keeps_the_message(split: bool) -> None:
    """wsproto's extension forgot that the message was compressed after a control frame
    between its fragments, and inflated the rest as plain text (1007)."""
    payload = DeflateClient().compress(b"hello world, hello world")
    half = len(payload) // 2
    wire = (
        frame(TEXT, payload[:half], fin=False, rsv=RSV1)
        + frame(PING, b"p")
        + frame(CONTINUATION, payload[half:], fin=False)
        + frame(PONG, b"q")
        + frame(CONTINUATION, b"")
    )
    outcome = feed(lambda: deflate_protocol(100), wire, split=split)
    assert outcome.failure_code is None
    assert outcome.events == [("pong", b"q"), ("text", "hello world, hello world")]
    assert outcome.outgoing == [[(PONG, b"p")]]


def fixed_huffman_block(literals: bytes, then: int) -> bytes:
    """A raw deflate stream: one fixed-Huffman block of ``literals``, then the lit/len code
    ``then`` (286 and 287 are invalid)."""
    bits: list[int] = [0, 1, 0]  # BFINAL=0, BTYPE=01 (fixed Huffman), least significant first

    def code(value: int, length: int) -> None:
        bits.extend(value >> shift & 1 for shift in reversed(range(length)))

    for literal in literals:
        assert literal < 144
        code(0x30 + literal, 8)
    assert 280 <= then <= 287
    code(0xC0 + then - 280, 8)
    bits.extend([0] * (-len(bits) % 8))
    return bytes(
        sum(bit << index for index, bit in enumerate(bits[start : start + 8]))
        for start in range(0, len(bits), 8)
    )


@pytest.mark.parametrize("split", READS)
def test_deflate_decides_a_bound_and_a_corrupt_code_in_stream_order(split: bool) -> None:
    """Eleven bytes inflate past a limit of ten, then comes an invalid code: zlib may report
    the code in the same call; whatever the reads, the bound passed first (1009)."""
    wire = frame(BINARY, fixed_huffman_block(b"a" * 11, then=286), rsv=RSV1)
    assert feed(lambda: deflate_protocol(10), wire, split=split).failure_code == 1009
    wire = frame(BINARY, fixed_huffman_block(b"a" * 9, then=286), rsv=RSV1)
    assert feed(lambda: deflate_protocol(10), wire, split=split).failure_code == 1007


@pytest.mark.parametrize("split", READS)
def test_deflate_finds_invalid_utf8_before_the_bound_first(split: bool) -> None:
    text = b"ab\xff" + b"a" * 100
    wire = frame(TEXT, DeflateClient().compress(text), rsv=RSV1)
    assert feed(lambda: deflate_protocol(5), wire, split=split).failure_code == 1007


def test_the_protocol_bounds_the_extension_by_its_own_limits() -> None:
    negotiated = negotiate_deflate(["permessage-deflate"], 1 << 20)
    assert negotiated is not None
    protocol = WebSocketProtocol(max_message_size=10, extensions=[negotiated[1]])
    protocol.receive_data(frame(BINARY, DeflateClient().compress(bytes(11)), rsv=RSV1))
    assert protocol.close_code == 1009


# ---- where wsproto departs from RFC 6455 -------------------------------------------------------


@pytest.mark.parametrize("split", READS)
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(plain(fast_path=True), id="fast"),
        pytest.param(plain(fast_path=False), id="wsproto"),
        pytest.param(lambda: deflate_protocol(1024), id="deflate"),
    ],
)
def test_close_code_1014_is_a_valid_close(
    make: Callable[[], WebSocketProtocol], split: bool
) -> None:
    """1014 (Bad Gateway) is in the IANA registry of RFC 6455; wsproto refused it with 1002."""
    outcome = feed(make, frame(CLOSE, close_payload(1014, b"upstream")), split=split)
    assert outcome.failure_code is None
    assert outcome.peer_close == (1014, "upstream")
    assert outcome.outgoing == [[(CLOSE, 1014)]]


@pytest.mark.parametrize("fast_path", PATHS)
def test_closing_with_1005_sends_an_empty_close_frame(fast_path: bool) -> None:
    """wsproto sent 1000 for a plain int 1005 (it looks for its own enum member)."""
    protocol = plain(fast_path=fast_path)()
    protocol.close(1005, "ignored")
    assert protocol.data_to_send() == b"\x88\x00"


@pytest.mark.parametrize("fast_path", PATHS)
@pytest.mark.parametrize("code", [1006, 1015])
def test_a_local_only_code_goes_out_as_1000(fast_path: bool, code: int) -> None:
    protocol = plain(fast_path=fast_path)()
    protocol.fail(code, "gone")
    assert outgoing_frames(protocol.data_to_send()) == [(CLOSE, 1000)]
    assert protocol.close_code == code


# ---- fast_path and buffered_bytes -------------------------------------------------------------


def test_fast_path_false_sends_every_frame_through_wsproto() -> None:
    protocol = WebSocketProtocol(max_message_size=100, fast_path=False)
    assert protocol.receive_data(frame(TEXT, b"hi") + frame(PING, b"p")) == [
        WebSocketMessage.text("hi")
    ]
    assert protocol._wsproto is not None
    fast = WebSocketProtocol(max_message_size=100)
    assert fast.receive_data(frame(TEXT, b"hi") + frame(PING, b"p")) == [
        WebSocketMessage.text("hi")
    ]
    assert fast._wsproto is None
    assert protocol.data_to_send() == fast.data_to_send() == b"\x8a\x01p"


@pytest.mark.parametrize("fast_path", PATHS)
def test_buffered_bytes_counts_what_is_held(fast_path: bool) -> None:
    protocol = WebSocketProtocol(max_message_size=1000, fast_path=fast_path)
    assert protocol.buffered_bytes == 0
    assert protocol.receive_data(frame(BINARY, b"x" * 300)[:3]) == []
    assert protocol.buffered_bytes == 3  # an incomplete header
    protocol.receive_data(frame(BINARY, b"x" * 300)[3:])
    assert protocol.buffered_bytes == 0
    protocol.receive_data(frame(TEXT, "é".encode() * 10, fin=False))
    assert protocol.buffered_bytes == 10  # characters of the message being reassembled
    protocol.receive_data(frame(CONTINUATION, b"abc"))
    assert protocol.buffered_bytes == 0
    wire = b"".join(frame(BINARY, bytes([n]) * 10) for n in range(5))
    assert len(protocol.receive_data(wire, 2)) == 2
    assert protocol.buffered_bytes == 3 * len(frame(BINARY, bytes(10)))  # beyond the limit
    while protocol.receive_data(b"", 2):
        pass
    assert protocol.buffered_bytes == 0


def test_buffered_bytes_counts_a_partial_binary_frame() -> None:
    for fast_path in (True, False):
        protocol = WebSocketProtocol(max_message_size=1000, fast_path=fast_path)
        wire = frame(BINARY, b"x" * 500)
        protocol.receive_data(wire[:300])
        # Buffered here whole (the fast path), or its payload reassembled (wsproto).
        assert protocol.buffered_bytes in (300, 300 - 8)


def test_buffered_bytes_counts_events_waiting_in_take_pending() -> None:
    protocol = WebSocketProtocol(
        max_message_size=100, trailing_data=frame(TEXT, b"early") + frame(BINARY, b"x")[:4]
    )
    assert protocol.buffered_bytes == 5 + 4
    assert protocol.take_pending() == [WebSocketMessage.text("early")]
    assert protocol.buffered_bytes == 4
