"""How messages are encoded for Redis (no server needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikard import WebSocketMessage
from spikard.pubsub._codec import decode, encode


@given(st.text())
def test_text_round_trip(text: str) -> None:
    message = WebSocketMessage.text(text)
    assert decode(encode(message)) == message


@given(st.binary())
def test_binary_round_trip(data: bytes) -> None:
    message = WebSocketMessage.binary(data)
    assert decode(encode(message)) == message


def test_close_round_trip() -> None:
    message = WebSocketMessage.close(4001, "room closed ✓")
    assert decode(encode(message)) == message


def test_text_that_looks_like_a_tag_stays_text() -> None:
    message = WebSocketMessage.text("\x00b not binary")
    assert decode(encode(message)) == message


def test_foreign_payloads() -> None:
    assert decode(b"hello from redis-cli") == WebSocketMessage.text("hello from redis-cli")
    assert decode(b"") == WebSocketMessage.text("")
    assert decode(b"\xff\xfe") == WebSocketMessage.binary(b"\xff\xfe")


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        (b"\x00", "not a spikard pub/sub payload"),
        (b"\x00x", "not a spikard pub/sub payload"),
        (b"\x00c\x03", "not a spikard pub/sub payload"),
        (b"\x00t\xff", "can't decode"),
        (b"\x00c\x03\xed", "close code 1005 cannot be sent"),
    ],
)
def test_malformed_payloads(payload: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        decode(payload)
