"""One frame grammar: the fast path gives exactly wsproto's answers, whatever the chunking.

Hypothesis builds client byte streams: whole and fragmented text and binary messages (valid
and invalid UTF-8, characters split across fragments, sizes around ``max_message_size`` and
``max_frame_size`` in characters and in bytes), control frames (valid and invalid close codes
and reasons, payloads over 125 bytes, fragmented ones, some between fragments), frames with
reserved opcodes and bits, unmasked frames, lengths written in a longer form than needed or
with the 64-bit top bit set, raw random bytes, and streams cut short. The same bytes go to

- a fast-path protocol and a ``fast_path=False`` one (every frame through wsproto), each in
  its own random chunking (1-byte chunks included) and with its own random ``limit``, with
  the same application calls (send, ping, close, fail) at the same points of the stream, and
  to both again in one chunk per stretch between those points: every observable must match
  (events, states, close codes, peer close, and the frames queued to send, whose close
  reasons may differ);
- wsproto alone, the reference grammar (no size limits there);
- a protocol with permessage-deflate, for compressed streams: chunking invariance, the
  exact messages for valid streams, the same codes as without deflate for header errors, and
  the same character count for ``max_message_size``.

``SETTINGS`` keeps the regular run short (a few seconds on two cores); the ``slow`` variant at
the end runs many more examples (``pytest -m slow tests/protocol/test_differential.py``, about
five minutes).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikard.protocol.websocket import WebSocketProtocol

from .frames import (
    BINARY,
    CLOSE,
    CONTINUATION,
    LENGTH_FORMS,
    PING,
    PONG,
    RSV1,
    TEXT,
    Action,
    DeflateClient,
    Outcome,
    close_payload,
    deflate_protocol,
    frame,
    raw_wsproto,
    run,
)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW_SETTINGS = settings(SETTINGS, max_examples=4000)
slow = pytest.mark.slow
long_timeout = pytest.mark.timeout(900)

CHARACTERS = ["a", "é", "€", "😀"]
"""One character of each UTF-8 length."""
INVALID_UTF8 = [b"\xff", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80"]
CLOSE_CODES = [
    *(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
    *(3000, 3999, 4000, 4999),
    *(0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535),
]

masks = st.binary(min_size=4, max_size=4)
lengths = st.sampled_from(["minimal"] * 12 + list(LENGTH_FORMS[1:]))


@st.composite
def limits(draw: st.DrawFn) -> tuple[int, int | None]:
    return draw(st.integers(1, 24)), draw(st.one_of(st.none(), st.integers(1, 24)))


def near(*sizes: int | None) -> list[int]:
    return sorted({size + delta for size in sizes if size is not None for delta in (-1, 0, 1)})


@st.composite
def text_payload(draw: st.DrawFn, sizes: tuple[int, int | None]) -> bytes:
    if draw(st.booleans()):
        count = draw(st.sampled_from([n for n in near(*sizes) if n >= 0]))
        text = "".join(draw(st.lists(st.sampled_from(CHARACTERS), min_size=count, max_size=count)))
    else:
        text = draw(st.text(max_size=20))
    data = text.encode()
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from(INVALID_UTF8)) + data[at:]
    return data


@st.composite
def binary_payload(draw: st.DrawFn, sizes: tuple[int, int | None]) -> bytes:
    if draw(st.booleans()):
        size = draw(st.sampled_from([n for n in near(*sizes) if n >= 0]))
        return draw(st.binary(min_size=size, max_size=size))
    return draw(st.binary(max_size=30))


@st.composite
def control_frame(draw: st.DrawFn, *, valid: bool = False) -> bytes:
    opcode = draw(st.sampled_from([PING, PONG, CLOSE] if not valid else [PING, PONG]))
    if opcode == CLOSE:
        shape = draw(st.integers(0, 5))
        if shape == 0:
            payload = b""
        elif shape == 1:
            payload = draw(st.binary(min_size=1, max_size=1))
        else:
            code = draw(st.one_of(st.sampled_from(CLOSE_CODES), st.integers(0, 65535)))
            reason = draw(
                st.one_of(
                    st.text(max_size=10).map(str.encode),
                    st.sampled_from(INVALID_UTF8),
                    st.just(b"r" * 124),
                )
            )
            payload = close_payload(code, reason)
    else:
        payload = draw(st.one_of(st.binary(max_size=12), st.binary(min_size=124, max_size=130)))
    if valid:
        return frame(opcode, payload[:125], mask=draw(masks))
    fin = draw(st.integers(0, 9)) > 0
    return frame(opcode, payload, fin=fin, mask=draw(masks), length_form=draw(lengths))


@st.composite
def odd_frame(draw: st.DrawFn) -> bytes:
    """Any opcode, flags, masking and length form: mostly invalid."""
    return frame(
        draw(st.integers(0, 15)),
        draw(st.binary(max_size=12)),
        fin=draw(st.booleans()),
        rsv=draw(st.integers(0, 7)),
        mask=draw(st.one_of(st.none(), masks)),
        length_form=draw(st.sampled_from(LENGTH_FORMS)),
    )


@st.composite
def message(
    draw: st.DrawFn,
    sizes: tuple[int, int | None],
    client: DeflateClient | None = None,
    *,
    valid: bool = False,
) -> bytes:
    """A message's frames: fragmented at random (characters split too), control frames maybe
    between the fragments; compressed if ``client``; a few broken unless ``valid``."""
    text = draw(st.booleans())
    if valid:
        limit = sizes[0]
        if text:
            count = draw(st.integers(0, limit))
            chars = draw(st.lists(st.sampled_from(CHARACTERS), min_size=count, max_size=count))
            payload = "".join(chars).encode()
        else:
            payload = draw(st.binary(max_size=limit))
    else:
        payload = draw(text_payload(sizes) if text else binary_payload(sizes))
    compressed = client is not None and (valid or draw(st.integers(0, 4)) > 0)
    if compressed:
        assert client is not None
        payload = client.compress(payload)
        if not valid and payload and draw(st.integers(0, 5)) == 0:
            at = draw(st.integers(0, len(payload) - 1))
            corrupted = bytearray(payload)
            corrupted[at] ^= 1 << draw(st.integers(0, 7))
            payload = bytes(corrupted)
    cuts = sorted(draw(st.lists(st.integers(0, len(payload)), max_size=3)))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    wire = bytearray()
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if not valid and draw(st.integers(0, 19)) == 0:
            last = not last  # a FIN too early or missing
        wire += frame(
            (TEXT if text else BINARY) if index == 0 else CONTINUATION,
            piece,
            fin=last,
            rsv=RSV1 if compressed and index == 0 else 0,
            mask=draw(masks),
            length_form="minimal" if valid else draw(lengths),
        )
        if index < len(pieces) - 1 and draw(st.integers(0, 3)) == 0:
            wire += draw(control_frame(valid=valid))
    return bytes(wire)


@st.composite
def stream(
    draw: st.DrawFn,
    sizes: tuple[int, int | None],
    client: DeflateClient | None = None,
) -> bytes:
    wire = bytearray()
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from("mmmmmccob"))
        if kind == "m":
            wire += draw(message(sizes, client))
        elif kind == "c":
            wire += draw(control_frame())
        elif kind == "o":
            wire += draw(odd_frame())
        else:
            wire += draw(st.binary(min_size=1, max_size=16))
    if wire and draw(st.integers(0, 4)) == 0:
        del wire[draw(st.integers(0, len(wire) - 1)) :]
    return bytes(wire)


@st.composite
def chunking(draw: st.DrawFn, length: int) -> list[int]:
    """Where to split ``length`` bytes into reads: anywhere, or one byte at a time."""
    if length and draw(st.integers(0, 5)) == 0:
        return list(range(1, length))
    return draw(st.lists(st.integers(0, length), max_size=16))


limit_arguments = st.one_of(st.just(0), st.integers(1, 3))

application_call: st.SearchStrategy[Action] = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=8)),
    st.tuples(st.just("binary"), st.binary(max_size=8)),
    st.tuples(st.just("ping"), st.binary(max_size=8)),
    st.tuples(
        st.just("close"),
        st.tuples(st.sampled_from([1000, 1001, 1005, 3000, 4999]), st.text(max_size=70)),
    ),
    st.tuples(st.just("fail"), st.tuples(st.sampled_from([1001, 1011]), st.text(max_size=4))),
)


def application_calls(length: int) -> st.SearchStrategy[list[tuple[int, Action]]]:
    return st.lists(st.tuples(st.integers(0, length), application_call), max_size=3)


def plain(
    max_message_size: int, max_frame_size: int | None, *, fast_path: bool
) -> Callable[[], WebSocketProtocol]:
    def make() -> WebSocketProtocol:
        return WebSocketProtocol(
            max_message_size=max_message_size, max_frame_size=max_frame_size, fast_path=fast_path
        )

    return make


# ---- the fast path against wsproto -------------------------------------------------------------


def check_fast_path_equals_wsproto(data: st.DataObject) -> None:
    max_message_size, max_frame_size = data.draw(limits(), label="limits")
    wire = data.draw(stream((max_message_size, max_frame_size)), label="stream")
    calls = data.draw(application_calls(len(wire)), label="calls")
    close_at_end = data.draw(st.booleans(), label="close at end")
    eof = data.draw(st.booleans(), label="eof")

    def feed(fast_path: bool, *, chunked: bool) -> Outcome:
        return run(
            plain(max_message_size, max_frame_size, fast_path=fast_path),
            wire,
            cuts=data.draw(chunking(len(wire)), label="cuts") if chunked else (),
            limit=data.draw(limit_arguments, label="limit") if chunked else 0,
            actions=calls,
            close_at_end=close_at_end,
            eof=eof,
        )

    fast = feed(True, chunked=True)
    reference = feed(False, chunked=True)
    assert fast == reference
    assert feed(True, chunked=False) == fast
    assert feed(False, chunked=False) == reference


@SETTINGS
@given(st.data())
def test_fast_path_and_wsproto_give_the_same_answers(data: st.DataObject) -> None:
    check_fast_path_equals_wsproto(data)


@slow
@long_timeout
@SLOW_SETTINGS
@given(st.data())
def test_fast_path_and_wsproto_give_the_same_answers_long(data: st.DataObject) -> None:
    check_fast_path_equals_wsproto(data)


def check_grammar_is_wsproto(data: st.DataObject) -> None:
    """Without size limits in the way, the protocol (either path) answers as wsproto does."""
    wire = data.draw(stream((16, None)), label="stream")
    expected_events, pings, close, failed = raw_wsproto(wire)
    for fast_path in (True, False):
        outcome = run(
            plain(1 << 40, None, fast_path=fast_path),
            wire,
            cuts=data.draw(chunking(len(wire)), label="cuts"),
            limit=data.draw(limit_arguments, label="limit"),
        )
        if outcome.failure_code == 1009:
            # A header claiming a frame of terabytes: refused here, awaited by wsproto.
            assert expected_events[: len(outcome.events)] == outcome.events
            assert close is None or len(expected_events) > len(outcome.events)
            continue
        assert outcome.events == expected_events
        [sent] = outcome.outgoing
        assert [payload for opcode, payload in sent if opcode == PONG] == pings
        if close is None:
            assert outcome.failure_code is None
            assert outcome.peer_close is None
        elif not failed:
            assert outcome.failure_code is None
            assert outcome.peer_close == (close.code, close.reason)
        elif close.reason == "CLOSE with unknown reserved code" and outcome.failure_code is None:
            # wsproto refuses 1014, which the IANA registry of RFC 6455 assigned: a valid close.
            assert outcome.peer_close is not None
            assert outcome.peer_close[0] == 1014
        elif close.reason == "CLOSE with unknown reserved code":
            # 1014 with a reason that is not UTF-8 (1007), or a truly unassigned code (1002).
            assert outcome.failure_code in (1002, 1007)
        else:
            assert outcome.failure_code == close.code
            assert outcome.peer_close is None


@SETTINGS
@given(st.data())
def test_the_grammar_is_wsproto_s(data: st.DataObject) -> None:
    check_grammar_is_wsproto(data)


@slow
@long_timeout
@SLOW_SETTINGS
@given(st.data())
def test_the_grammar_is_wsproto_s_long(data: st.DataObject) -> None:
    check_grammar_is_wsproto(data)


# ---- permessage-deflate ------------------------------------------------------------------------


def check_deflate_chunking_invariance(data: st.DataObject) -> None:
    max_message_size, max_frame_size = data.draw(limits(), label="limits")
    no_context_takeover = data.draw(st.booleans(), label="no context takeover")
    client = DeflateClient(no_context_takeover=no_context_takeover)
    wire = data.draw(stream((max_message_size, max_frame_size), client), label="stream")
    calls = data.draw(application_calls(len(wire)), label="calls")
    eof = data.draw(st.booleans(), label="eof")

    def make() -> WebSocketProtocol:
        return deflate_protocol(
            max_message_size, max_frame_size, no_context_takeover=no_context_takeover
        )

    def feed(*, chunked: bool) -> Outcome:
        return run(
            make,
            wire,
            cuts=data.draw(chunking(len(wire)), label="cuts") if chunked else (),
            limit=data.draw(limit_arguments, label="limit") if chunked else 0,
            actions=calls,
            eof=eof,
            check_budget=False,
        )

    whole = feed(chunked=False)
    assert feed(chunked=True) == whole
    assert feed(chunked=True) == whole


@SETTINGS
@given(st.data())
def test_deflate_answers_do_not_depend_on_chunking(data: st.DataObject) -> None:
    check_deflate_chunking_invariance(data)


@slow
@long_timeout
@SLOW_SETTINGS
@given(st.data())
def test_deflate_answers_do_not_depend_on_chunking_long(data: st.DataObject) -> None:
    check_deflate_chunking_invariance(data)


@SETTINGS
@given(st.data())
def test_valid_compressed_streams_give_their_messages(data: st.DataObject) -> None:
    """Compressed and plain messages within the limit, pings between fragments: all arrive."""
    max_message_size = data.draw(st.integers(1, 40), label="max_message_size")
    no_context_takeover = data.draw(st.booleans(), label="no context takeover")
    client = DeflateClient(no_context_takeover=no_context_takeover)
    wire = bytearray()
    expected: list[tuple[str, str | bytes]] = []
    for _ in range(data.draw(st.integers(1, 5), label="messages")):
        text = data.draw(st.booleans())
        if text:
            count = data.draw(st.integers(0, max_message_size))
            content: str | bytes = "".join(
                data.draw(st.lists(st.sampled_from(CHARACTERS), min_size=count, max_size=count))
            )
            payload = str(content).encode()
        else:
            content = payload = data.draw(st.binary(max_size=max_message_size))
        expected.append(("text" if text else "binary", content))
        compressed = data.draw(st.integers(0, 3)) > 0
        if compressed:
            payload = client.compress(payload)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=3)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        for index, piece in enumerate(pieces):
            wire += frame(
                (TEXT if text else BINARY) if index == 0 else CONTINUATION,
                piece,
                fin=index == len(pieces) - 1,
                rsv=RSV1 if compressed and index == 0 else 0,
                mask=data.draw(masks),
            )
            if index < len(pieces) - 1 and data.draw(st.booleans()):
                wire += frame(PING, b"between", mask=data.draw(masks))
    outcome = run(
        lambda: deflate_protocol(max_message_size, no_context_takeover=no_context_takeover),
        bytes(wire),
        cuts=data.draw(chunking(len(wire)), label="cuts"),
        limit=data.draw(limit_arguments, label="limit"),
        check_budget=False,
    )
    assert outcome.events == expected
    assert outcome.state == "open"
    assert all(opcode == PONG for opcode, _ in outcome.outgoing[-1])


HEADER_ERRORS = {
    "2-byte length for a short payload": frame(BINARY, b"hello", length_form="16"),
    "8-byte length for a short payload": frame(TEXT, b"hello", length_form="64"),
    "64-bit length with the top bit set": frame(BINARY, b"hello", length_form="top"),
    "reserved data opcode": frame(0x3, b"x"),
    "reserved control opcode": frame(0xB, b"x"),
    "unmasked": frame(TEXT, b"hello", mask=None),
    "control frame over 125 bytes": frame(PING, b"p" * 126),
    "control frame with a 126 marker": frame(PONG, b"p", length_form="16"),
    "fragmented control frame": frame(PING, b"p", fin=False),
    "RSV1 on a control frame": frame(PING, b"p", rsv=RSV1),
    "RSV2": frame(TEXT, b"x", rsv=0b010),
    "RSV3": frame(BINARY, b"x", rsv=0b001),
    "continuation without a message": frame(CONTINUATION, b"x"),
}


@SETTINGS
@given(
    st.sampled_from(sorted(HEADER_ERRORS)),
    st.lists(st.binary(max_size=20), max_size=3),
    st.binary(max_size=20),
    st.data(),
)
def test_header_errors_close_alike_with_and_without_deflate(
    error: str, before: list[bytes], after: bytes, data: st.DataObject
) -> None:
    wire = b"".join(frame(BINARY, payload) for payload in before) + HEADER_ERRORS[error] + after
    cuts = data.draw(chunking(len(wire)), label="cuts")
    plain_outcome = run(plain(64, None, fast_path=True), wire, cuts=cuts)
    deflate_outcome = run(lambda: deflate_protocol(64), wire, cuts=cuts, check_budget=False)
    assert plain_outcome.failure_code == deflate_outcome.failure_code == 1002
    assert plain_outcome.events == deflate_outcome.events == [("binary", p) for p in before]


@SETTINGS
@given(
    st.integers(1, 64),
    st.sampled_from(["é", "€", "😀", "mixed"]),
    st.booleans(),
    st.data(),
)
def test_max_message_size_counts_characters_with_and_without_deflate(
    max_message_size: int, character: str, one_more: bool, data: st.DataObject
) -> None:
    count = max_message_size + one_more
    if character == "mixed":
        text = "".join(
            data.draw(st.lists(st.sampled_from(CHARACTERS[1:]), min_size=count, max_size=count))
        )
    else:
        text = character * count
    encoded = text.encode()
    compressed = DeflateClient().compress(encoded)
    outcomes = []
    for payload, rsv, make in (
        (encoded, 0, plain(max_message_size, None, fast_path=True)),
        (encoded, 0, plain(max_message_size, None, fast_path=False)),
        (compressed, RSV1, lambda: deflate_protocol(max_message_size)),
    ):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(payload)), max_size=2)))
        pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
        wire = b"".join(
            frame(
                TEXT if index == 0 else CONTINUATION,
                piece,
                fin=index == len(pieces) - 1,
                rsv=rsv if index == 0 else 0,
            )
            for index, piece in enumerate(pieces)
        )
        outcomes.append(run(make, wire, cuts=data.draw(chunking(len(wire))), check_budget=False))
    for outcome in outcomes:
        if one_more:
            assert outcome.failure_code == 1009
            assert outcome.events == []
        else:
            assert outcome.failure_code is None
            assert outcome.events == [("text", text)]
