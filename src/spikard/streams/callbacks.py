"""The per-message callback interface of a WebSocket, and the loop that drives it.

A :class:`Callbacks` object is told of each event of a connection's life: ``on_connect``
before the handshake is answered (raising refuses it with HTTP), ``on_message`` for every
message (its return value, when not None, is sent back), ``on_error`` when something fails,
and ``on_close`` once the connection has ended, before TCP is closed. The loop speaks to the
connection through the connection contract only, like the stream layer.

A :class:`Callbacks` with a :attr:`~Callbacks.decode` gets each message decoded and validated
before ``on_message`` (a typed ``WebSocketResponse``); one that fails meets
:attr:`~Callbacks.on_invalid` as in the stream layer (``"raise"`` hands it to ``on_error``).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..connection.contract import WebSocketConnection
from ..connection.state import ConnectionState
from ..errors import ConnectionClosed, HandshakeRejected
from ..messages import CloseCode, MessageType, WebSocketMessage, new_message
from ..typed.encoding import coerce_message
from ..typed.errors import InvalidMessage
from ..typed.policy import OnInvalid

__all__ = ["Callbacks", "run_callbacks"]

logger = logging.getLogger("spikard.websocket")


class Callbacks:
    """Base class of callback handlers; every method is a no-op until overridden."""

    decode: Callable[[str | bytes], Any] | None = None
    """Decodes each message before ``on_message``; None: raw messages."""
    encode: Callable[[Any], str] | None = None
    """Encodes replies that are not messages, ``str`` or ``bytes``; None: by their type."""
    on_invalid: OnInvalid = "close"
    """What a message that fails :attr:`decode` gets (:data:`~spikard.typed.OnInvalid`)."""
    subprotocols: tuple[str, ...] = ()
    """Offered in this order of preference: the accept picks the client's first match."""

    def use_route_declarations(
        self,
        decode: Callable[[str | bytes], Any] | None,
        encode: Callable[[Any], str] | None,
        on_invalid: OnInvalid,
        subprotocols: tuple[str, ...],
    ) -> None:
        """Take what the route declares where this object declares nothing of its own.

        Called once per connection, before the session, with what
        ``@app.websocket(..., receive=..., subprotocols=...)`` declares.
        """
        own = getattr(self, "__dict__", {})
        if self.decode is None:
            self.decode = decode
        if self.encode is None:
            self.encode = encode
        if "on_invalid" not in own:
            self.on_invalid = on_invalid
        if not self.subprotocols:
            self.subprotocols = subprotocols

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


def _reply_message(reply: object, encode: Callable[[Any], str] | None) -> WebSocketMessage:
    if encode is not None and not isinstance(reply, (WebSocketMessage, str, bytes, bytearray)):
        return new_message(MessageType.TEXT, encode(reply))
    try:
        return coerce_message(reply)
    except TypeError:
        raise TypeError(
            f"on_message returned {type(reply).__name__!r}; return WebSocketMessage, str, "
            "bytes, a dict or list (JSON), a typed value or None"
        ) from None


def _choose_subprotocol(connection: WebSocketConnection, preferred: tuple[str, ...]) -> str | None:
    return next((offer for offer in connection.subprotocols if offer in preferred), None)


async def _invalid(
    connection: WebSocketConnection,
    callbacks: Callbacks,
    error: InvalidMessage,
    report: Callable[[str], Awaitable[None]],
    first: bool,
) -> None:
    """Apply ``callbacks.on_invalid`` to a message that failed ``callbacks.decode``."""
    policy = callbacks.on_invalid
    (logger.info if first else logger.debug)(
        "invalid message on %s: %r", connection.request.path, str(error)
    )
    reply: object = None
    if policy == "reply":
        reply = error.reply()
    elif callable(policy):
        reply = policy(error)
        if inspect.isawaitable(reply):
            reply = await reply
    else:  # "close", or "raise": handed to on_error, then closed the same way
        if policy == "raise":
            await report(f"InvalidMessage: {error}")
        await connection.close(error.close_code, str(error))
        return
    if reply is not None:
        await connection.send(_reply_message(reply, callbacks.encode))


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

    await connection.accept(
        _choose_subprotocol(connection, callbacks.subprotocols) if callbacks.subprotocols else None
    )

    async def report(error: str) -> None:
        try:
            await callbacks.on_error(error)
        except Exception:
            logger.exception("on_error raised")

    receive_nowait = connection.receive_nowait
    send = connection.send
    on_message = callbacks.message_callback()
    decode = callbacks.decode
    invalid_seen = False
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
            if decode is None:
                reply = await on_message(message)
            else:
                try:
                    value = decode(message.data)
                except InvalidMessage as error:
                    await _invalid(connection, callbacks, error, report, not invalid_seen)
                    invalid_seen = True
                    continue
                reply = await on_message(value)  # a typed on_message
            if reply is not None:
                await send(
                    reply
                    if type(reply) is WebSocketMessage
                    else _reply_message(reply, callbacks.encode)
                )
        except ConnectionClosed:
            continue
        except InvalidMessage as exc:  # raised on purpose: 1007, like a stream handler's
            logger.info("on_message ended %s with 1007: %s", connection.request.path, exc)
            await connection.close(exc.close_code, str(exc))
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
