"""The callback-style compatibility API: ``WebSocketResponse(on_message=..., ...)``.

``on_message`` may take typed messages: ``WebSocketResponse(on_message=f, receive=ChatIn)``,
or an annotation, ``async def f(message: ChatIn) -> ChatOut | None``, which is read once per
function (its code object), not per connection.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from types import CodeType
from typing import Any, Final, TypeVar

from ..messages import WebSocketMessage
from ..streams.callbacks import Callbacks
from ..typed.codecs import codec_for
from ..typed.declared import declared, resolved_hints
from ..typed.families import union_members
from ..typed.policy import OnInvalid, check_on_invalid

__all__ = ["WebSocketResponse"]

_R = TypeVar("_R")

OnMessage = Callable[
    [WebSocketMessage], "Awaitable[WebSocketMessage | None] | WebSocketMessage | None"
]
OnConnect = Callable[[], "Awaitable[None] | None"]
OnClose = Callable[["tuple[int, str] | None"], "Awaitable[None] | None"]
OnError = Callable[[str], "Awaitable[None] | None"]


_CACHE_LIMIT: Final = 1024
_declared_by_code: dict[CodeType, tuple[Any, Any]] = {}


def _code_of(function: Callable[..., Any]) -> CodeType | None:
    target = getattr(inspect.unwrap(function), "__func__", function)
    code = getattr(target, "__code__", None)
    return code if isinstance(code, CodeType) else None


def _on_message_types(function: Callable[..., Any]) -> tuple[Any, Any]:
    """What ``on_message`` declares: (its message parameter's type, its reply type)."""
    code = _code_of(function)
    if code is not None and code in _declared_by_code:
        return _declared_by_code[code]
    try:
        parameters = [
            p
            for p in inspect.signature(function).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        parameters = []
    hints = resolved_hints(function) if parameters else {}
    receive = declared(hints.get(parameters[0].name)) if parameters else None
    reply = hints.get("return")
    members = union_members(reply) if reply is not None else None
    if members is not None:  # ChatOut | None: the reply type is ChatOut
        kept = [m for m in members if m is not type(None)]
        reply = kept[0] if len(kept) == 1 else reply
    found = (receive, declared(reply))
    if code is not None and len(_declared_by_code) < _CACHE_LIMIT:
        _declared_by_code[code] = found
    return found


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
        receive: the type ``on_message`` receives (validated from JSON); by default the
            annotation of its message parameter, else the route's ``receive=``, else raw
            :class:`~spikard.WebSocketMessage` values.
        send: the type of its replies, encoded with that type's encoder (by default its
            return annotation); other replies are encoded by their own type.
        on_invalid: what a message that fails ``receive`` gets (default: the route's, which
            defaults to ``"close"``, 1007); ``"raise"`` hands it to ``on_error`` and
            closes with 1007. See :data:`~spikard.typed.OnInvalid`.

    Raises:
        MissingExtra: ``receive`` or ``send`` needs a library that is not installed.
    """

    def __init__(
        self,
        *,
        on_message: OnMessage | Callable[[Any], Any],
        on_connect: OnConnect | None = None,
        on_close: OnClose | None = None,
        on_error: OnError | None = None,
        receive: Any = None,
        send: Any = None,
        on_invalid: OnInvalid | None = None,
    ) -> None:
        if not callable(on_message):
            raise TypeError("WebSocketResponse needs a callable on_message")
        if receive is None or send is None:
            annotated_receive, annotated_send = _on_message_types(on_message)
            receive = annotated_receive if receive is None else receive
            send = annotated_send if send is None else send
        if receive is not None:
            self.decode = codec_for(receive).decode
        if send is not None:
            self.encode = codec_for(send).encode
        if on_invalid is not None:
            self.on_invalid = check_on_invalid(on_invalid)
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
