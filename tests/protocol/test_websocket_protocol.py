"""``WebSocketProtocol``, sans-I/O: bytes in, events and bytes to send out.

Every test plays the client by writing raw masked frames and reads what the server would put
on the wire with ``data_to_send()``. The hypothesis properties at the end show that framing is
independent of how the bytes are chunked, and that no input makes the protocol raise or end in
a state other than OPEN or CLOSED with a code it may legitimately report.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage
from wsproto.extensions import PerMessageDeflate

from spikard.errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK
from spikard.messages import WebSocketMessage, validate_close_code
from spikard.protocol.deflate import negotiate_deflate
from spikard.protocol.websocket import PongReceived, ProtocolState, WebSocketProtocol

from ..helpers import close_code, masked_frame, parse_server_frames

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA

Event = WebSocketMessage | PongReceived


def new(max_message_size: int = 1024, trailing_data: bytes = b"") -> WebSocketProtocol:
    return WebSocketProtocol(max_message_size=max_message_size, trailing_data=trailing_data)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return code.to_bytes(2, "big") + reason


def sent_frames(protocol: WebSocketProtocol) -> list[tuple[int, bytes]]:
    """Drain ``data_to_send()``; check it holds whole, final, unmasked server frames only."""
    data = protocol.data_to_send()
    frames = parse_server_frames(data)
    offset = 0
    for _, payload in frames:
        assert data[offset] & 0xF0 == 0x80, "server frames are final, with no RSV bits"
        assert data[offset + 1] & 0x80 == 0, "server frames are never masked"
        length = len(payload)
        offset += (2 if length < 126 else 4 if length < 1 << 16 else 10) + length
    assert offset == len(data), "data_to_send() must hold whole frames only"
    return frames


def state_of(protocol: WebSocketProtocol) -> ProtocolState:
    """The state, read through a call so that mypy does not narrow it across actions."""
    return protocol.state


def assert_failed_with(protocol: WebSocketProtocol, code: int) -> None:
    """The peer's error stops the input (FAILING) without overtaking our replies; close() then
    sends exactly one close frame with the error's code, whatever code it is given."""
    assert protocol.state is ProtocolState.FAILING
    assert protocol.input_ended
    assert protocol.close_code == code
    assert protocol.failure is not None
    assert protocol.failure[0] == code
    assert not protocol.closed_cleanly
    before = sent_frames(protocol)
    assert CLOSE not in [opcode for opcode, _ in before], "the error close waits for close()"
    protocol.close(1000)
    assert state_of(protocol) is ProtocolState.CLOSED
    assert protocol.close_code == code
    frames = sent_frames(protocol)
    assert [opcode for opcode, _ in frames][-1:] == [CLOSE]
    assert [opcode for opcode, _ in frames].count(CLOSE) == 1
    assert close_code(frames[-1][1]) == code
    assert len(frames[-1][1]) <= 125


# ---- messages ----------------------------------------------------------------------------------


def test_text_and_binary_messages() -> None:
    protocol = new()
    data = masked_frame(TEXT, "héllo".encode()) + masked_frame(BINARY, b"\x00\xff")
    events = protocol.receive_data(data)
    assert events == [WebSocketMessage.text("héllo"), WebSocketMessage.binary(b"\x00\xff")]
    assert protocol.state is ProtocolState.OPEN
    assert protocol.data_to_send() == b""


def test_empty_messages() -> None:
    protocol = new()
    events = protocol.receive_data(masked_frame(TEXT, b"") + masked_frame(BINARY, b""))
    assert events == [WebSocketMessage.text(""), WebSocketMessage.binary(b"")]


def test_large_message_with_64_bit_length() -> None:
    payload = bytes(range(256)) * 300  # 76,800 bytes: 8-byte extended length
    protocol = new(max_message_size=1 << 20)
    events = protocol.receive_data(masked_frame(BINARY, payload))
    assert events == [WebSocketMessage.binary(payload)]


