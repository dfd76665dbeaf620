"""The per-message callback interface of a WebSocket, and the loop that drives it.

A :class:`Callbacks` object is told of each event of a connection's life: ``on_connect``
before the handshake is answered (raising refuses it with HTTP), ``on_message`` for every
message (its return value, when not None, is sent back), ``on_error`` when something fails,
and ``on_close`` once the connection has ended, before TCP is closed.
"""

from __future__ import annotations

import logging

from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage, coerce_message
from .http import WebSocketUpgrade
from .tasks import LightTaskGroup

__all__ = ["Callbacks", "run_callbacks"]

logger = logging.getLogger("spikard.websocket")


class Callbacks:
    """Base class of callback handlers; every method is a no-op until overridden."""

    async def on_connect(self) -> None:
        """Run before the 101; raise to refuse (HandshakeRejected chooses the status)."""

    async def on_message(self, message: WebSocketMessage) -> WebSocketMessage | None:
        """Handle one message; return a message to send back, or None."""
        return None

    async def on_close(self, frame: tuple[int, str] | None) -> None:
        """Run once the connection ended; ``frame`` is the peer's (code, reason), or None."""

    async def on_error(self, error: str) -> None:
        """Run when a callback raised or the connection failed."""


async def run_callbacks(upgrade: WebSocketUpgrade, callbacks: Callbacks) -> None:
    """Run a whole WebSocket session through ``callbacks``, from handshake to ``on_close``."""
    try:
        await callbacks.on_connect()
    except HandshakeRejected as rejection:
        await upgrade.reject(rejection)
        return
    except Exception as exc:
        logger.info("on_connect refused %s: %r", upgrade.offer.key.decode(), exc)
        await upgrade.reject(HandshakeRejected(403))
        return

    connection = await upgrade.accept()
    protocol = connection.protocol

    async def report(error: str) -> None:
        try:
            await callbacks.on_error(error)
        except Exception:
            logger.exception("on_error raised")

    async def deliver(message: WebSocketMessage) -> None:
        if protocol.local_close_started:
            return  # we are closing: messages that arrive now are discarded
        try:
            reply = await callbacks.on_message(message)
            if reply is not None:
                await connection.send(coerce_message(reply), more_coming=connection.more_input)
        except ConnectionClosed:
            return
        except Exception as exc:
            logger.exception("on_message raised")
            await report(f"{type(exc).__name__}: {exc}")
            await connection.close(CloseCode.INTERNAL_ERROR, "internal error")

    async def going_away() -> None:
        await connection.close(CloseCode.GOING_AWAY, "server shutting down")

    async with LightTaskGroup(upgrade.event_loop) as tasks:
        upgrade.on_going_away(going_away, tasks)
        await connection.run(deliver)
    await connection.close()  # after a protocol error: the error close, after the replies
    if protocol.failure is not None:
        code, reason = protocol.failure
        await report(f"connection failed with {code}: {reason}")
    try:
        await callbacks.on_close(protocol.peer_close)
    except Exception:
        logger.exception("on_close raised")
