"""The connection contract: what the stream layer and the callback shim may ask of a WebSocket.

Everything above ``connection/`` talks to a WebSocket through :class:`WebSocketConnection`
only, never to a driver, an event loop or a transport. A connection starts in
``CONNECTING`` with its handshake :attr:`~WebSocketConnection.request`; the application
accepts or rejects it, then receives and sends messages, and closes. Today one implementation
runs RFC 6455 over a byte transport (:class:`~.wire.WireConnection`, on either driver);
another transport (an ASGI server's websocket events) is one more implementation of this
class, with nothing above it changed.

Guarantees every implementation gives:

- :meth:`~WebSocketConnection.receive` returns messages in order, and raises
  :class:`~spikard.errors.ConnectionClosed` once the input is over and every message before
  the end was read. It waits while nothing arrived; the connection reads no more than
  ``max_queue`` messages ahead of it (the inbound backpressure).
- :meth:`~WebSocketConnection.send` returns once the message was handed to the transport
  and the transport's buffer is below its high-water mark (the outbound backpressure). It is
  cancel-safe: a cancelled send either went out whole or is still queued whole.
- Every wait is bounded by the connection's own timers (keepalive, ``write_timeout``,
  ``close_timeout``) except :meth:`~WebSocketConnection.receive` on a live, quiet peer.
- :attr:`~WebSocketConnection.on_ended` is called once, synchronously, when no more
  messages will arrive (the peer closed, left, or broke the protocol; also before accept,
  when the client leaves), with the time on the connection's clock.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, ClassVar, Protocol, TypeAlias, runtime_checkable

import anyio

from ..config import WebSocketConfig
from ..messages import CloseCode, WebSocketMessage
from .deadline import Deadline
from .events import Waiter
from .state import ConnectionState

if TYPE_CHECKING:
    from ..requests import Request
    from ..responses import Response

__all__ = [
    "AnsweredCallback",
    "AnsweringConnection",
    "Application",
    "Deadline",
    "EndedCallback",
    "RequestHandler",
    "ServesRequests",
    "Waiter",
    "WebSocketConnection",
]

EndedCallback = Callable[[float], None]
"""``on_ended(now)``: the input is over; ``now`` is the connection's clock."""
AnsweredCallback = Callable[[], None]
"""``on_answered()``: the handshake was just accepted or refused."""