def test_fragmented_message_is_reassembled() -> None:
    protocol = new()
    data = (
        masked_frame(TEXT, b"he", fin=False)
        + masked_frame(CONTINUATION, b"", fin=False)
        + masked_frame(CONTINUATION, b"ll", fin=False)
        + masked_frame(CONTINUATION, b"o")
    )
    assert protocol.receive_data(data) == [WebSocketMessage.text("hello")]
    binary = masked_frame(BINARY, b"\x01", fin=False) + masked_frame(CONTINUATION, b"\x02")
    assert protocol.receive_data(binary) == [WebSocketMessage.binary(b"\x01\x02")]


def test_fragments_in_separate_reads() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(TEXT, b"ab", fin=False)) == []
    assert protocol.receive_data(masked_frame(CONTINUATION, b"cd", fin=False)) == []
    events = protocol.receive_data(masked_frame(CONTINUATION, b"ef"))
    assert events == [WebSocketMessage.text("abcdef")]


def test_utf8_character_split_across_fragments() -> None:
    euro = "€".encode()  # three bytes
    protocol = new()
    data = masked_frame(TEXT, euro[:1], fin=False) + masked_frame(CONTINUATION, euro[1:])
    assert protocol.receive_data(data) == [WebSocketMessage.text("€")]


def test_ping_inside_a_fragmented_message_is_answered() -> None:
    protocol = new()
    data = (
        masked_frame(TEXT, b"he", fin=False)
        + masked_frame(PING, b"are you there")
        + masked_frame(CONTINUATION, b"llo")
    )
    assert protocol.receive_data(data) == [WebSocketMessage.text("hello")]
    assert sent_frames(protocol) == [(PONG, b"are you there")]


def test_one_byte_at_a_time_gives_the_same_events() -> None:
    data = (
        masked_frame(TEXT, b"fragm", fin=False)
        + masked_frame(PING, b"p")
        + masked_frame(CONTINUATION, b"ented")
        + masked_frame(BINARY, bytes(300))
        + masked_frame(PONG, b"q")
        + masked_frame(TEXT, "ünïcødé".encode())
    )
    whole = new()
    expected = whole.receive_data(data)
    assert expected == [
        WebSocketMessage.text("fragmented"),
        WebSocketMessage.binary(bytes(300)),
        PongReceived(b"q"),
        WebSocketMessage.text("ünïcødé"),
    ]
    trickle = new()
    events: list[Event] = []
    for index in range(len(data)):
        events += trickle.receive_data(data[index : index + 1])
    assert events == expected
    assert trickle.data_to_send() == whole.data_to_send() == b"\x8a\x01p"


def test_a_limit_leaves_the_rest_unparsed_until_asked_again() -> None:
    protocol = new()
    data = b"".join(masked_frame(TEXT, f"m{index}".encode()) for index in range(10))
    assert protocol.receive_data(data, 4) == [WebSocketMessage.text(f"m{i}") for i in range(4)]
    assert protocol.has_unparsed_input
    assert protocol.receive_data(b"", 4) == [WebSocketMessage.text(f"m{i}") for i in range(4, 8)]
    more = masked_frame(BINARY, b"tail")
    assert protocol.receive_data(more, 4) == [
        WebSocketMessage.text("m8"),
        WebSocketMessage.text("m9"),
        WebSocketMessage.binary(b"tail"),
    ]
    assert not protocol.has_unparsed_input


def test_a_partial_frame_counts_as_unparsed_input() -> None:
    protocol = new()
    frame = masked_frame(BINARY, bytes(200))
    assert protocol.receive_data(frame[:50], 4) == []
    assert protocol.has_unparsed_input
    assert protocol.receive_data(frame[50:], 4) == [WebSocketMessage.binary(bytes(200))]
    assert not protocol.has_unparsed_input


