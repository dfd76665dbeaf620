"""WebSocket names, importable as in the original design: ``from spikard.websocket import ...``."""

from .app.shim import WebSocketResponse
from .errors import ConnectionClosed, ConnectionClosedError, ConnectionClosedOK, HandshakeRejected
from .messages import CloseCode, MessageType, WebSocketMessage
from .streams.socket import WebSocket

__all__ = [
    "CloseCode",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "HandshakeRejected",
    "MessageType",
    "WebSocket",
    "WebSocketMessage",
    "WebSocketResponse",
]
