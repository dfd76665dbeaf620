"""The per-message callback interface of a WebSocket, and the loop that drives it.

A :class:`Callbacks` object is told of each event of a connection's life: ``on_connect``
before the handshake is answered (raising refuses it with HTTP), ``on_message`` for every
message (its return value, when not None, is sent back), ``on_error`` when something fails,
and ``on_close`` once the connection has ended, before TCP is closed. The loop speaks to the
connection through the connection contract only, like the stream layer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ..connection.contract import WebSocketConnection
from ..connection.state import ConnectionState
from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, coerce_message

__all__ = ["Callbacks", "run_callbacks"]

logger = logging.getLogger("spikard.websocket")


class Callbacks:
    """Base class of callback handlers; every method is a no-op until overridden."""

    async def on_connect(self) -> None:
        """Run before the 101; raise to refuse (HandshakeRejected chooses the status)."""

    async def on_message(self, message: WebSocketMessage) -> WebSocketMessage | str | bytes | None:
        """Handle one message; return a message (or ``str``/``bytes``) to send back, or None."""
        return None

    def message_callback(self) -> Callable[[WebSocketMessage], Awaitable[object]]:
        """The coroutine function called per message: :meth:`on_message` unless overridden.

        The loop calls it as is, so a subclass may hand out the user's function directly and
        spare each message one call.
        """
        return self.on_message

    async def on_close(self, frame: tuple[int, str] | None) -> None:
        """Run once the connection ended; ``frame`` is the peer's (code, reason), or None."""

    async def on_error(self, error: str) -> None:
        """Run when a callback raised or the connection failed."""


def _reply_message(reply: object) -> WebSocketMessage:
    if isinstance(reply, (WebSocketMessage, str, bytes)):
        return coerce_message(reply)
    raise TypeError(
        f"on_message returned {type(reply).__name__!r}; return WebSocketMessage, str, bytes or None"
    )


async def run_callbacks(
    connection: WebSocketConnection,
    callbacks: Callbacks,
    on_handshake_error: Callable[[Exception], Awaitable[HandshakeRejected | None]] | None = None,
) -> None:
    """Run a whole WebSocket session through ``callbacks``, from handshake to ``on_close``.

    An exception from ``on_connect`` refuses the handshake: with the rejection
    ``on_handshake_error(exc)`` returns, else with 403 (logged at WARNING).
    """
    try:
        await callbacks.on_connect()
    except HandshakeRejected as rejection:
        await connection.reject(rejection.status_code, rejection.body, rejection.headers)
        return
    except Exception as exc:
        mapped = None if on_handshake_error is None else await on_handshake_error(exc)
        if mapped is not None:
            await connection.reject(mapped.status_code, mapped.body, mapped.headers)
            return
        logger.warning(
            "on_connect refused %s with 403: %s: %s",
            connection.request.path,
            type(exc).__name__,
            exc,
        )
        logger.debug("on_connect raised", exc_info=True)
        await connection.reject(403)
        return

    await connection.accept()

    async def report(error: str) -> None:
        try:
            await callbacks.on_error(error)
        except Exception:
            logger.exception("on_error raised")

    receive_nowait = connection.receive_nowait
    send = connection.send
    on_message = callbacks.message_callback()
    while True:
        message = receive_nowait()  # no wait while messages are queued: the common case
        if message is None:
            try:
                message = await connection.receive()
            except ConnectionClosed:
                break
        if connection.state is ConnectionState.CLOSING:
            continue  # we are closing: messages that arrive now are discarded
        try:
            reply = await on_message(message)
            if reply is not None:
                await send(reply if type(reply) is WebSocketMessage else _reply_message(reply))
        except ConnectionClosed:
            continue
        except Exception as exc:
            logger.exception("on_message raised")
            await report(f"{type(exc).__name__}: {exc}")
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error")
    await connection.close()  # after a protocol error: the error close, after the replies
    failure = connection.failure
    if failure is not None:
        code, reason = failure
        await report(f"connection failed with {code}: {reason}")
    try:
        await callbacks.on_close(connection.peer_close)
    except Exception:
        logger.exception("on_close raised")