def test_a_limit_also_bounds_compressed_messages() -> None:
    """With permessage-deflate, wsproto parses lazily: a limit stops it, the rest waits."""
    client_extension = PerMessageDeflate()
    header, server_extension = negotiate_deflate(["permessage-deflate"], 1 << 20) or ("", None)
    assert server_extension is not None
    client_extension.finalize(header.partition(";")[2])
    client = Connection(ConnectionType.CLIENT, [client_extension])
    wire = b"".join(client.send(BytesMessage(data=bytes([n]) * 65536)) for n in range(40))
    protocol = WebSocketProtocol(max_message_size=1 << 20, extensions=[server_extension])
    received: list[Event] = []
    batch = protocol.receive_data(wire, 16)
    while batch:
        assert len(batch) <= 16
        received += batch
        batch = protocol.receive_data(b"", 16) if protocol.has_unparsed_input else []
    assert received == [WebSocketMessage.binary(bytes([n]) * 65536) for n in range(40)]
    assert not protocol.has_unparsed_input


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40),
    limit=st.integers(min_value=1, max_value=5),
)
def test_any_limit_and_any_chunking_give_the_same_messages(
    sizes: list[int], cuts: list[int], limit: int
) -> None:
    frames = [
        masked_frame(PING, b"p")
        if size % 7 == 0
        else masked_frame(BINARY, bytes([size % 256]) * size)
        for size in sizes
    ]
    data = b"".join(frames)
    expected = new().receive_data(data)
    protocol = new()
    events: list[Event] = []
    position = 0
    for cut in cuts * (len(data) // sum(cuts) + 1):
        if position >= len(data):
            break
        batch = protocol.receive_data(data[position : position + cut], limit)
        position += cut
        assert len(batch) <= limit
        events += batch
        while len(batch) == limit:
            batch = protocol.receive_data(b"", limit)
            assert len(batch) <= limit
            events += batch
    assert events == expected
    assert not protocol.has_unparsed_input


def test_ping_is_answered_with_a_pong_of_the_same_payload() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(PING, b"\x00payload\xff")) == []
    assert protocol.has_data_to_send
    assert sent_frames(protocol) == [(PONG, b"\x00payload\xff")]
    assert not protocol.has_data_to_send
    assert protocol.data_to_send() == b""


def test_burst_of_pings_is_answered_in_one_buffer() -> None:
    protocol = new()
    protocol.receive_data(b"".join(masked_frame(PING, bytes([i])) for i in range(5)))
    assert sent_frames(protocol) == [(PONG, bytes([i])) for i in range(5)]


def test_empty_and_max_size_ping() -> None:
    protocol = new()
    protocol.receive_data(masked_frame(PING, b"") + masked_frame(PING, b"x" * 125))
    assert sent_frames(protocol) == [(PONG, b""), (PONG, b"x" * 125)]


def test_pong_is_reported() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(PONG, b"abc")) == [PongReceived(b"abc")]
    assert protocol.data_to_send() == b""


def test_trailing_data_from_the_handshake_is_not_lost() -> None:
    protocol = new(trailing_data=masked_frame(TEXT, b"early") + masked_frame(PING, b"x"))
    assert protocol.take_pending() == [WebSocketMessage.text("early")]
    assert protocol.take_pending() == []
    assert sent_frames(protocol) == [(PONG, b"x")]


# ---- sending -----------------------------------------------------------------------------------


def test_a_ping_payload_over_125_bytes_is_refused() -> None:
    protocol = new()
    with pytest.raises(ValueError, match="125"):
        protocol.ping(b"x" * 126)
    protocol.ping(b"x" * 125)
    assert sent_frames(protocol) == [(PING, b"x" * 125)]


def test_a_long_close_reason_is_cut_at_a_character_boundary() -> None:
    protocol = new()
    protocol.fail(1011, "é" * 100)  # 200 bytes in UTF-8
    [(opcode, payload)] = sent_frames(protocol)
    assert opcode == CLOSE
    assert payload[:2] == (1011).to_bytes(2, "big")
    assert payload[2:].decode() == "é" * 61  # 122 bytes: the 62nd character would not fit


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_sent_frame_length_encodings(size: int) -> None:
    protocol = new()
    protocol.send(WebSocketMessage.binary(b"b" * size))
    protocol.send(WebSocketMessage.text("t" * size))
    assert sent_frames(protocol) == [(BINARY, b"b" * size), (TEXT, b"t" * size)]


