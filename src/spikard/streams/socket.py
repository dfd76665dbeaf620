"""The :class:`WebSocket` a stream handler receives: an async iterator of incoming messages.

It speaks to its connection through the connection contract
(:class:`~spikard.connection.contract.WebSocketConnection`) only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from ..connection.contract import WebSocketConnection
from ..datastructures import Address, Headers, QueryParams
from ..errors import ConnectionClosed, ConnectionClosedError
from ..messages import CloseCode, WebSocketMessage, coerce_message, validate_close_code

if TYPE_CHECKING:
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

    __slots__ = (
        "_accepted",
        "_accepting",
        "_connection",
        "_open",
        "_read_ever",
        "request",
        "sends_in_progress",
        "waiting_readers",
    )

    def __init__(self, connection: WebSocketConnection) -> None:
        self.request: Request = connection.request
        """The handshake request (path, headers, query and path parameters, cookies, client)."""
        self._connection = connection
        self.waiting_readers = 0
        """How many tasks are in a read or an accept of this socket right now."""
        self.sends_in_progress = 0
        """How many sends are being written right now."""
        self._read_ever = False
        self._open = False
        """True once this socket accepted (sends need no handshake check)."""
        self._accepting = False
        self._accepted: anyio.Event | None = None
        """Created only when a second task waits for an accept in progress."""

    # ---- request shortcuts -----------------------------------------------------------------

    @property
    def connection(self) -> WebSocketConnection:
        """The connection underneath (the connection contract)."""
        return self._connection

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
        return self._connection.subprotocols

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol chosen at accept time, if any."""
        return self._connection.subprotocol

    # ---- handshake -------------------------------------------------------------------------

    @property
    def accepted(self) -> bool:
        """True once the handshake was accepted (101 sent)."""
        return self._connection.accepted

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
        self.waiting_readers += 1  # messages that came with the handshake reach us in accept
        try:
            await self._connection.accept(subprotocol, headers)
            self._open = True
        finally:
            self.waiting_readers -= 1
            self._accepting = False
            if self._accepted is not None:
                self._accepted.set()
                self._accepted = None

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
        await self._connection.reject(status_code, body, headers)

    async def _ensure_open(self) -> WebSocketConnection:
        connection = self._connection
        if not connection.accepted:
            # A first read and a first send may race (merge(socket, ...)): accept once.
            await self._wait_for_other_accept()
            if not connection.accepted:
                if connection.rejected:
                    raise ConnectionClosedError(CloseCode.POLICY_VIOLATION, "handshake rejected")
                await self._accept(None, None)
        return connection

    # ---- receiving -------------------------------------------------------------------------

    def __aiter__(self) -> WebSocket:
        return self

    async def __anext__(self) -> WebSocketMessage:
        connection = self._connection
        if self._read_ever:
            message = connection.receive_nowait()
            if message is not None:
                return message  # no wait: the common case under load
        else:
            await self._ensure_open()
            self._read_ever = True
        self.waiting_readers += 1
        try:
            return await connection.receive()
        except ConnectionClosed:
            raise StopAsyncIteration from None
        finally:
            self.waiting_readers -= 1

    async def receive(self) -> WebSocketMessage:
        """Wait for the next message.

        Raises:
            ConnectionClosedOK: the connection was closed by a close handshake.
            ConnectionClosedError: the connection failed (1006, protocol error, timeout).
        """
        if not self._read_ever:
            await self._ensure_open()
            self._read_ever = True
        self.waiting_readers += 1
        try:
            return await self._connection.receive()
        finally:
            self.waiting_readers -= 1

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
        connection = self._connection
        if not self._open:
            await self._ensure_open()
        self.sends_in_progress += 1
        try:
            await connection.send(message)
        finally:
            self.sends_in_progress -= 1

    async def ping(self, payload: bytes | None = None) -> Awaitable[object]:
        """Send a ping; await what it returns to wait for the pong.

        Raises:
            NotImplementedError: the server underneath has no pings (ASGI).
            ConnectionClosed: the connection is closing or closed.
            RuntimeError: too many pings already wait for their pong.
        """
        await self._ensure_open()
        return await self._connection.ping(payload)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake with ``code`` and ``reason``; idempotent.

        Raises:
            ValueError: ``code`` may not be sent (1005, 1006, ...).
        """
        validate_close_code(code)
        await self._ensure_open()
        await self._connection.close(code, reason)

    # ---- state -----------------------------------------------------------------------------

    @property
    def close_code(self) -> int | None:
        """How the connection ended (1000, 1006, ...); None while it is open."""
        return self._connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The reason that came with :attr:`close_code`; None while open."""
        return self._connection.close_reason

    def __repr__(self) -> str:
        state = (
            "closed" if self.close_code is not None else ("open" if self.accepted else "connecting")
        )
        return f"<WebSocket {self.request.path!r} {state}>"
