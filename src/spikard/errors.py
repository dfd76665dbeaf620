"""The spikard error tree; each error knows the HTTP status or close code it answers with.

::

    SpikardError
    ├── HTTPException(status_code, detail)          an HTTP route answers with an error status
    │   ├── InvalidBody (also a ValueError)          ... 400: the body is not what was asked
    │   ├── ClientDisconnected                       ... 400: the client left mid-body
    │   ├── BodyTimeout                              ... 408: the body stopped arriving
    │   ├── ContentTooLarge                          ... 413: the body is over max_body_size
    │   └── RequestValidationError(errors)           ... 422: parameters or body fail their types
    ├── HandshakeRejected(status_code, body)         a WebSocket handshake answered with HTTP
    ├── ConnectionClosed(code, reason)               the WebSocket is closed
    │   ├── ConnectionClosedOK                       ... after a close handshake
    │   └── ConnectionClosedError                    ... after a failure (1006, 1002, 1009, ...)
    ├── ProtocolError                                the peer broke HTTP or WebSocket rules
    └── RoutingError                                 a route table mistake, raised at startup
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

__all__ = [
    "BodyTimeout",
    "ClientDisconnected",
    "ConnectionClosed",
    "ConnectionClosedError",
    "ConnectionClosedOK",
    "ContentTooLarge",
    "HTTPException",
    "HandshakeRejected",
    "InvalidBody",
    "ProtocolError",
    "RequestValidationError",
    "RoutingError",
    "SpikardError",
]


class SpikardError(Exception):
    """Base class of every error spikard raises on purpose."""


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


class HTTPException(SpikardError):
    """Raise from an HTTP route to answer with ``status_code`` and ``detail`` as the body."""

    def __init__(
        self,
        status_code: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status_code = status_code
        self.detail = _phrase(status_code) if detail is None else detail
        self.headers = dict(headers or {})
        super().__init__(f"{status_code}: {self.detail}")


class InvalidBody(HTTPException, ValueError):
    """The request body cannot be read as asked (``await request.json()`` on bad JSON).

    Uncaught, it answers 400 with ``detail``; it is a ``ValueError`` too, so handlers that
    catch that go on working.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail)


class RequestValidationError(HTTPException):
    """Query parameters or a JSON body did not match the types the route declares.

    Uncaught, it answers 422 with ``{"detail": errors}``, each error
    ``{"loc": ["query", "limit"], "msg": "Input should be a valid integer", "type": "int_parsing"}``
    (``loc`` starts with ``"query"``, ``"path"`` or ``"body"``).
    """

    def __init__(self, errors: Sequence[Mapping[str, Any]]) -> None:
        self.errors: list[dict[str, Any]] = [dict(error) for error in errors]
        super().__init__(422, _summary(self.errors))


def _summary(errors: list[dict[str, Any]]) -> str:
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


class ContentTooLarge(HTTPException):
    """The request body is larger than the request's ``max_body_size``.

    Raised by the first read when ``Content-Length`` announces too much (nothing is read),
    or by the read that takes a chunked body past the limit. Uncaught, it answers
    ``413 Content Too Large``; the connection closes after the response either way.

    Attributes:
        limit: the ``max_body_size`` that was exceeded, in bytes.
    """

    def __init__(self, limit: int, detail: str | None = None) -> None:
        self.limit = limit
        super().__init__(413, detail or f"Content Too Large: the limit is {limit} bytes")


class BodyTimeout(HTTPException):
    """The request body made no progress for ``HTTPConfig.body_timeout`` seconds.

    Uncaught, it answers ``408 Request Timeout`` (when no response was started; a streamed
    response in progress is cut off instead); the connection closes either way.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(408, f"Request Timeout: no request body for {timeout:g} s")


class ClientDisconnected(HTTPException):
    """The client closed the connection before its request body ended.

    Raised by ``request.stream()``, ``body()``, ``form()``, ... Uncaught, it answers 400, which
    a client that only half-closed its side still reads; one that left reads nothing, and the
    connection ends without further logging.
    """

    def __init__(self, detail: str = "Bad Request: the request body ended early") -> None:
        super().__init__(400, detail)


class HandshakeRejected(SpikardError):
    """Raise before a WebSocket is accepted to answer the handshake with an HTTP response.

    Raised from ``on_connect`` of a callback handler, or from a stream handler before it first
    reads, sends or yields. The client sees ``status_code`` with ``body`` and ``headers``.
    """

    def __init__(
        self,
        status_code: int = 403,
        body: str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if not 400 <= status_code <= 599:
            raise ValueError("a rejected handshake needs a 4xx or 5xx status")
        self.status_code = status_code
        self.body = _phrase(status_code) if body is None else body
        self.headers = dict(headers or {})
        super().__init__(f"handshake rejected with HTTP {status_code}")


class ConnectionClosed(SpikardError):
    """The WebSocket is closed; ``code`` and ``reason`` say how it ended."""

    def __init__(self, code: int, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"WebSocket closed with code {code}" + (f": {reason}" if reason else ""))


class ConnectionClosedOK(ConnectionClosed):
    """The WebSocket was closed by a completed close handshake."""


class ConnectionClosedError(ConnectionClosed):
    """The WebSocket failed: no close frame (1006), a protocol error, a timeout, ..."""


class ProtocolError(SpikardError):
    """The peer broke the rules of HTTP/1.1 or RFC 6455.

    Attributes:
        status_hint: the HTTP status to answer with before the handshake.
        close_code: the WebSocket close code to answer with after it.
    """

    def __init__(self, message: str, *, status_hint: int = 400, close_code: int = 1002) -> None:
        self.status_hint = status_hint
        self.close_code = close_code
        super().__init__(message)


class RoutingError(SpikardError):
    """A route was declared wrongly (bad path template, duplicate parameter, ...)."""