def test_send_text_binary_and_ping() -> None:
    protocol = new()
    protocol.send(WebSocketMessage.text("hé"))
    protocol.send(WebSocketMessage.binary(b"\x01" * 200))
    protocol.ping(b"pp")
    assert sent_frames(protocol) == [(TEXT, "hé".encode()), (BINARY, b"\x01" * 200), (PING, b"pp")]


# ---- close handshake ---------------------------------------------------------------------------


def test_peer_close_is_echoed() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(CLOSE, close_payload(4001, b"bye"))) == []
    assert protocol.state is ProtocolState.CLOSED
    assert protocol.peer_close == (4001, "bye")
    assert protocol.close_code == 4001
    assert protocol.close_reason == "bye"
    assert protocol.closed_cleanly
    assert protocol.failure is None
    frames = sent_frames(protocol)
    assert len(frames) == 1
    assert frames[0][0] == CLOSE
    assert close_code(frames[0][1]) == 4001


def test_peer_close_without_code() -> None:
    protocol = new()
    protocol.receive_data(masked_frame(CLOSE, b""))
    assert protocol.state is ProtocolState.CLOSED
    assert protocol.peer_close == (1005, "")
    assert protocol.close_code == 1005
    # 1005 must never go on the wire: the reply is an empty close frame.
    assert sent_frames(protocol) == [(CLOSE, b"")]


def test_frames_after_the_peer_close_are_ignored() -> None:
    protocol = new()
    data = (
        masked_frame(CLOSE, close_payload(1000))
        + masked_frame(TEXT, b"late")
        + masked_frame(PING, b"")
    )
    assert protocol.receive_data(data) == []
    assert protocol.receive_data(masked_frame(TEXT, b"later")) == []
    assert [opcode for opcode, _ in sent_frames(protocol)] == [CLOSE]


def test_our_close_then_the_peer_reply() -> None:
    protocol = new()
    protocol.close(4000, "done")
    assert protocol.state is ProtocolState.CLOSING
    frames = sent_frames(protocol)
    assert frames == [(CLOSE, close_payload(4000, b"done"))]
    # Data may still arrive while closing.
    events = protocol.receive_data(masked_frame(TEXT, b"in flight"))
    assert events == [WebSocketMessage.text("in flight")]
    assert protocol.receive_data(masked_frame(CLOSE, close_payload(1000))) == []
    assert state_of(protocol) is ProtocolState.CLOSED
    assert protocol.close_code == 4000
    assert protocol.close_reason == "done"
    assert protocol.peer_close == (1000, "")
    assert protocol.closed_cleanly
    assert protocol.data_to_send() == b""  # no second close frame


def test_close_via_message_and_idempotence() -> None:
    protocol = new()
    protocol.send(WebSocketMessage.close(3001, "r"))
    protocol.close(1000)
    protocol.ping(b"ignored while closing")
    assert sent_frames(protocol) == [(CLOSE, close_payload(3001, b"r"))]


def test_eof_without_close_frame_is_1006() -> None:
    protocol = new()
    protocol.receive_eof()
    assert protocol.state is ProtocolState.CLOSED
    assert protocol.close_code == 1006
    assert protocol.peer_close is None
    assert not protocol.closed_cleanly
    assert protocol.data_to_send() == b""
    error = protocol.closed_error()
    assert isinstance(error, ConnectionClosedError)
    assert error.code == 1006


def test_eof_while_closing_is_1006() -> None:
    protocol = new()
    protocol.close(1000)
    protocol.receive_eof()
    assert protocol.close_code == 1006
    assert isinstance(protocol.closed_error(), ConnectionClosedError)


def test_eof_after_close_keeps_the_code() -> None:
    protocol = new()
    protocol.receive_data(masked_frame(CLOSE, close_payload(1001)))
    protocol.receive_eof()
    assert protocol.close_code == 1001


