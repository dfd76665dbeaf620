"""The ASGI 3 vocabulary the adapter speaks, and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ...connection.events import Waiter
    from ...connection.tasks import LightTaskGroup

__all__ = [
    "ASGIApp",
    "ASGIProtocolError",
    "CallHost",
    "ClientDisconnectedError",
    "GoingAway",
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


class GoingAway(Protocol):
    """A WebSocket session that shutdown can close."""

    async def going_away(self, code: int) -> None:
        """Close with ``code`` (the server is shutting down)."""


class CallHost(Protocol):
    """What serving one ASGI call (a request or a WebSocket) needs of the adapter."""

    app: ASGIApp
    root_path: str
    max_body_size: int
    shutdown_close_code: int

    @property
    def shutting_down(self) -> bool:
        """True once the server began closing WebSockets for shutdown."""

    @property
    def running_state(self) -> dict[str, Any] | None:
        """The lifespan state every scope gets a copy of."""

    def running(self) -> LightTaskGroup:
        """The group the application's calls run in (raises outside the lifespan)."""

    def over_limit(self) -> bool:
        """True (and logged) when ``limit_concurrency`` calls run already."""

    def server_address(self) -> tuple[str, int] | None:
        """The bound address, for scopes of a connection whose own is unknown."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop served on; None on trio."""

    def new_event(self) -> Waiter:
        """An event of the loop served on."""

    def call_started(self) -> None:
        """An application call began."""

    def call_done(self) -> None:
        """An application call ended."""

    def track(self, session: GoingAway, open_: bool) -> None:
        """A WebSocket session began (``open_``) or ended: shutdown closes those open."""