class WebSocketConnection(abc.ABC):
    """One WebSocket connection, from its handshake to its end; see the module docs."""

    __slots__ = ()

    request: Request
    """The handshake request (path, headers, query, cookies, client)."""
    config: WebSocketConfig
    """The limits and timers that apply."""

    @property
    @abc.abstractmethod
    def on_ended(self) -> EndedCallback | None:
        """Called once when the input is over (see the module docs); None: nobody listens."""

    @on_ended.setter
    @abc.abstractmethod
    def on_ended(self, callback: EndedCallback | None) -> None: ...

    supports_answer_hook: ClassVar[bool] = False
    """True when the driver calls :attr:`on_answered` (the session bounds the handshake with
    ``accept_timeout`` only then)."""

    @property
    def on_answered(self) -> AnsweredCallback | None:
        """Called once, synchronously, when the handshake is answered (accepted or refused).

        It runs before any await of the answer; drivers with ``supports_answer_hook`` call it.
        """
        return None

    @on_answered.setter
    def on_answered(self, callback: AnsweredCallback | None) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not report handshake answers")

    @property
    @abc.abstractmethod
    def state(self) -> ConnectionState:
        """Where the connection is in its life."""

    @property
    @abc.abstractmethod
    def accepted(self) -> bool:
        """True once the handshake was accepted (or was due, when the client had left)."""

    @property
    @abc.abstractmethod
    def rejected(self) -> bool:
        """True once the handshake was refused with HTTP."""

    @property
    @abc.abstractmethod
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered, in its order of preference."""

    @property
    @abc.abstractmethod
    def subprotocol(self) -> str | None:
        """The subprotocol chosen at accept time."""

    @property
    @abc.abstractmethod
    def close_code(self) -> int | None:
        """How the connection ended (1000, 1006, ...); None while it has not."""

    @property
    @abc.abstractmethod
    def close_reason(self) -> str | None:
        """The reason that came with :attr:`close_code`; None while it has not ended."""

    @property
    @abc.abstractmethod
    def peer_close(self) -> tuple[int, str] | None:
        """The peer's close frame (code, reason); None if none arrived."""

    @property
    @abc.abstractmethod
    def failure(self) -> tuple[int, str] | None:
        """Why this side failed the connection (protocol error, timeout); None otherwise."""

    @property
    @abc.abstractmethod
    def queued_messages(self) -> int:
        """Messages received and not read yet (at most ``max_queue``)."""

    @property
    def supports_ping(self) -> bool:
        """False when the transport has no ping of its own (ASGI)."""
        return True

    @abc.abstractmethod
    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Send ``101 Switching Protocols``.

        Raises:
            RuntimeError: the handshake was already answered.
            ValueError: ``subprotocol`` was not offered, or a header is malformed.
        """

    @abc.abstractmethod
    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the handshake with an HTTP response instead.

        Raises:
            RuntimeError: the handshake was already answered.
        """

    @abc.abstractmethod
    async def receive(self) -> WebSocketMessage:
        """Return the next message.

        Raises:
            ConnectionClosedOK: the input ended with a close handshake.
            ConnectionClosedError: it ended otherwise (1006, protocol error, timeout).
            RuntimeError: the handshake was not accepted.
        """

    @abc.abstractmethod
    def receive_nowait(self) -> WebSocketMessage | None:
        """Return the next message if it was received already, else None (never waits).

        At the end of the input it returns None too: :meth:`receive` then says how it ended.
        """

    @abc.abstractmethod
    async def send(self, message: WebSocketMessage) -> None:
        """Send one message; a close message starts the close handshake.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            RuntimeError: the handshake was not accepted.
        """

    @abc.abstractmethod
    def discard_incoming(self) -> None:
        """The application reads no more: drop what is queued and whatever arrives later.

        Reading goes on, so the peer's close frame gets through.
        """

    @abc.abstractmethod
    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        """Send a ping; return an awaitable that completes when its pong arrives.

        Raises:
            NotImplementedError: the transport has no ping (:attr:`supports_ping`).
            ConnectionClosed: the connection is closing or closed.
        """

    @abc.abstractmethod
    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake; idempotent.

        After a peer's protocol error this sends that error's close frame. Returns without
        waiting for the peer (see :meth:`wait_closed`).
        """

    @abc.abstractmethod
    async def wait_closed(self) -> None:
        """Wait until the input is over; after :meth:`close`, bounded by ``close_timeout``."""

    # ---- the connection's event loop, for code that waits beside it --------------------------

    def time(self) -> float:
        """The connection's clock: the one :attr:`on_ended` reports and deadlines use."""
        return anyio.current_time()

    def new_event(self) -> Waiter:
        """An event of the connection's event loop, settable from its callbacks."""
        return anyio.Event()

    def move_on_after(self, delay: float) -> Deadline:
        """A ``with`` block stopped ``delay`` seconds from now; its ``deadline`` may be moved.

        The block may await only events of :meth:`new_event` (on asyncio it is not an anyio
        cancel scope: see :mod:`~.deadline`).
        """
        return anyio.move_on_after(delay)


class AnsweringConnection(WebSocketConnection):
    """A driver that reports the handshake answer: the ``on_answered`` hook, implemented once.

    Subclasses set ``self._on_answered = None`` in their ``__init__`` and call
    :meth:`_report_answer` right after they record an accept or a refusal, before any await.
    """

    __slots__ = ("_on_answered",)

    supports_answer_hook = True

    @property
    def on_answered(self) -> AnsweredCallback | None:
        """Called once when the handshake is answered (see the module docs)."""
        return self._on_answered

    @on_answered.setter
    def on_answered(self, callback: AnsweredCallback | None) -> None:
        self._on_answered = callback

    def _report_answer(self) -> None:
        callback, self._on_answered = self._on_answered, None
        if callback is not None:
            callback()


RequestHandler: TypeAlias = (
    "Callable[[Request, WebSocketConnection | None], Awaitable[Response | None]]"
)
"""The application as a server calls it: answer a request, or run the WebSocket (``upgrade``)
and return None."""


@runtime_checkable
class ServesRequests(Protocol):
    """An application object that hands the server its :data:`RequestHandler` (a Spikard app)."""

    @property
    def request_handler(self) -> RequestHandler:
        """The handler the server calls for each request."""
        ...


Application: TypeAlias = "RequestHandler | ServesRequests"
"""What a server serves: a request handler, or an object that has one."""