def test_partial_message_is_dropped_by_eof() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(TEXT, b"part", fin=False)) == []
    protocol.receive_eof()
    assert protocol.close_code == 1006
    assert protocol.receive_data(masked_frame(CONTINUATION, b"rest")) == []


# ---- sending after close -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "error_type", "code"),
    [
        ("peer_close", ConnectionClosedOK, 1000),
        ("our_close", ConnectionClosedOK, 4000),
        ("handshake_done", ConnectionClosedOK, 4000),
        ("failure", ConnectionClosedError, 1002),
        ("eof", ConnectionClosedError, 1006),
    ],
)
def test_sending_after_close_raises(
    how: str, error_type: type[ConnectionClosed], code: int
) -> None:
    protocol = new()
    if how == "peer_close":
        protocol.receive_data(masked_frame(CLOSE, close_payload(1000)))
    elif how in ("our_close", "handshake_done"):
        protocol.close(4000)
        if how == "handshake_done":
            protocol.receive_data(masked_frame(CLOSE, close_payload(1000)))
    elif how == "failure":
        protocol.receive_data(b"\x81\x00")  # unmasked
        protocol.close()  # what the driver does once the application has replied
    else:
        protocol.receive_eof()
    protocol.data_to_send()
    for message in (WebSocketMessage.text("x"), WebSocketMessage.binary(b"x")):
        with pytest.raises(error_type) as caught:
            protocol.send(message)
        assert caught.value.code == code
    assert protocol.data_to_send() == b""


# ---- limits ------------------------------------------------------------------------------------


def test_message_at_the_limit_is_accepted() -> None:
    protocol = new(max_message_size=10)
    events = protocol.receive_data(masked_frame(BINARY, b"x" * 10))
    assert events == [WebSocketMessage.binary(b"x" * 10)]
    # Text is counted in characters: ten two-byte characters fit a limit of ten.
    events = protocol.receive_data(masked_frame(TEXT, "é".encode() * 10))
    assert events == [WebSocketMessage.text("é" * 10)]


def test_message_over_the_limit_is_1009() -> None:
    protocol = new(max_message_size=10)
    assert protocol.receive_data(masked_frame(BINARY, b"x" * 11)) == []
    assert_failed_with(protocol, 1009)


def test_fragmented_message_over_the_limit_is_1009() -> None:
    protocol = new(max_message_size=10)
    assert protocol.receive_data(masked_frame(TEXT, b"x" * 6, fin=False)) == []
    assert protocol.state is ProtocolState.OPEN
    assert protocol.receive_data(masked_frame(CONTINUATION, b"x" * 5)) == []
    assert_failed_with(protocol, 1009)


def test_limit_is_enforced_before_the_frame_is_complete() -> None:
    protocol = new(max_message_size=10)
    header_claiming_a_megabyte = masked_frame(BINARY, bytes(1 << 20))[:30]
    assert protocol.receive_data(header_claiming_a_megabyte) == []
    assert_failed_with(protocol, 1009)


def test_limit_applies_per_message() -> None:
    protocol = new(max_message_size=10)
    data = b"".join(masked_frame(BINARY, b"x" * 10) for _ in range(5))
    assert len(protocol.receive_data(data)) == 5
    assert protocol.state is ProtocolState.OPEN


def test_frames_after_a_failure_are_ignored() -> None:
    protocol = new(max_message_size=4)
    data = masked_frame(BINARY, b"x" * 5) + masked_frame(TEXT, b"ok") + masked_frame(PING, b"")
    assert protocol.receive_data(data) == []
    assert_failed_with(protocol, 1009)
    assert protocol.receive_data(masked_frame(TEXT, b"ok")) == []
    assert protocol.data_to_send() == b""


def test_text_frame_too_long_for_any_encoding_is_refused_at_its_header() -> None:
    protocol = new(max_message_size=10)
    # 41 bytes cannot be 10 characters even at four bytes each: refused before the payload.
    assert protocol.receive_data(masked_frame(TEXT, b"x" * 41)[:6]) == []
    assert_failed_with(protocol, 1009)


