"""spikard: a pure-Python, stream-first WebSocket and HTTP server framework.

A WebSocket handler is a stream transformer: messages come in as an async iterator and go
out as whatever the handler yields. See the README for a tour.
"""

from . import ops
from ._version import __version__
from .app.application import Spikard
from .app.shim import WebSocketResponse
from .config import HTTPConfig, WebSocketConfig
from .cors import CORSMiddleware
from .datastructures import Address, Headers, QueryParams, State
from .errors import (
    BodyTimeout,
    ClientDisconnected,
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    ContentTooLarge,
    HandshakeRejected,
    HTTPException,
    InvalidBody,
    ProtocolError,
    RequestValidationError,
    RoutingError,
    SpikardError,
)
from .files import FileResponse, StaticFiles
from .forms import FormData, UploadFile
from .messages import CloseCode, MessageType, WebSocketMessage
from .ops import IdleTimeout, RateLimitExceeded
from .pubsub import (
    Broker,
    BrokerError,
    BrokerUnavailable,
    ChannelMessage,
    MemoryBroker,
    SubscriberTooSlow,
    Subscription,
    create_broker,
    merge,
)
from .requests import Request
from .responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)
from .sse import EventSourceResponse, ServerSentEvent
from .streams.socket import WebSocket
from .typed import InvalidMessage

__all__ = [
    "Address",
    "BodyTimeout",
    "Broker",
    "BrokerError",
    "BrokerUnavailable",
    "CORSMiddleware",
    "ChannelMessage",
    "ClientDisconnected",
    "CloseCode",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ContentTooLarge",
    "EventSourceResponse",
    "FileResponse",
    "FormData",
    "HTMLResponse",
    "HTTPConfig",
    "HTTPException",
    "HandshakeRejected",
    "Headers",
    "IdleTimeout",
    "InvalidBody",
    "InvalidMessage",
    "JSONResponse",
    "MemoryBroker",
    "MessageType",
    "PlainTextResponse",
    "ProtocolError",
    "QueryParams",
    "RateLimitExceeded",
    "Request",
    "RequestValidationError",
    "Response",
    "RoutingError",
    "ServerSentEvent",
    "Spikard",
    "SpikardError",
    "State",
    "StaticFiles",
    "StreamingResponse",
    "SubscriberTooSlow",
    "Subscription",
    "UploadFile",
    "WebSocket",
    "WebSocketConfig",
    "WebSocketMessage",
    "WebSocketResponse",
    "__version__",
    "create_broker",
    "merge",
    "ops",
]
