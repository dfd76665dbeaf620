"""Run one stream-handler session: the handler's output pumped to the socket, input fed in.

Theory of operation
-------------------
A session runs in the connection's own task: before the handshake is answered only the
handler runs, and it may look at the request and reject. The first read, send or yield
accepts; from then on the connection (whatever drives it) fills the socket's bounded queue on
its own. The session talks to the connection through the contract only
(:class:`~spikard.connection.contract.WebSocketConnection`).

- **Outbound**: the handler's async iterable is pulled one item at a time, and the next item
  is asked for only after the previous one was handed to the connection (which waits for
  the transport to drain), so a slow client slows the producer instead of growing a buffer.
- **Inbound**: when the handler lags and the queue is full, the connection stops reading.
- **Peer gone**: when the input ends (``on_ended``), the socket's iterator ends after the
  messages already queued. A handler that never read from the socket and is not in a read,
  a send or the accept is cancelled at once; any other gets ``handler_grace`` seconds to
  finish what follows its loop, then is cancelled.
- **Ending**: a handler that finishes closes with 1000, one that yields
  ``WebSocketMessage.close(code, reason)`` with that code, one that raises with 1011 (and the
  error is logged), unless the exception carries its own ``close_code`` (a too-slow pub/sub
  subscriber: 1008, a broker outage: 1013). The session then waits for the close handshake
  (bounded by ``close_timeout``) and returns; the HTTP layer then closes TCP, so cleanup has
  run before the client sees it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import anyio

from ..connection.contract import WebSocketConnection
from ..connection.state import ConnectionState
from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, validate_close_code
from ..typed.encoding import coerce_message
from .callbacks import Callbacks, run_callbacks
from .socket import WebSocket

__all__ = ["HandlerResult", "HandshakeErrorHook", "SessionStart", "run_session"]

logger = logging.getLogger("spikard.websocket")

HandlerResult = AsyncIterable[Any] | Callbacks | None
"""What a handler gives the session: messages to send, callbacks, or nothing."""
SessionStart = Callable[[WebSocket], Awaitable[HandlerResult]]
"""Calls the user's handler with the socket; decided once per route (``app.websocket_adapter``)."""
HandshakeErrorHook = Callable[[Exception], Awaitable[HandshakeRejected | None]]
"""Turns an exception raised before the handshake was answered into a rejection, or None."""