def test_text_over_the_limit_in_characters_is_1009() -> None:
    protocol = new(max_message_size=10)
    assert protocol.receive_data(masked_frame(TEXT, "é".encode() * 11)) == []
    assert_failed_with(protocol, 1009)


def test_frame_limit_below_message_limit() -> None:
    protocol = WebSocketProtocol(max_message_size=100, max_frame_size=10)
    data = masked_frame(BINARY, b"x" * 8, fin=False) + masked_frame(CONTINUATION, b"y" * 8)
    assert protocol.receive_data(data) == [WebSocketMessage.binary(b"x" * 8 + b"y" * 8)]
    assert protocol.receive_data(masked_frame(BINARY, b"z" * 11)) == []
    assert_failed_with(protocol, 1009)


# ---- how frames are buffered ------------------------------------------------------------------


def test_binary_frame_arriving_in_parts_is_one_message() -> None:
    protocol = new(max_message_size=1 << 20)
    payload = bytes(range(256)) * 400
    frame = masked_frame(BINARY, payload)
    assert protocol.receive_data(frame[:3]) == []  # inside the extended length
    assert protocol.receive_data(frame[3:5000]) == []
    assert protocol.receive_data(frame[5000:]) == [WebSocketMessage.binary(payload)]


def test_text_frame_arriving_in_parts_fails_at_the_invalid_chunk() -> None:
    protocol = new()
    frame = masked_frame(TEXT, b"valid " + b"\xff" + b"rest of the frame")
    assert protocol.receive_data(frame[:10]) == []
    assert protocol.state is ProtocolState.OPEN
    # The invalid byte arrives: the connection fails without waiting for the frame's end.
    assert protocol.receive_data(frame[10:14]) == []
    assert_failed_with(protocol, 1007)


def test_messages_and_control_frames_in_one_read_keep_their_order() -> None:
    protocol = new()
    data = (
        masked_frame(TEXT, b"one")
        + masked_frame(PING, b"p1")
        + masked_frame(BINARY, b"two")
        + masked_frame(TEXT, b"th", fin=False)
        + masked_frame(PING, b"p2")
        + masked_frame(CONTINUATION, b"ree")
        + masked_frame(PONG, b"q")
        + masked_frame(BINARY, b"four")
    )
    assert protocol.receive_data(data) == [
        WebSocketMessage.text("one"),
        WebSocketMessage.binary(b"two"),
        WebSocketMessage.text("three"),
        PongReceived(b"q"),
        WebSocketMessage.binary(b"four"),
    ]
    assert sent_frames(protocol) == [(PONG, b"p1"), (PONG, b"p2")]


# ---- protocol violations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(masked_frame(TEXT, b"\xff\xfe"), id="invalid-start-byte"),
        pytest.param(masked_frame(TEXT, b"ok\xed\xa0\x80"), id="surrogate"),
        pytest.param(masked_frame(TEXT, b"\xc0\xaf"), id="overlong"),
        pytest.param(masked_frame(TEXT, b"\xe2\x82"), id="truncated-in-final-frame"),
        pytest.param(
            masked_frame(TEXT, b"\xe2\x82", fin=False) + masked_frame(CONTINUATION, b"\xff"),
            id="split-across-frames",
        ),
        pytest.param(
            masked_frame(TEXT, b"ok", fin=False) + masked_frame(CONTINUATION, b"\xf8"),
            id="invalid-in-continuation",
        ),
        pytest.param(masked_frame(CLOSE, close_payload(1000, b"\xff")), id="close-reason"),
    ],
)
def test_invalid_utf8_is_1007(data: bytes) -> None:
    protocol = new()
    assert protocol.receive_data(data) == []
    assert_failed_with(protocol, 1007)


