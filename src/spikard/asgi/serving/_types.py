"""The ASGI 3 vocabulary the adapter speaks, and its errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = [
    "ASGIApp",
    "ASGIProtocolError",
    "ClientDisconnectedError",
    "Message",
    "Receive",
    "Scope",
    "Send",
]

Scope = MutableMapping[str, Any]
"""An ASGI connection scope (``http``, ``websocket`` or ``lifespan``)."""
Message = MutableMapping[str, Any]
"""One ASGI event, in either direction."""
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}
"""What every scope says in ``scope["asgi"]`` (a fresh copy each time)."""


class ASGIProtocolError(RuntimeError):
    """The application sent a message that is not allowed where it is (the app's bug).

    Raised from ``send``; the connection is ended for it (500 before a response or an
    accepted handshake, a closed connection or close 1011 after) and it is logged once.
    """


class ClientDisconnectedError(OSError):
    """``send`` after the client left (ASGI 2.4: a server-specific ``OSError``)."""
