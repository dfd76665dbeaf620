"""The :class:`WebSocket` a stream handler receives: an async iterator of incoming messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc

from ..datastructures import Address, Headers, QueryParams
from ..errors import ConnectionClosedError, ConnectionClosedOK, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, coerce_message, validate_close_code
from .queue import MessageQueue

if TYPE_CHECKING:
    from ..connection.driver import WebSocketConnection
    from ..connection.http import WebSocketUpgrade
    from ..requests import Request

__all__ = ["WebSocket"]

_T = TypeVar("_T")


class WebSocket:
    """One WebSocket connection, as a stream handler sees it.

    Iterate over it to receive messages; the loop ends when the connection closes (look at
    :attr:`close_code` to learn how). Send by yielding from the handler, or with :meth:`send`.

    The handshake is answered lazily: the socket is accepted when the handler first reads,
    sends, yields, returns, or calls :meth:`accept`. Until then the handler may inspect
    :attr:`request` and refuse the connection with :meth:`reject` (or by raising
    :class:`~spikard.errors.HandshakeRejected`), and the client gets an HTTP response.
    """

    def __init__(self, request: Request, upgrade: WebSocketUpgrade) -> None:
        self.request = request
        """The handshake request (path, headers, query and path parameters, cookies, client)."""
        self.subprotocol: str | None = None
        """The subprotocol chosen at accept time, if any."""
        self._upgrade = upgrade
        self._connection: WebSocketConnection | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._on_accept: Callable[[WebSocketConnection], None] | None = None
        config = upgrade.websocket_config
        # Not MessageQueue[WebSocketMessage](...): calling a subscripted generic costs more.
        self._inbound: MessageQueue[WebSocketMessage] = MessageQueue(
            config.max_queue, upgrade.event_loop
        )
        self.waiting_readers = 0
        """How many tasks are blocked reading this socket right now."""
        self.sends_in_progress = 0
        """How many sends are being written right now."""
        self._read_ever = False
        self._accepting = False
        self._accepted: anyio.Event | None = None
        """Created only when a second task waits for an accept in progress."""

    # ---- request shortcuts -----------------------------------------------------------------

    @property
    def path(self) -> str:
        """The handshake's path."""
        return self.request.path

    @property
    def headers(self) -> Headers:
        """The handshake's headers."""
        return self.request.headers

    @property
    def query_params(self) -> QueryParams:
        """The handshake's query parameters."""
        return self.request.query_params

    @property
    def path_params(self) -> dict[str, Any]:
        """The values captured by the route's ``{name}`` placeholders."""
        return self.request.path_params

    @property
    def cookies(self) -> Mapping[str, str]:
        """The handshake's cookies."""
        return self.request.cookies

    @property
    def client(self) -> Address | None:
        """The peer's address."""
        return self.request.client

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered, in its order of preference."""
        return self._upgrade.offer.subprotocols

    # ---- handshake -------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """True once the handshake was accepted (101 sent)."""
        return self._upgrade.accepted

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Accept the handshake now, optionally choosing a subprotocol and adding headers.

        Raises:
            RuntimeError: the handshake was already answered.
            ValueError: ``subprotocol`` was not offered by the client.
        """
        await self._wait_for_other_accept()
        await self._accept(subprotocol, headers)

    async def _wait_for_other_accept(self) -> None:
        while self._accepting:
            if self._accepted is None:
                self._accepted = anyio.Event()
            await self._accepted.wait()

    async def _accept(self, subprotocol: str | None, headers: Mapping[str, str] | None) -> None:
        self._accepting = True
        try:
            connection = await self._upgrade.accept(subprotocol, headers)
            self.subprotocol = subprotocol
            self._connection = connection
        finally:
            self._accepting = False
            if self._accepted is not None:
                self._accepted.set()
                self._accepted = None
        if self._on_accept is not None:
            self._on_accept(connection)

    async def reject(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Refuse the handshake with an HTTP response; the handler should return after this.

        Raises:
            RuntimeError: the handshake was already answered.
        """
        await self._upgrade.reject(HandshakeRejected(status_code, body, headers))
        self._inbound.close()

    async def _ensure_open(self) -> WebSocketConnection:
        if self._connection is None:
            # A first read and a first send may race (merge(socket, ...)): accept once.
            await self._wait_for_other_accept()
            if self._connection is None:
                if self._upgrade.rejected or self._upgrade.accepted:
                    raise ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
                await self._accept(None, None)
        assert self._connection is not None
        return self._connection

    # ---- receiving -------------------------------------------------------------------------

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> WebSocketMessage:
        inbound = self._inbound
        if inbound.has_items and self._connection is not None:
            self._read_ever = True
            return inbound.take()  # no wait: the common case under load
        if self._connection is None:
            await self._ensure_open()
        self._read_ever = True
        self.waiting_readers += 1
        try:
            return await self._inbound.get()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None
        finally:
            self.waiting_readers -= 1

    async def receive(self) -> WebSocketMessage:
        """Wait for the next message.

        Raises:
            ConnectionClosedOK: the connection was closed by a close handshake.
            ConnectionClosedError: the connection failed (1006, protocol error, timeout).
        """
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise self._closed_error() from None

    def __or__(self, operator: Callable[[WebSocket], _T]) -> _T:
        """Feed this socket to an aiostream pipe: ``socket | pipe.map(f)``."""
        return operator(self)

    # ---- sending ---------------------------------------------------------------------------

    async def send(self, message: WebSocketMessage | str | bytes) -> None:
        """Send a message (``str`` as text, ``bytes`` as binary); accepts the handshake first.

        Raises:
            ConnectionClosed: the connection is closing or closed.
        """
        await self._send_message(coerce_message(message))

    async def _send_message(self, message: WebSocketMessage) -> None:
        """:meth:`send` for a message that is already a :class:`WebSocketMessage`."""
        connection = self._connection or await self._ensure_open()
        self.sends_in_progress += 1
        try:
            # More messages already received: the handler's replies to them follow at once.
            await connection.send(message, more_coming=self._inbound.has_items)
        finally:
            self.sends_in_progress -= 1
        protocol = connection.protocol
        if protocol.input_ended and protocol.close_code == CloseCode.ABNORMAL_CLOSURE:
            # The peer vanished while this message was being written: it was probably lost.
            raise protocol.closed_error()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``; idempotent.

        Raises:
            ValueError: ``code`` may not be sent (1005, 1006, ...).
        """
        validate_close_code(code)
        connection = self._connection or await self._ensure_open()
        await connection.close(code, reason)

    # ---- state -----------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """How the connection ended (1000, 1006, ...); None while it is open."""
        if self._connection is None:
            return None
        return self._connection.protocol.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason that came with :attr:`close_code`; None while open."""
        if self._connection is None or self._connection.protocol.close_code is None:
            return None
        return self._connection.protocol.close_reason

    def _closed_error(self) -> ConnectionClosedOK | ConnectionClosedError:
        if self._connection is None:
            return ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
        error = self._connection.protocol.closed_error()
        assert isinstance(error, (ConnectionClosedOK, ConnectionClosedError))
        return error

    def __repr__(self) -> str:
        state = (
            "closed" if self.close_code is not None else ("open" if self.accepted else "connecting")
        )
        return f"<WebSocket {self.request.path!r} {state}>"