def test_invalid_utf8_split_across_reads_is_1007() -> None:
    protocol = new()
    assert protocol.receive_data(masked_frame(TEXT, b"\xe2\x82", fin=False)) == []
    assert protocol.state is ProtocolState.OPEN
    assert protocol.receive_data(masked_frame(CONTINUATION, b"(")) == []
    assert_failed_with(protocol, 1007)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x81\x02hi", id="unmasked"),
        pytest.param(masked_frame(0x3, b"x"), id="reserved-data-opcode"),
        pytest.param(masked_frame(0xB, b"x"), id="reserved-control-opcode"),
        pytest.param(masked_frame(TEXT, b"x", rsv=0b100), id="rsv1"),
        pytest.param(masked_frame(TEXT, b"x", rsv=0b010), id="rsv2"),
        pytest.param(masked_frame(TEXT, b"x", rsv=0b001), id="rsv3"),
        pytest.param(masked_frame(PING, b"x", fin=False), id="fragmented-ping"),
        pytest.param(masked_frame(CLOSE, close_payload(1000), fin=False), id="fragmented-close"),
        pytest.param(masked_frame(PING, b"x" * 126), id="ping-payload-126"),
        pytest.param(masked_frame(PONG, b"x" * 200), id="pong-payload-200"),
        pytest.param(masked_frame(CLOSE, b"\x03"), id="close-one-byte"),
        pytest.param(masked_frame(CONTINUATION, b"x"), id="continuation-without-start"),
        pytest.param(
            masked_frame(TEXT, b"a", fin=False) + masked_frame(BINARY, b"b"),
            id="new-message-inside-fragmented",
        ),
        *(
            pytest.param(masked_frame(CLOSE, close_payload(code)), id=f"close-code-{code}")
            for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535)
        ),
    ],
)
def test_protocol_violation_is_1002(data: bytes) -> None:
    protocol = new()
    assert protocol.receive_data(data) == []
    assert_failed_with(protocol, 1002)
    assert protocol.peer_close is None
    error = protocol.closed_error()
    assert isinstance(error, ConnectionClosedError)
    assert error.code == 1002


def test_protocol_violation_after_good_messages_keeps_them() -> None:
    protocol = new()
    data = masked_frame(TEXT, b"one") + masked_frame(PING, b"p") + b"\x82\x00"
    assert protocol.receive_data(data) == [WebSocketMessage.text("one")]
    # The reply to "one" may still go out before the error close (Autobahn's strict order).
    protocol.send(WebSocketMessage.text("one"))
    protocol.close()
    frames = sent_frames(protocol)
    assert frames[0] == (PONG, b"p")
    assert frames[1] == (TEXT, b"one")
    assert frames[2][0] == CLOSE
    assert close_code(frames[2][1]) == 1002


def test_protocol_violation_while_closing_sends_no_second_close() -> None:
    protocol = new()
    protocol.close(1000)
    protocol.data_to_send()
    protocol.receive_data(masked_frame(0x3, b""))
    assert protocol.state is ProtocolState.CLOSED
    assert protocol.close_code == 1002
    assert protocol.data_to_send() == b""


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999])
def test_valid_peer_close_codes_are_echoed(code: int) -> None:
    protocol = new()
    protocol.receive_data(masked_frame(CLOSE, close_payload(code)))
    assert protocol.failure is None
    assert protocol.peer_close == (code, "")
    assert sent_frames(protocol) == [(CLOSE, close_payload(code))]


# ---- properties --------------------------------------------------------------------------------

messages_strategy = st.lists(
    st.one_of(
        st.text(max_size=60).map(WebSocketMessage.text),
        st.binary(max_size=200).map(WebSocketMessage.binary),
    ),
    max_size=6,
)


