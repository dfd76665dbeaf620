"""WebSocket messages and close codes: the values that flow through every layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

__all__ = ["CloseCode", "MessageType", "WebSocketMessage"]


class CloseCode(enum.IntEnum):
    """Close codes defined by RFC 6455, section 7.4.1 (and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RECEIVED = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014


# Codes that only describe a state and must never appear in a close frame on the wire.
_LOCAL_ONLY_CODES: Final = frozenset({1004, 1005, 1006, 1015})
_MAX_REASON_BYTES: Final = 123
_REPR_LIMIT: Final = 40


def validate_close_code(code: int) -> None:
    """Raise ValueError unless ``code`` may be sent in a close frame."""
    if code in _LOCAL_ONLY_CODES or not (1000 <= code <= 1014 or 3000 <= code <= 4999):
        raise ValueError(f"close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999")


class MessageType(enum.Enum):
    """The kind of a :class:`WebSocketMessage`."""

    TEXT = "text"
    BINARY = "binary"
    CLOSE = "close"


@dataclass(frozen=True, slots=True, repr=False)
class WebSocketMessage:
    r"""One complete WebSocket message: text, binary, or a close request.

    Build messages with the constructors, not the class itself::

        WebSocketMessage.text("hello")
        WebSocketMessage.binary(b"\\x00\\x01")
        WebSocketMessage.close(4000, "bye")

    Messages are immutable and compare equal when their kind and content match.
    """

    type: MessageType
    """Text, binary or close."""
    data: str | bytes
    """The payload: ``str`` for text, ``bytes`` for binary, the reason (``str``) for close."""
    code: int | None = None
    """The close code of a close message; ``None`` for text and binary."""

    @staticmethod
    def text(data: str) -> WebSocketMessage:
        """Create a text message."""
        if not isinstance(data, str):
            raise TypeError(f"text message data must be str, not {type(data).__name__}")
        return new_message(MessageType.TEXT, data)

    @staticmethod
    def binary(data: bytes | bytearray | memoryview) -> WebSocketMessage:
        """Create a binary message."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"binary message data must be bytes, not {type(data).__name__}")
        return new_message(MessageType.BINARY, data if type(data) is bytes else bytes(data))

    @staticmethod
    def close(code: int = 1000, reason: str = "") -> WebSocketMessage:
        """Create a close request; yielding or returning it closes the socket with ``code``.

        Raises:
            ValueError: ``code`` may not be sent on the wire (1005, 1006, ...), or ``reason``
                is longer than the 123 UTF-8 bytes a close frame can carry.
        """
        validate_close_code(code)
        if len(reason.encode()) > _MAX_REASON_BYTES:
            raise ValueError("close reason is longer than 123 bytes in UTF-8")
        return new_message(MessageType.CLOSE, reason, code)

    def is_text(self) -> bool:
        """Return True for a text message."""
        return self.type is MessageType.TEXT

    def is_binary(self) -> bool:
        """Return True for a binary message."""
        return self.type is MessageType.BINARY

    def is_close(self) -> bool:
        """Return True for a close request."""
        return self.type is MessageType.CLOSE

    def as_text(self) -> str | None:
        """Return the text of a text message, or None for any other kind."""
        data = self.data
        return data if self.type is MessageType.TEXT and isinstance(data, str) else None

    def as_binary(self) -> bytes | None:
        """Return the payload of a binary message, or None for any other kind."""
        data = self.data
        return data if isinstance(data, bytes) else None

    @property
    def reason(self) -> str | None:
        """The reason of a close message, or None for any other kind."""
        data = self.data
        return data if self.type is MessageType.CLOSE and isinstance(data, str) else None

    def __repr__(self) -> str:
        if self.type is MessageType.CLOSE:
            return f"WebSocketMessage.close({self.code}, {self.data!r})"
        shown = self.data
        suffix = ""
        if len(shown) > _REPR_LIMIT:
            shown = shown[:_REPR_LIMIT]
            suffix = f" + {len(self.data) - _REPR_LIMIT} more"
        return f"WebSocketMessage.{self.type.value}({shown!r}{suffix})"


_SET_TYPE = WebSocketMessage.__dict__["type"].__set__
_SET_DATA = WebSocketMessage.__dict__["data"].__set__
_SET_CODE = WebSocketMessage.__dict__["code"].__set__
_new_object = object.__new__


def new_message(kind: MessageType, data: str | bytes, code: int | None = None) -> WebSocketMessage:
    """Build a :class:`WebSocketMessage` from checked parts, skipping the frozen ``__init__``.

    A frozen dataclass sets each field through ``object.__setattr__``; every received and
    sent message is built, so this sets the slots directly (about twice as fast).
    """
    message: WebSocketMessage = _new_object(WebSocketMessage)
    _SET_TYPE(message, kind)
    _SET_DATA(message, data)
    _SET_CODE(message, code)
    return message
