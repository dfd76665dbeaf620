"""The ASGI 3 vocabulary the hosted side speaks (scope, receive, send)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...config import HTTPConfig, WebSocketConfig
    from ...connection.contract import WebSocketConnection
    from ...pubsub import Broker
    from ...requests import Request
    from ...responses import Response

__all__ = ["HostedApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
"""The connection scope an ASGI server passes (``type``, ``path``, ``headers``, ...)."""
Message = MutableMapping[str, Any]
"""One ASGI event, in either direction."""
Receive = Callable[[], Awaitable[Message]]
"""``await receive()``: the next event from the server."""
Send = Callable[[Message], Awaitable[None]]
"""``await send(event)``: hand an event to the server; returns once it took it."""


class HostedApp(Protocol):
    """What the hosted side needs of a :class:`~spikard.Spikard` app (it never imports one)."""

    http_config: HTTPConfig
    websocket_config: WebSocketConfig
    broker: Broker

    async def handle(
        self, request: Request, upgrade: WebSocketConnection | None
    ) -> Response | None:
        """Answer ``request``, or run the WebSocket session on ``upgrade``."""
        ...

    def lifespan_context(self) -> AbstractAsyncContextManager[None]:
        """The app's startup and shutdown (the broker, hooks, ``lifespan=``)."""
        ...