@st.composite
def framed(draw: st.DrawFn) -> tuple[list[WebSocketMessage], list[bytes], bytes]:
    """Messages, the pings sprinkled between their fragments, and the client's wire bytes."""
    messages = draw(messages_strategy)
    pings: list[bytes] = []
    wire = bytearray()

    def maybe_ping() -> None:
        if draw(st.booleans()):
            payload = draw(st.binary(max_size=20))
            pings.append(payload)
            wire.extend(masked_frame(PING, payload, mask=draw(st.binary(min_size=4, max_size=4))))

    for message in messages:
        text = message.as_text()
        payload = text.encode() if text is not None else message.as_binary() or b""
        cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for index, piece in enumerate(pieces):
            opcode = (TEXT if text is not None else BINARY) if index == 0 else CONTINUATION
            last = index == len(pieces) - 1
            mask = draw(st.binary(min_size=4, max_size=4))
            wire.extend(masked_frame(opcode, piece, fin=last, mask=mask))
            if not last or draw(st.booleans()):
                maybe_ping()
    return messages, pings, bytes(wire)


@given(framed(), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_any_chunking_gives_the_same_messages(
    example: tuple[list[WebSocketMessage], list[bytes], bytes], data: st.DataObject
) -> None:
    messages, pings, wire = example
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12), label="cuts"))
    protocol = new(max_message_size=1 << 16)
    events: list[Event] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        events += protocol.receive_data(wire[start:end])
    assert events == messages
    assert protocol.state is ProtocolState.OPEN
    assert sent_frames(protocol) == [(PONG, payload) for payload in pings]


def _check_end_state(protocol: WebSocketProtocol) -> None:
    if protocol.state is ProtocolState.FAILING:
        protocol.close()  # the driver sends the error close once the application is done
    frames = sent_frames(protocol)
    opcodes = [opcode for opcode, _ in frames]
    assert set(opcodes) <= {PONG, CLOSE}
    assert opcodes.count(CLOSE) <= 1
    assert CLOSE not in opcodes[:-1]
    if protocol.state is ProtocolState.OPEN:
        assert CLOSE not in opcodes
        assert protocol.close_code is None
        return
    assert protocol.state is ProtocolState.CLOSED
    assert opcodes[-1:] == [CLOSE]
    payload = frames[-1][1]
    if protocol.failure is not None:
        assert protocol.peer_close is None
        assert protocol.close_code in (1002, 1007, 1009)
        assert close_code(payload) == protocol.close_code
    else:
        assert protocol.peer_close is not None
        code = protocol.peer_close[0]
        assert protocol.close_code == code
        if code == 1005:
            assert payload == b""
        else:
            validate_close_code(code)
            assert close_code(payload) == code


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    protocol = new(max_message_size=64)
    events = protocol.receive_data(data)
    assert all(isinstance(event, (WebSocketMessage, PongReceived)) for event in events)
    _check_end_state(protocol)
    protocol.receive_eof()
    assert protocol.state is ProtocolState.CLOSED
    assert protocol.close_code is not None


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    """Mostly well-formed client frames with random opcodes, flags, lengths and flipped bits."""
    wire = bytearray()
    for _ in range(draw(st.integers(1, 6))):
        opcode = draw(st.sampled_from([0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB, 0xF]))
        if opcode == CLOSE and draw(st.booleans()):
            payload = close_payload(draw(st.integers(0, 5100)), draw(st.binary(max_size=10)))
        elif opcode == TEXT and draw(st.booleans()):
            payload = draw(st.text(max_size=40)).encode()
        else:
            payload = draw(st.binary(max_size=130))
        wire.extend(
            masked_frame(
                opcode,
                payload,
                fin=draw(st.booleans()),
                rsv=draw(st.sampled_from([0, 0, 0, 1, 2, 4])),
                mask=draw(st.binary(min_size=4, max_size=4)),
            )
        )
    for _ in range(draw(st.integers(0, 2))):
        if wire:
            index = draw(st.integers(0, len(wire) - 1))
            wire[index] ^= 1 << draw(st.integers(0, 7))
    return bytes(wire)


@given(mutated_frames(), st.integers(1, 64))
@settings(max_examples=300)
def test_mutated_frames_never_raise(data: bytes, chunk: int) -> None:
    protocol = new(max_message_size=64)
    for start in range(0, len(data), chunk):
        protocol.receive_data(data[start : start + chunk])
    _check_end_state(protocol)
