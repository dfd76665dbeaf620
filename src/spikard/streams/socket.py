"""The :class:`WebSocket` a stream handler receives: an async iterator of incoming messages.

It speaks to its connection through the connection contract
(:class:`~spikard.connection.contract.WebSocketConnection`) only.

A socket is generic in what its reads return: ``WebSocket`` (that is,
``WebSocket[WebSocketMessage]``) gives raw messages; a route with a declared message type
(``WebSocket[ChatIn]``, ``receive=ChatIn``) gets a socket whose reads decode and validate
each message with the route's codec, built at registration. A message that fails meets the
route's ``on_invalid`` outcome (:data:`~spikard.typed.OnInvalid`); after a ``"close"`` the
socket reads nothing more.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, overload

import anyio
from typing_extensions import TypeVar

from ..connection.contract import WebSocketConnection
from ..datastructures import Address, Headers, QueryParams, State
from ..errors import ConnectionClosed, ConnectionClosedError
from ..messages import (
    CloseCode,
    MessageType,
    WebSocketMessage,
    new_message,
    validate_close_code,
)
from ..typed.codecs import codec_for
from ..typed.encoding import coerce_message, decode_json, dumps, encode_value
from ..typed.errors import InvalidMessage
from ..typed.policy import OnInvalid

if TYPE_CHECKING:
    from ..requests import Request

__all__ = ["InT", "WebSocket"]

logger = logging.getLogger("spikard.websocket")

InT = TypeVar("InT", default=WebSocketMessage)
"""What reading a socket gives: raw messages unless the route declares a type."""
_T = TypeVar("_T")
_Decode = Callable[[str | bytes], Any]


class WebSocket(Generic[InT]):
    """One WebSocket connection, as a stream handler sees it.

    Iterate over it to receive messages; the loop ends when the connection closes (look at
    :attr:`close_code` to learn how). Send by yielding from the handler, or with :meth:`send`.
    On a route that declares a message type (``socket: WebSocket[ChatIn]``), iterating and
    :meth:`receive` give validated ``ChatIn`` values instead of raw messages.

    The handshake is answered lazily: the socket is accepted when the handler first reads,
    sends, yields, returns, or calls :meth:`accept`. Until then the handler may inspect
    :attr:`request` and refuse the connection with :meth:`reject` (or by raising
    :class:`~spikard.errors.HandshakeRejected`), and the client gets an HTTP response.
    """

    __slots__ = (
        "_accepted",
        "_accepting",
        "_connection",
        "_decode",
        "_encode",
        "_invalid_seen",
        "_on_invalid",
        "_open",
        "_preferred",
        "_read_ever",
        "_refused",
        "_state",
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
        self._state: State | None = None
        self._open = False
        """True once this socket accepted (sends need no handshake check)."""
        self._accepting = False
        self._accepted: anyio.Event | None = None
        """Created only when a second task waits for an accept in progress."""
        self._decode: _Decode | None = None
        """The route's decoder of incoming messages; None: reads give raw messages."""
        self._encode: Callable[[Any], str] | None = None
        """The route's encoder of outgoing values; None: by each value's own type."""
        self._on_invalid: OnInvalid = "close"
        self._preferred: tuple[str, ...] = ()
        """The route's subprotocols, in its order of preference."""
        self._refused: tuple[int, str] | None = None
        """Set once an invalid message closed the socket: reads end."""
        self._invalid_seen = False

    def _set_route(
        self,
        decode: _Decode | None,
        encode: Callable[[Any], str] | None,
        on_invalid: OnInvalid,
        subprotocols: tuple[str, ...],
    ) -> None:
        """Apply what the route declares (called before the handler runs)."""
        self._decode = decode
        self._encode = encode
        self._on_invalid = on_invalid
        self._preferred = subprotocols

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
        """The client's address (behind trusted proxies, the one they forwarded for)."""
        return self.request.client

    @property
    def state(self) -> State:
        """This connection's own namespace (``socket.state.user = ...``), made on first use.

        It lives as long as the connection; ``app.state`` is the process-wide one.
        """
        state = self._state
        if state is None:
            state = self._state = State()
        return state

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
        if subprotocol is None and self._preferred:
            # As websockets does: the first of the client's offers that the route speaks.
            subprotocol = next(
                (offer for offer in self._connection.subprotocols if offer in self._preferred),
                None,
            )
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

    def __aiter__(self) -> WebSocket[InT]:
        return self

    async def __anext__(self) -> InT:
        if self._read_ever:
            message = self._connection.receive_nowait()
            if message is not None:  # no wait: the common case under load
                decode = self._decode
                if decode is None:
                    return message  # type: ignore[return-value]  # InT is the message type
                try:
                    return decode(message.data)  # type: ignore[no-any-return]
                except InvalidMessage as error:
                    if not await self._invalid(error):
                        raise StopAsyncIteration from None
        return await self._next(self._decode, True)  # type: ignore[no-any-return]

    async def _next(self, decode: _Decode | None, iterating: bool) -> Any:
        """The next message, decoded; the end raises StopAsyncIteration when ``iterating``.

        Raises:
            ConnectionClosed: the end, when not ``iterating``.
            InvalidMessage: a message failed ``decode`` and the route says ``"raise"``.
        """
        connection = self._connection
        while True:
            message = connection.receive_nowait() if self._read_ever else None
            if message is None:
                if not self._read_ever:
                    await self._ensure_open()
                    self._read_ever = True
                refused = self._refused
                if refused is not None:
                    if iterating:
                        raise StopAsyncIteration
                    raise ConnectionClosedError(*refused)
                self.waiting_readers += 1
                try:
                    message = await connection.receive()
                except ConnectionClosed:
                    if iterating:
                        raise StopAsyncIteration from None
                    raise
                finally:
                    self.waiting_readers -= 1
            if decode is None:
                return message
            try:
                return decode(message.data)
            except InvalidMessage as error:
                await self._invalid(error)  # replied (read on), or closed (the next turn ends)

    async def receive(self) -> InT:
        """Wait for the next message (decoded and validated when the route declares a type).

        Raises:
            ConnectionClosedOK: the connection was closed by a close handshake.
            ConnectionClosedError: the connection failed (1006, protocol error, timeout), or
                an invalid message closed it with 1007.
            InvalidMessage: an invalid message, on a route with ``on_invalid="raise"``.
        """
        return await self._next(self._decode, False)  # type: ignore[no-any-return]

    async def receive_json(self) -> Any:
        """Wait for the next message and decode it as JSON (text, or UTF-8 binary).

        A message that is not JSON meets the route's ``on_invalid`` outcome (by default
        the socket closes with 1007, and this raises ``ConnectionClosedError``).

        Raises:
            ConnectionClosed: as :meth:`receive`.
            InvalidMessage: not JSON, on a route with ``on_invalid="raise"``.
        """
        return await self._next(decode_json, False)

    def json(self) -> AsyncIterator[Any]:
        """Iterate over the incoming messages decoded as JSON; ends when the socket closes.

        ::

            async for value in socket.json():
                yield {"echo": value}
        """
        return _Reader(self, decode_json)

    @overload
    def typed(self, message_type: type[_T]) -> AsyncIterator[_T]: ...

    @overload
    def typed(self, message_type: Any) -> AsyncIterator[Any]: ...

    def typed(self, message_type: Any) -> AsyncIterator[Any]:
        """Iterate over the incoming messages validated as ``message_type``.

        For handlers that cannot annotate their socket: ``async for m in
        socket.typed(ChatIn)`` gives ``ChatIn`` values. The codec is built on the first call
        per type; invalid messages meet the route's ``on_invalid`` outcome.

        Raises:
            MissingExtra: the library ``message_type`` needs is not installed.
            TypeError: no library can read ``message_type``.
        """
        return _Reader(self, codec_for(message_type).decode)

    async def _invalid(self, error: InvalidMessage) -> bool:
        """Apply the route's ``on_invalid`` outcome; True when reading goes on."""
        policy = self._on_invalid
        if not self._invalid_seen:
            self._invalid_seen = True
            logger.info(
                "invalid message on %s (on_invalid=%s): %r",  # %r: client text, escaped
                self.request.path,
                policy if isinstance(policy, str) else getattr(policy, "__qualname__", policy),
                str(error),
            )
        else:
            logger.debug("invalid message on %s: %r", self.request.path, str(error))
        if policy == "close":
            code, reason = error.close_code, str(error)
            self._refused = (code, reason)
            self._connection.discard_incoming()  # nobody reads now; the close gets through
            await self._connection.close(code, reason)
            return False
        if policy == "raise":
            raise error
        reply: object
        if policy == "reply":
            reply = error.reply()
        else:
            assert callable(policy)
            reply = policy(error)
            if inspect.isawaitable(reply):
                reply = await reply
            if reply is None:
                return True
        try:
            await self.send(reply)
        except ConnectionClosed:
            pass  # the next read says how it ended
        return True

    def __or__(self, operator: Callable[[WebSocket[InT]], _T]) -> _T:
        """Feed this socket to an operator: ``socket | ops.batch(10, 0.1)`` or an aiostream pipe."""
        return operator(self)

    # ---- sending ---------------------------------------------------------------------------

    async def send(self, message: object) -> None:
        """Send a message; accepts the handshake first.

        ``str`` goes as text, ``bytes`` as binary, a :class:`WebSocketMessage` as it is; a
        dict, a list or a typed value (msgspec Struct, pydantic model, dataclass) as JSON
        text, with the route's encoder when it declares an outgoing type.

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError: ``message`` is none of these.
        """
        await self._send_message(self.outgoing(message))

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as JSON text (``send_json("hi")`` sends ``"hi"``, with quotes).

        Raises:
            ConnectionClosed: the connection is closing or closed.
            TypeError, ValueError: ``value`` cannot be written as JSON (NaN, a set, ...).
        """
        text = encode_value(value)
        await self._send_message(
            new_message(MessageType.TEXT, dumps(value) if text is None else text)
        )

    def outgoing(self, item: object) -> WebSocketMessage:
        """The message that sending or yielding ``item`` sends (see :meth:`send`).

        Raises:
            TypeError: ``item`` cannot be sent.
        """
        if type(item) is WebSocketMessage:
            return item
        encode = self._encode
        if encode is None or isinstance(item, (WebSocketMessage, str, bytes, bytearray)):
            return coerce_message(item)
        return new_message(MessageType.TEXT, encode(item))

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


class _Reader(Generic[_T]):
    """``socket.json()`` and ``socket.typed(T)``: incoming messages through one decoder.

    Not a generator: a handler that caught :class:`~spikard.typed.InvalidMessage` may go on
    iterating the same reader.
    """

    __slots__ = ("_decode", "_socket")

    def __init__(self, socket: WebSocket[Any], decode: _Decode) -> None:
        self._socket = socket
        self._decode = decode

    def __aiter__(self) -> _Reader[_T]:
        return self

    async def __anext__(self) -> _T:
        return await self._socket._next(self._decode, True)  # type: ignore[no-any-return]
