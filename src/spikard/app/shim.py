"""The callback-style compatibility API: ``WebSocketResponse(on_message=..., ...)``."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..messages import WebSocketMessage
from ..streams.callbacks import Callbacks

__all__ = ["WebSocketResponse"]

_R = TypeVar("_R")

OnMessage = Callable[
    [WebSocketMessage], "Awaitable[WebSocketMessage | None] | WebSocketMessage | None"
]
OnConnect = Callable[[], "Awaitable[None] | None"]
OnClose = Callable[["tuple[int, str] | None"], "Awaitable[None] | None"]
OnError = Callable[[str], "Awaitable[None] | None"]


def _adapt(function: Callable[..., Any] | None) -> Callable[..., Awaitable[Any]] | None:
    """Wrap a sync or async callback as a coroutine function, deciding once."""
    if function is None:
        return None
    if inspect.iscoroutinefunction(function):
        return function

    async def call(*args: Any) -> Any:
        result = function(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    return call


class WebSocketResponse(Callbacks):
    """Callbacks for one WebSocket connection, returned by a handler that takes the request.

    Each callback may be a plain function or a coroutine function::

        @app.websocket("/echo")
        async def echo(request: Request) -> WebSocketResponse:
            async def on_message(msg: WebSocketMessage) -> WebSocketMessage | None:
                return msg  # None sends nothing
            return WebSocketResponse(on_message=on_message)

    Args:
        on_message: called with every incoming message; a returned message is sent back.
        on_connect: called before the handshake is answered; raising refuses the connection
            with HTTP 403 (or the status of a :class:`~spikard.errors.HandshakeRejected`).
        on_close: called once the connection ended, with the peer's ``(code, reason)`` or
            None when the peer sent no close frame; it has returned before TCP is closed.
        on_error: called with a description when ``on_message`` raised (the socket is then
            closed with 1011) or the connection failed (protocol error, timeout).
    """

    def __init__(
        self,
        *,
        on_message: OnMessage,
        on_connect: OnConnect | None = None,
        on_close: OnClose | None = None,
        on_error: OnError | None = None,
    ) -> None:
        if not callable(on_message):
            raise TypeError("WebSocketResponse needs a callable on_message")
        self.on_message_callback = on_message
        self.on_connect_callback = on_connect
        self.on_close_callback = on_close
        self.on_error_callback = on_error
        self._message = _adapt(on_message)
        self._connect = _adapt(on_connect)
        self._close = _adapt(on_close)
        self._error = _adapt(on_error)

    async def on_connect(self) -> None:  # noqa: D102
        if self._connect is not None:
            await self._connect()

    async def on_message(self, message: WebSocketMessage) -> WebSocketMessage | str | bytes | None:  # noqa: D102
        assert self._message is not None
        reply: WebSocketMessage | str | bytes | None = await self._message(message)
        return reply

    def message_callback(self) -> Callable[[WebSocketMessage], Awaitable[object]]:  # noqa: D102
        assert self._message is not None
        return self._message

    async def on_close(self, frame: tuple[int, str] | None) -> None:  # noqa: D102
        if self._close is not None:
            await self._close(frame)

    async def on_error(self, error: str) -> None:  # noqa: D102
        if self._error is not None:
            await self._error(error)

    def __repr__(self) -> str:
        set_ = [
            n
            for n in ("on_message", "on_connect", "on_close", "on_error")
            if getattr(self, f"{n}_callback") is not None
        ]
        return f"WebSocketResponse({', '.join(set_)})"
