"""The error a typed read raises for a message that is not what the route declares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from ..errors import SpikardError
from ..messages import CloseCode

__all__ = ["MAX_REPLY_ERRORS", "InvalidMessage", "short_reason"]

MAX_REPLY_ERRORS: Final = 10
"""At most this many errors are kept (and sent back by ``on_invalid="reply"``)."""
_MAX_REASON_BYTES: Final = 123


def short_reason(text: str, limit: int = _MAX_REASON_BYTES) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8 (a close reason's limit is 123)."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "..."


class InvalidMessage(SpikardError, ValueError):
    """A WebSocket message is not valid JSON, or not an instance of the declared type.

    A typed read (``async for`` over a typed socket, ``receive()``, ``receive_json()``,
    ``socket.typed(T)``) raises it when the route says ``on_invalid="raise"``; uncaught, the
    socket closes with :attr:`close_code` (1007) and ``str(error)`` as the reason. It is a
    ``ValueError`` too.

    Attributes:
        errors: one ``{"loc": [...], "msg": ..., "type": ...}`` per failure (the shape of
            an HTTP 422's ``detail``), at most :data:`MAX_REPLY_ERRORS`; ``loc`` is the path
            into the message (``["items", 0, "id"]``), empty for the message as a whole.
        data: the payload that failed (``str`` for text, ``bytes`` for binary).
        close_code: 1007 (invalid frame payload data, RFC 6455 section 7.4.1).
    """

    close_code: int = CloseCode.INVALID_PAYLOAD

    def __init__(self, errors: Sequence[Mapping[str, Any]], data: str | bytes = "") -> None:
        self.errors: list[dict[str, Any]] = [dict(e) for e in errors[:MAX_REPLY_ERRORS]]
        self.data = data
        super().__init__(short_reason(_summary(self.errors)))

    def reply(self) -> dict[str, Any]:
        """The message ``on_invalid="reply"`` sends: ``{"type": "error", "errors": [...]}``."""
        return {"type": "error", "errors": self.errors}


def _summary(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "invalid message"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    return f"invalid message at {where}: {message}" if where else f"invalid message: {message}"
