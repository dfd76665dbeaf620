"""Run one stream-handler session: the handler's output pumped to the socket, input fed in.

Theory of operation
-------------------
A session is one task group per connection (a :class:`~spikard.connection.tasks.LightTaskGroup`:
plain tasks on asyncio). Before the handshake is answered only the handler runs (in the
session's own task): it may look at the request and reject. The first read, send or yield
accepts; from then on the connection driver delivers each message into the socket's bounded
queue (:class:`~spikard.streams.queue.MessageQueue`): from the transport's callbacks on
asyncio (no task), from a reader task of the group elsewhere (trio, TLS).

- **Outbound**: the handler's async iterable is pulled one item at a time, and the next item
  is asked for only after the previous one was written to the socket, so a slow client slows
  the producer instead of growing a buffer.
- **Inbound**: when the handler lags and the queue is full, reads stop.
- **Peer gone**: when the connection ends, the socket's iterator ends (after the messages
  already queued). A handler that never read from the socket is cancelled at once; one that
  reads gets ``handler_grace`` seconds to finish what follows its loop, then is cancelled.
- **Ending**: a handler that finishes closes with 1000, one that yields
  ``WebSocketMessage.close(code, reason)`` with that code, one that raises with 1011 (and the
  error is logged), unless the exception carries its own ``close_code`` (a too-slow pub/sub
  subscriber: 1008, a broker outage: 1013). The session waits for the close handshake
  (bounded by ``close_timeout``) and returns; the HTTP layer then closes TCP, so cleanup has
  run before the client sees it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from ..connection.callbacks import Callbacks, run_callbacks
from ..connection.driver import WebSocketConnection
from ..connection.tasks import LightTaskGroup
from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, coerce_message, validate_close_code
from .socket import WebSocket

__all__ = ["HandlerResult", "SessionStart", "run_session"]

logger = logging.getLogger("spikard.websocket")

HandlerResult = AsyncIterable[Any] | Callbacks | None
"""What a handler gives the session: messages to send, callbacks, or nothing."""
SessionStart = Callable[[WebSocket], Awaitable[HandlerResult]]
"""Calls the user's handler with the socket; decided once per route (see ``app.adapters``)."""


class _Session:
    __slots__ = ("_grace_timer", "driving", "handler_done", "handler_scope", "socket", "task_group")

    def __init__(self, socket: WebSocket, task_group: LightTaskGroup) -> None:
        self.socket = socket
        self.task_group = task_group
        self.handler_scope = anyio.CancelScope()
        self.handler_done = False
        self.driving = False
        self._grace_timer: asyncio.TimerHandle | None = None
        socket._on_accept = self._on_accept

    def _on_accept(self, connection: WebSocketConnection) -> None:
        connection.on_input_ended = self._input_ended
        self.driving = True
        if not connection.push_to(self.socket._inbound, self._all_delivered):
            # No transport callbacks to read in (trio, TLS): a reader task. It has no
            # shielded section, so it needs no cancel scope of its own.
            self.task_group.start_soon_unshielded(
                self._drive, connection, name="spikard websocket reader"
            )
        self.socket._upgrade.on_going_away(self._going_away, self.task_group)

    async def _going_away(self) -> None:
        connection = self.socket._connection
        if connection is not None:
            await connection.close(CloseCode.GOING_AWAY, "server shutting down")

    async def _drive(self, connection: WebSocketConnection) -> None:
        try:
            await connection.run(self._deliver)
        finally:
            self._all_delivered()

    def _all_delivered(self) -> None:
        self.driving = False
        # Every message that arrived was delivered: now the handler's loop may end.
        self.socket._inbound.close()

    async def _deliver(self, message: WebSocketMessage) -> None:
        inbound = self.socket._inbound
        try:
            if not inbound.try_put(message):
                await inbound.put(message)  # full: this wait is the backpressure
        except anyio.ClosedResourceError:
            pass  # the handler is done: nobody will read it

    def _input_ended(self) -> None:
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
        grace = socket._upgrade.websocket_config.handler_grace
        loop = socket._upgrade.event_loop
        if loop is not None:
            # A loop timer: a deadline on the scope would look the loop up three times.
            if self._grace_timer is None:
                self._grace_timer = loop.call_later(grace, self.handler_scope.cancel)
            return
        scope = self.handler_scope
        scope.deadline = min(scope.deadline, anyio.current_time() + grace)

    async def run(self, start: SessionStart) -> None:
        socket = self.socket
        upgrade = socket._upgrade
        upgrade.watch_for_departure(self.handler_scope.cancel, self.task_group)
        code: int = CloseCode.NORMAL_CLOSURE
        reason = ""
        result: HandlerResult = None
        with self.handler_scope:
            try:
                result = await start(socket)
                if result is not None and not isinstance(result, Callbacks):
                    code, reason = await self._pump(result)
            except HandshakeRejected as rejection:
                if not upgrade.accepted and not upgrade.rejected:
                    await upgrade.reject(rejection)
                else:
                    logger.error("HandshakeRejected raised after the handshake was answered")
                    code, reason = CloseCode.INTERNAL_ERROR, "internal error"
            except ConnectionClosed:
                pass
            except Exception as exc:
                code, reason = _close_for(exc)
                if code == CloseCode.INTERNAL_ERROR:
                    logger.exception("WebSocket handler for %s raised", socket.request.path)
                else:
                    logger.info(
                        "WebSocket handler for %s ended with %d: %s", socket.request.path, code, exc
                    )
        self.handler_done = True
        if self._grace_timer is not None:
            self._grace_timer.cancel()
            self._grace_timer = None
        socket._inbound.discard()

        if upgrade.rejected or (upgrade.peer_gone and not upgrade.accepted):
            return
        if isinstance(result, Callbacks):
            if not upgrade.accepted:
                await run_callbacks(upgrade, result)
                return
            logger.error("a handler that returns a WebSocketResponse must not accept the socket")
            code, reason = CloseCode.INTERNAL_ERROR, "internal error"
        if not upgrade.accepted:
            await socket.accept()
        connection = socket._connection
        assert connection is not None
        await connection.close(code, reason)
        await connection.closed.wait()

    async def _pump(self, source: AsyncIterable[Any], streamed: bool = False) -> tuple[int, str]:
        """Send every item of ``source``; a close message ends the session with its code."""
        streamer = None if streamed else getattr(source, "stream", None)
        if callable(streamer):  # an aiostream Stream: iterate it inside its own context
            async with streamer() as streaming:
                return await self._pump(streaming, streamed=True)
        socket = self.socket
        iterator = aiter(source)
        try:
            async for item in iterator:
                message = coerce_message(item)
                if message.code is not None:
                    return message.code, message.reason or ""
                await socket._send_message(message)
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


async def run_session(socket: WebSocket, start: SessionStart) -> None:
    """Run a WebSocket session for ``socket`` from handshake to the end of the close handshake."""
    try:
        async with LightTaskGroup(socket._upgrade.event_loop) as tasks:
            session = _Session(socket, tasks)
            await session.run(start)
            if session.driving or not socket._upgrade.accepted:
                # Stop what is left: a reader stuck writing to a peer that stopped reading,
                # a departure watcher (trio, TLS) of a socket that was never accepted.
                tasks.cancel()
    finally:
        socket._inbound.discard()
        # Break the reference cycles between the socket, the session and the connection,
        # so that reference counting frees them now rather than the cyclic collector later.
        socket._on_accept = None
        socket._upgrade.forget_going_away()
        if socket._connection is not None:
            socket._connection.stop_pushing()
            socket._connection.on_input_ended = None
