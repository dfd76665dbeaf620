"""Turn a WebSocket handler into the session start the stream layer calls, decided once.

WebSocket handlers come in these shapes (all receive the :class:`~spikard.WebSocket`, or the
:class:`~spikard.Request` when their first parameter is annotated ``Request``):

- an async generator function: its items are sent (stream style);
- a function or coroutine function returning an async iterable, such as an aiostream pipe
  ``socket | pipe.map(f)``: its items are sent;
- a coroutine function that talks to the socket itself and returns None;
- a function returning :class:`~spikard.WebSocketResponse` (callback style).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import AsyncIterable, Callable
from typing import Any

from ..errors import RoutingError
from ..requests import Request
from ..streams.callbacks import Callbacks
from ..streams.runner import HandlerResult, SessionStart
from ..streams.socket import WebSocket

__all__ = ["adapt_websocket_handler"]


def _wants_request(function: Callable[..., Any]) -> bool:
    """True when the first parameter is annotated as Request (strings included)."""
    parameters = list(inspect.signature(function).parameters.values())
    if not parameters:
        raise RoutingError(f"WebSocket handler {function.__qualname__} must take one argument")
    annotation = parameters[0].annotation
    if annotation is inspect.Parameter.empty:
        return False
    if isinstance(annotation, str):
        try:
            hints = typing.get_type_hints(function)
        except Exception:
            return annotation.rsplit(".", 1)[-1] == "Request"
        annotation = hints.get(parameters[0].name, annotation)
    return isinstance(annotation, type) and issubclass(annotation, Request)


def _check_result(result: object, function: Callable[..., Any]) -> HandlerResult:
    if result is None or isinstance(result, (Callbacks, AsyncIterable)):
        return result
    raise TypeError(
        f"WebSocket handler {function.__qualname__} returned {type(result).__name__!r}; "
        "return an async iterable, a WebSocketResponse or None"
    )


def adapt_websocket_handler(function: Callable[..., Any]) -> SessionStart:
    """Return the session start for a WebSocket handler, picking its shape now."""
    if not callable(function):
        raise RoutingError(f"{function!r} is not callable")
    wants_request = _wants_request(function)
    if inspect.isasyncgenfunction(function):
        if wants_request:

            async def start_generator_with_request(socket: WebSocket) -> HandlerResult:
                return function(socket.request)  # type: ignore[no-any-return]

            return start_generator_with_request

        async def start_generator(socket: WebSocket) -> HandlerResult:
            return function(socket)  # type: ignore[no-any-return]

        return start_generator

    is_coroutine = inspect.iscoroutinefunction(function)

    async def start_call(socket: WebSocket) -> HandlerResult:
        result = function(socket.request if wants_request else socket)
        # An aiostream Stream is awaitable too (it yields its last item): keep iterables as is.
        if is_coroutine or (inspect.isawaitable(result) and not isinstance(result, AsyncIterable)):
            result = await result
        return _check_result(result, function)

    return start_call
