"""Middleware and exception handlers: what wraps every request's handler.

A middleware is ``async def middleware(request, call_next) -> Response``: it may answer the
request itself, or ``await call_next(request)`` and return (or change) that response. The
first registered is the outermost. Exception handlers map an exception type to
``handler(request, exc)`` (sync or async, returning anything a route may return); the most
specific registered type of a raised exception wins, by its method resolution order.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import HTTPException, RequestValidationError, RoutingError
from ..requests import Request
from ..responses import JSONResponse, PlainTextResponse, Response, to_response

__all__ = [
    "CallNext",
    "ExceptionHandler",
    "ExceptionHandlers",
    "Middleware",
    "check_middleware",
    "compose",
]

logger = logging.getLogger("spikard.http")

CallNext = Callable[[Request], Awaitable[Response]]
"""What a middleware calls to run the rest of the chain (and the route's handler)."""
Middleware = Callable[[Request, CallNext], Awaitable[Response]]
"""``async def middleware(request, call_next) -> Response``."""
ExceptionHandler = Callable[[Request, Any], Any]
"""``handler(request, exc)``, sync or async, returning a Response (or str, dict, ...)."""


def check_middleware(middleware: object) -> Middleware:
    """Check, at registration, that ``middleware`` can be called as ``(request, call_next)``.

    Raises:
        RoutingError: it is not callable, cannot take two positional arguments, or is not a
            coroutine function (nor an object whose ``__call__`` is one).
    """
    if not callable(middleware):
        raise RoutingError(f"middleware {middleware!r} is not callable")
    function = middleware if inspect.isroutine(middleware) else type(middleware).__call__
    name = getattr(middleware, "__qualname__", type(middleware).__qualname__)
    if not inspect.iscoroutinefunction(function):
        raise RoutingError(
            f"middleware {name} must be an async function: async def {name}(request, call_next)"
        )
    try:
        inspect.signature(middleware).bind(None, None)
    except TypeError:
        raise RoutingError(
            f"middleware {name} must take two arguments: (request, call_next)"
        ) from None
    return middleware


def compose(middleware: Sequence[Middleware], endpoint: CallNext) -> CallNext:
    """Return ``endpoint`` wrapped by ``middleware``, the first one outermost."""
    handler = endpoint
    for layer in reversed(middleware):
        handler = _link(layer, handler)
    return handler


def _link(layer: Middleware, call_next: CallNext) -> CallNext:
    async def call(request: Request) -> Response:
        response = await layer(request, call_next)
        if not isinstance(response, Response):
            raise TypeError(
                f"middleware {getattr(layer, '__qualname__', layer)!r} returned "
                f"{type(response).__name__!r}, not a Response"
            )
        return response

    return call


class ExceptionHandlers:
    """The registered exception handlers, and the answer to an exception without one."""

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[type[BaseException], ExceptionHandler] = {}

    def __bool__(self) -> bool:
        return bool(self._handlers)

    def add(self, exc_class: type[Exception], handler: ExceptionHandler) -> None:
        """Register ``handler`` for ``exc_class`` and its subclasses.

        Raises:
            RoutingError: ``exc_class`` is not an Exception subclass, or ``handler`` is not
                callable with ``(request, exc)``.
        """
        if not (isinstance(exc_class, type) and issubclass(exc_class, Exception)):
            raise RoutingError(f"exception_handler needs an Exception subclass, not {exc_class!r}")
        if not callable(handler):
            raise RoutingError(f"exception handler {handler!r} is not callable")
        try:
            inspect.signature(handler).bind(None, None)
        except TypeError:
            raise RoutingError(
                f"exception handler {getattr(handler, '__qualname__', handler)} must take "
                "two arguments: (request, exc)"
            ) from None
        self._handlers[exc_class] = handler

    def find(self, exc: BaseException) -> ExceptionHandler | None:
        """The handler for the most specific registered type of ``exc``, if any."""
        if not self._handlers:
            return None
        for cls in type(exc).__mro__:
            handler = self._handlers.get(cls)
            if handler is not None:
                return handler
        return None

    async def respond(self, request: Request, exc: Exception) -> Response:
        """The response to ``exc``: its handler's, an HTTPException's own, else a logged 500."""
        handler = self.find(exc)
        if handler is not None:
            try:
                result = handler(request, exc)
                if inspect.isawaitable(result):
                    result = await result
                return to_response(result)
            except Exception:
                logger.exception(
                    "the exception handler for %s raised (request %s %s)",
                    type(exc).__name__,
                    request.method,
                    request.path,
                )
                return PlainTextResponse("Internal Server Error", 500)
        if isinstance(exc, RequestValidationError):
            return JSONResponse({"detail": exc.errors}, 422, exc.headers)
        if isinstance(exc, HTTPException):
            return PlainTextResponse(exc.detail, exc.status_code, exc.headers)
        logger.error("HTTP handler for %s %s raised", request.method, request.path, exc_info=exc)
        return PlainTextResponse("Internal Server Error", 500)
