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
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import anyio

from ..connection.contract import WebSocketConnection
from ..connection.state import ConnectionState
from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, coerce_message, validate_close_code
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
    __slots__ = ("connection", "handler_done", "handler_scope", "socket")

    def __init__(self, socket: WebSocket) -> None:
        self.socket = socket
        self.connection = socket.connection
        self.handler_scope = anyio.CancelScope()
        self.handler_done = False

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
        scope = self.handler_scope
        scope.deadline = min(scope.deadline, now + self.connection.config.handler_grace)

    async def run(self, start: SessionStart, on_handshake_error: HandshakeErrorHook | None) -> None:
        socket = self.socket
        connection = self.connection
        connection.on_ended = self._input_ended
        code: int = CloseCode.NORMAL_CLOSURE
        reason = ""
        result: HandlerResult = None
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

        if connection.rejected:
            return
        if isinstance(result, Callbacks):
            if not connection.accepted:
                await run_callbacks(connection, result, on_handshake_error)
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
) -> None:
    """Run a WebSocket session on ``connection`` from handshake to the end of the close.

    ``on_handshake_error(exc)`` is asked about an exception the handler raised before the
    handshake was answered; a :class:`~spikard.errors.HandshakeRejected` it returns is the
    answer (None: the default, a 1011 close after accepting, or 403 from ``on_connect``).
    """
    await _Session(WebSocket(connection)).run(start, on_handshake_error)