class _Session:
    __slots__ = (
        "answer_deadline",
        "callbacks_scope",
        "connection",
        "grace_deadline",
        "handler_done",
        "handler_scope",
        "route",
        "socket",
    )

    def __init__(self, socket: WebSocket, route: str) -> None:
        self.socket = socket
        self.connection = socket.connection
        self.route = route
        self.handler_scope = anyio.CancelScope()
        self.callbacks_scope: anyio.CancelScope | None = None
        self.handler_done = False
        self.answer_deadline = math.inf
        """When an unanswered handshake is given up (``accept_timeout``); inf once answered."""
        self.grace_deadline = math.inf
        """When a handler still running after the peer left is cancelled (``handler_grace``)."""

    def _bound_the_handshake(self) -> None:
        """Give the handler ``accept_timeout`` to accept or refuse (drivers that report it)."""
        connection = self.connection
        if not connection.supports_answer_hook or connection.accepted or connection.rejected:
            return
        self.answer_deadline = anyio.current_time() + connection.config.accept_timeout
        self.handler_scope.deadline = self.answer_deadline
        connection.on_answered = self._answered

    def _answered(self) -> None:
        """The handshake was answered in time: only the grace deadline (if any) remains."""
        self.answer_deadline = math.inf
        self.handler_scope.deadline = self.grace_deadline
        if self.callbacks_scope is not None:
            self.callbacks_scope.deadline = math.inf

    def _handshake_timed_out(self) -> bool:
        connection = self.connection
        return (
            not connection.accepted
            and not connection.rejected
            and anyio.current_time() >= self.answer_deadline
        )

    async def _refuse_unanswered(self) -> None:
        """``accept_timeout`` passed with the handshake unanswered: 500, and say why once."""
        logger.warning(
            "WebSocket handler for %s neither accepted nor refused the handshake within "
            "accept_timeout (%.3g s); answered 500. Call `await socket.accept()` before "
            "waiting on other events (or raise WebSocketConfig.accept_timeout)",
            self.route,
            self.connection.config.accept_timeout,
        )
        self.connection.on_answered = None
        await self.connection.reject(500, "the WebSocket handler did not answer the handshake")

    def _input_ended(self, now: float) -> None:
        """The peer is gone (or broke the protocol): wind the handler down."""
        socket = self.socket
        if self.handler_done:
            return
        busy_with_socket = socket.waiting_readers or socket.sends_in_progress
        if not busy_with_socket and not socket._read_ever:
            # It never reads and is busy elsewhere (a timer, a subscription): nothing more
            # for it to do. A handler in the middle of a send or read sees the end there.
            self.handler_scope.cancel()
            return
        self.grace_deadline = now + self.connection.config.handler_grace
        scope = self.handler_scope
        scope.deadline = min(scope.deadline, self.grace_deadline)

    async def run(self, start: SessionStart, on_handshake_error: HandshakeErrorHook | None) -> None:
        socket = self.socket
        connection = self.connection
        connection.on_ended = self._input_ended
        code: int = CloseCode.NORMAL_CLOSURE
        reason = ""
        result: HandlerResult = None
        self._bound_the_handshake()
        with self.handler_scope:
            if connection.state is ConnectionState.CLOSED:
                self.handler_scope.cancel()  # the client left before the handler started
            try:
                result = await start(socket)
                if result is not None and not isinstance(result, Callbacks):
                    code, reason = await self._pump(result)
            except HandshakeRejected as rejection:
                if not connection.accepted and not connection.rejected:
                    await connection.reject(
                        rejection.status_code, rejection.body, rejection.headers
                    )
                else:
                    logger.error("HandshakeRejected raised after the handshake was answered")
                    code, reason = CloseCode.INTERNAL_ERROR, "internal error"
            except ConnectionClosed:
                pass
            except Exception as exc:
                if not await self._reject_for(exc, on_handshake_error):
                    code, reason = _close_for(exc)
                    if code == CloseCode.INTERNAL_ERROR:
                        logger.exception("WebSocket handler for %s raised", socket.request.path)
                    else:
                        logger.info(
                            "WebSocket handler for %s ended with %d: %s",
                            socket.request.path,
                            code,
                            exc,
                        )
        self.handler_done = True
        connection.on_ended = None

        if self._handshake_timed_out():
            await self._refuse_unanswered()
            return
        if connection.rejected:
            return
        if isinstance(result, Callbacks):
            if not connection.accepted:
                with anyio.CancelScope(deadline=self.answer_deadline) as self.callbacks_scope:
                    await run_callbacks(connection, result, on_handshake_error)
                if self._handshake_timed_out():  # on_connect took too long
                    await self._refuse_unanswered()
                return
            logger.error("a handler that returns a WebSocketResponse must not accept the socket")
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
        if not connection.accepted:
            await socket.accept()
        connection.discard_incoming()  # nobody reads now: the peer's close must get through
        await connection.close(code, reason)
        await connection.wait_closed()

    async def _reject_for(self, error: Exception, hook: HandshakeErrorHook | None) -> bool:
        """Refuse the handshake as ``hook`` says for ``error``; True when it did."""
        connection = self.connection
        if hook is None or connection.accepted or connection.rejected:
            return False
        rejection = await hook(error)
        if rejection is None:
            return False
        await connection.reject(rejection.status_code, rejection.body, rejection.headers)
        return True

    async def _pump(self, source: AsyncIterable[Any], streamed: bool = False) -> tuple[int, str]:
        """Send every item of ``source``; a close message ends the session with its code."""
        streamer = None if streamed else getattr(source, "stream", None)
        if callable(streamer):  # an aiostream Stream: iterate it inside its own context
            async with streamer() as streaming:
                return await self._pump(streaming, streamed=True)
        socket = self.socket
        iterator = aiter(source)
        try:
            send = socket._send_message
            async for item in iterator:
                message = item if type(item) is WebSocketMessage else coerce_message(item)
                if message.code is not None:
                    return message.code, message.reason or ""
                await send(message)
            return CloseCode.NORMAL_CLOSURE, ""
        finally:
            aclose = None if streamed else getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()


def _close_for(error: Exception) -> tuple[int, str]:
    """Return the close code for a handler's exception.

    An exception with a valid ``close_code`` of its own (a slow pub/sub subscriber: 1008, a
    broker outage: 1013) closes with it; anything else with 1011.
    """
    code = getattr(error, "close_code", None)
    if isinstance(code, int) and code != CloseCode.INTERNAL_ERROR:
        try:
            validate_close_code(code)
        except ValueError:
            pass
        else:
            return code, str(error)[:100]
    return CloseCode.INTERNAL_ERROR, "internal error"


async def run_session(
    connection: WebSocketConnection,
    start: SessionStart,
    on_handshake_error: HandshakeErrorHook | None = None,
    route: str | None = None,
) -> None:
    """Run a WebSocket session on ``connection`` from handshake to the end of the close.

    ``on_handshake_error(exc)`` is asked about an exception the handler raised before the
    handshake was answered; a :class:`~spikard.errors.HandshakeRejected` it returns is the
    answer (None: the default, a 1011 close after accepting, or 403 from ``on_connect``).
    """
    session = _Session(WebSocket(connection), route or connection.request.path)
    await session.run(start, on_handshake_error)
