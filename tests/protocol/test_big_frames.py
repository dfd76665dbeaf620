"""Frames of 16 KiB and more take views and whole-frame writes on the fast path: same answers.

From ``_VIEW_MIN`` bytes on, the fast path unmasks a payload through a view of the received
buffer (bytes or the protocol's own bytearray, which must stay resizable), and queues an
outgoing frame as one object that later frames (pong and close replies, more messages) queue
behind. Both are checked against the wsproto path: the same events for the same bytes in any
chunking, and the same bytes out of ``data_to_send`` whenever it is called.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard.messages import WebSocketMessage
from spikard.protocol.websocket import _VIEW_MIN, WebSocketProtocol

from .frames import BINARY, PING, TEXT, frame, run

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SIZES = st.sampled_from(
    [0, 1, 125, 126, _VIEW_MIN - 1, _VIEW_MIN, _VIEW_MIN + 1, 65535, 65536, 70001]
)
LIMIT = 1 << 20


def payload(size: int, seed: int) -> bytes:
    return bytes((index * 31 + seed) % 251 for index in range(size))


def text(size: int, seed: int) -> str:
    """``size`` bytes of UTF-8, with a two-byte character in it when it fits."""
    letters = "".join(chr(97 + (index + seed) % 26) for index in range(size))
    return letters if size < 2 else "é" + letters[2:]


def make(fast_path: bool) -> WebSocketProtocol:
    return WebSocketProtocol(max_message_size=LIMIT, fast_path=fast_path)


@st.composite
def inbound(draw: st.DrawFn) -> bytes:
    wire = bytearray()
    for seed in range(draw(st.integers(1, 3))):
        size = draw(SIZES)
        if draw(st.booleans()):
            wire += frame(TEXT, text(size, seed).encode())
        else:
            wire += frame(BINARY, payload(size, seed))
        if draw(st.booleans()):
            wire += frame(PING, b"p%d" % seed)
    return bytes(wire)


@SETTINGS
@given(inbound(), st.data())
def test_big_frames_are_received_as_wsproto_receives_them(wire: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6), label="cuts")
    limit = data.draw(st.sampled_from([0, 1]), label="limit")
    fast = run(lambda: make(True), wire, cuts=cuts, limit=limit)
    reference = run(lambda: make(False), wire, cuts=cuts, limit=limit)
    assert fast == reference
    assert run(lambda: make(True), wire) == reference  # one read: the buffer is bytes


Step = tuple[str, int]
STEPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["text", "binary"]), SIZES),
        st.tuples(st.just("ping in"), st.integers(0, 9)),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("close"), st.just(1000)),
    ),
    max_size=8,
)


def outgoing(fast_path: bool, steps: list[Step]) -> list[bytes]:
    """What ``data_to_send`` returns at each flush (and at the end); sizes checked on the way."""
    protocol = make(fast_path)
    flushed: list[bytes] = []
    for seed, (kind, argument) in enumerate(steps):
        if kind == "text":
            protocol.send(WebSocketMessage.text(text(argument, seed)))
        elif kind == "binary":
            protocol.send(WebSocketMessage.binary(payload(argument, seed)))
        elif kind == "ping in":  # the pong reply queues behind what is queued already
            assert protocol.receive_data(frame(PING, b"%d" % argument)) == []
        elif kind == "close":
            protocol.close(argument)
            break
        else:
            size = protocol.outgoing_size
            assert protocol.has_data_to_send is (size > 0)
            data = protocol.data_to_send()
            assert len(data) == size
            flushed.append(data)
    flushed.append(protocol.data_to_send())
    assert not protocol.has_data_to_send
    assert protocol.outgoing_size == 0
    return flushed


@SETTINGS
@given(STEPS)
def test_big_frames_go_out_as_wsproto_writes_them(steps: list[Step]) -> None:
    assert outgoing(True, steps) == outgoing(False, steps)


@pytest.mark.parametrize("size", [_VIEW_MIN, 70001])
def test_a_received_big_frame_leaves_the_buffer_resizable(size: int) -> None:
    # Split so that the frame completes in the protocol's own bytearray, with a partial frame
    # after it: that buffer is then trimmed or grown, which fails while a view is held.
    second = frame(BINARY, payload(size, 2))
    wire = frame(BINARY, payload(size, 1)) + second
    protocol = make(True)
    events = protocol.receive_data(wire[:100])
    events += protocol.receive_data(wire[100 : len(wire) - 10])
    events += protocol.receive_data(wire[len(wire) - 10 :])
    data = [event.data for event in events if isinstance(event, WebSocketMessage)]
    assert data == [payload(size, 1), payload(size, 2)]
    assert len(events) == 2
