r"""How messages travel through Redis: one tag byte pair, then the payload.

Redis channels carry bytes, and a WebSocket message is text, binary or close. A message is
encoded as ``b"\x00"`` plus a kind byte, then the payload:

========================  ===========================================================
``\x00t`` + UTF-8 text    a text message
``\x00b`` + bytes         a binary message
``\x00c`` + code + text   a close message: 2-byte big-endian code, then the UTF-8 reason
========================  ===========================================================

So text stays text and binary stays binary across processes. A payload that does not
start with ``\x00`` was published by something else (``redis-cli PUBLISH``, another
program): it is delivered as text when it is valid UTF-8, else as binary.
"""

from __future__ import annotations

from typing import Final

from ..messages import MessageType, WebSocketMessage

__all__ = ["decode", "encode"]

_MARK: Final = 0
_TEXT: Final = b"\x00t"
_BINARY: Final = b"\x00b"
_CLOSE: Final = b"\x00c"


def encode(message: WebSocketMessage) -> bytes:
    """Encode ``message`` for a Redis ``PUBLISH``."""
    if message.type is MessageType.TEXT:
        assert isinstance(message.data, str)
        return _TEXT + message.data.encode()
    if message.type is MessageType.BINARY:
        assert isinstance(message.data, bytes)
        return _BINARY + message.data
    code = message.code if message.code is not None else 1000
    return _CLOSE + code.to_bytes(2, "big") + (message.reason or "").encode()


def decode(payload: bytes) -> WebSocketMessage:
    """Decode a payload received from Redis.

    Raises:
        ValueError: the payload has spikard's mark but is malformed (unknown kind, invalid
            UTF-8 in a text or close message, or an invalid close code).
    """
    if not payload or payload[0] != _MARK:
        try:
            return WebSocketMessage.text(payload.decode())
        except UnicodeDecodeError:
            return WebSocketMessage.binary(payload)
    tag, body = payload[:2], payload[2:]
    if tag == _TEXT:
        return WebSocketMessage.text(body.decode())
    if tag == _BINARY:
        return WebSocketMessage.binary(body)
    if tag == _CLOSE and len(body) >= 2:
        return WebSocketMessage.close(int.from_bytes(body[:2], "big"), body[2:].decode())
    raise ValueError(f"not a spikard pub/sub payload: {payload[:16]!r}")
