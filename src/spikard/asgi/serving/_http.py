"""One HTTP request served by an ASGI application: ``receive``/``send`` over a spikard Request.

Theory of operation. The application runs in its own task (the adapter's); the server's
request handler waits in :meth:`HTTPExchange.response` until the application has decided
what the response is:

- ``http.response.start`` is kept; the first ``http.response.body`` decides. Without
  ``more_body`` the response is whole (:class:`AppResponse`, served like any spikard
  response, fast path included); with it the response streams (:class:`AppStreamingResponse`):
  every later chunk is handed over a zero-buffer channel, so ``send`` returns once the server
  took the chunk, and the server takes the next one only after the previous one drained
  (backpressure).
- ``receive`` pulls the request body from the connection one read at a time, as the
  application asks (``more_body`` until the end). Once the body is over it waits until the
  response is complete or the client left (:meth:`Request.wait_disconnected`: the
  connection reads for it, keeping what a pipelining client sends), and then says
  ``http.disconnect``; a client gone makes ``send`` raise too.
- The client leaving a streamed response (the server closes the body), or shutdown cutting
  it, makes a waiting ``receive`` say ``http.disconnect`` and ``send`` raise
  :class:`~._types.ClientDisconnectedError` (an ``OSError``, as ASGI 2.4 asks).
- An application that fails before its response is decided gets a 500 (logged once); one
  that fails while its body streams has its exception raised into the server's body loop,
  which logs it and aborts the connection (the client sees a cut-off body, never a complete
  one). One that returns with its body unfinished is treated the same way.

Nothing here waits without a bound of the server's: the body reads have ``body_timeout``,
the streamed writes ``write_timeout``, and an application that never answers is the same
as a spikard handler that never returns (shutdown cuts it).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

from ...connection.events import Waiter
from ...errors import BodyTimeout, ClientDisconnected, ContentTooLarge, HTTPException, InvalidBody
from ...requests import Request
from ...responses import PlainTextResponse, Response, StreamingResponse
from ._calls import start_call
from ._scope import http_scope
from ._types import ASGIProtocolError, CallHost, ClientDisconnectedError, Message, Scope

__all__ = ["AppResponse", "AppStreamingResponse", "HTTPExchange", "serve_http"]

logger = logging.getLogger("spikard.asgi")

_BODY_ERRORS = (BodyTimeout, ClientDisconnected, ContentTooLarge, InvalidBody)
_DISCONNECT_GRACE = 1.0
"""Seconds a ``send`` after the client left waits before it raises (see _disconnected)."""


async def _disconnected() -> None:
    """``send`` after the client left: raise, once the app had time to notice by itself.

    An app that listens for ``http.disconnect`` (Starlette, sse-starlette) cancels its
    sender within this grace and never sees the error; one that does not gets it after
    :data:`_DISCONNECT_GRACE` seconds, so it never streams into the void.

    Raises:
        ClientDisconnectedError: always.
    """
    await anyio.sleep(_DISCONNECT_GRACE)
    raise ClientDisconnectedError("the client disconnected")


def _passthrough(chunk: Any) -> bytes:
    return chunk  # type: ignore[no-any-return]  # send() stores bytes only


def _header_fields(headers: Any) -> list[tuple[bytes, bytes]]:
    """The application's ``headers`` as (lower-case name, value) byte pairs.

    Raises:
        ASGIProtocolError: a field that is not a pair of byte strings.
    """
    fields = []
    try:
        for name, value in headers:
            fields.append((bytes(name).lower(), bytes(value)))
    except (TypeError, ValueError):
        raise ASGIProtocolError(
            f"response headers must be [name, value] pairs of bytes, got {headers!r}"
        ) from None
    return fields


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
"""A header name (RFC 9110 5.1), lower-cased."""


def _unsendable(fields: list[tuple[bytes, bytes]]) -> tuple[bytes, bytes] | None:
    """The first field HTTP/1.1 cannot carry (a bad name, CR, LF or NUL in a value)."""
    for field in fields:
        name, value = field
        if _TOKEN.fullmatch(name) is None or b"\r" in value or b"\n" in value or b"\0" in value:
            return field
    return None


class AppResponse(Response):
    """A whole response of an ASGI application, its header fields sent as the app gave them.

    ``content-length`` is the body's own (the application's is replaced), except for HEAD,
    whose head announces the GET body's length.
    """

    def __init__(
        self, status: int, fields: list[tuple[bytes, bytes]], body: bytes, *, head: bool
    ) -> None:
        super().__init__(body, status)
        self._fields = fields
        self._head = head

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The app's fields, with an exact ``content-length`` (a new list each call)."""
        if self._head:
            return list(self._fields)
        fields = [field for field in self._fields if field[0] != b"content-length"]
        status = self.status_code
        if status >= 200 and status not in (204, 304):
            fields.append((b"content-length", str(len(self.body)).encode()))
        return fields


class AppStreamingResponse(StreamingResponse):
    """A streamed response of an ASGI application; its fields go out as the app gave them."""

    def __init__(
        self, status: int, fields: list[tuple[bytes, bytes]], content: ResponseBody
    ) -> None:
        super().__init__(content, status)
        self._fields = fields
        self.encode = _passthrough

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The app's fields (a new list each call)."""
        return list(self._fields)


class ResponseBody:
    """The body of a streamed response: chunks handed from the application to the server.

    The server iterates it and closes it (``aclose``) when it is done, the client left or
    shutdown cut the body.
    """

    __slots__ = ("_error", "_exchange", "_finished", "_receiver", "_sender")

    def __init__(self, exchange: HTTPExchange) -> None:
        self._exchange = exchange
        self._sender, self._receiver = anyio.create_memory_object_stream[bytes](0)
        self._finished = False
        self._error: BaseException | None = None

    def __aiter__(self) -> ResponseBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._receiver.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            if self._finished:
                raise StopAsyncIteration from None
            error = self._error
            if error is None:
                error = ASGIProtocolError("the ASGI application ended before its response body")
            raise error from None

    async def put(self, chunk: bytes) -> None:
        """Hand ``chunk`` to the server; returns once it was taken.

        Raises:
            ClientDisconnectedError: the server closed the body (the client left, shutdown).
        """
        try:
            await self._sender.send(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._sender.close()
            await _disconnected()

    def finish(self) -> None:
        """The application sent its last chunk: the body ends after what was taken."""
        self._finished = True
        self._sender.close()

    def fail(self, error: BaseException) -> None:
        """The application failed or quit mid-body: the server's next read raises ``error``."""
        self._error = error
        self._sender.close()

    @property
    def closed(self) -> bool:
        """True once the server closed the body."""
        return self._exchange.disconnected

    async def aclose(self) -> None:
        """The server is done with the body; before its end that means the client is gone."""
        self._receiver.close()
        self._sender.close()
        self._exchange.server_done()


class HTTPExchange:
    """The ``receive``/``send`` pair of one HTTP request; see the module docs.

    Args:
        request: the request the server read.
        scope: its ``http`` scope.
        new_event: makes events of the loop served on (the decision's, the waiters').
        spawn: starts a task of the adapter's (the departure watch).
    """

    __slots__ = (
        "_body_done",
        "_body_iterator",
        "_complete",
        "_decided",
        "_dropping",
        "_end_sent",
        "_fields",
        "_head",
        "_new_event",
        "_reading",
        "_remaining",
        "_response",
        "_spawn",
        "_status",
        "_stream",
        "_waiter",
        "_watching",
        "body_error",
        "cancel",
        "disconnected",
        "protocol_error",
        "request",
        "scope",
    )

    def __init__(
        self,
        request: Request,
        scope: Scope,
        new_event: Callable[[], Waiter],
        spawn: Callable[[Callable[[], Coroutine[Any, Any, None]]], None],
    ) -> None:
        self.request = request
        self._spawn = spawn
        self.scope = scope
        headers = request.headers
        length = headers.get("content-length")
        self._remaining: int | None = None
        self._body_done = False
        if "transfer-encoding" not in headers:
            try:  # the server validated the framing; anything else is read to its end
                self._remaining = int(length) if length is not None else 0
            except ValueError:
                pass
            else:
                self._body_done = self._remaining == 0
        self._end_sent = False
        self._reading = False
        self._body_iterator: Any = None
        self._head = request.method == "HEAD"
        self._status: int | None = None
        self._fields: list[tuple[bytes, bytes]] = []
        self._response: Response | None = None
        self._stream: ResponseBody | None = None
        self._complete = False
        self._dropping = False
        """A HEAD response went out: the app's further body parts are dropped."""
        self._new_event = new_event
        self._decided = new_event()
        self._waiter: Waiter | None = None
        self._watching = False
        """The departure watch was started (on the first wait for ``http.disconnect``)."""
        self.disconnected = False
        """The client left (seen through the streamed body), or the server gave up."""
        self.body_error: HTTPException | None = None
        """Why the request body failed (413, 408, 400, the client left); None if it did not."""
        self.protocol_error: ASGIProtocolError | None = None
        """The out-of-order message the application sent (logged already)."""
        self.cancel: Callable[[], object] | None = None
        """Cancels the application's task, once it runs."""

    # ---- receive ---------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``http.request`` part, or ``http.disconnect`` (see the module docs)."""
        if self._complete or self.disconnected:
            return {"type": "http.disconnect"}
        if not self._body_done and not self._reading:
            self._reading = True
            try:
                chunk = await self._read()
            except _BODY_ERRORS as exc:
                self.body_error = exc
                self._body_done = self._end_sent = True
                if self._response is None:
                    # The server answers now (413, 408, 400; the connection closes after
                    # it), as uvicorn does: the app's own answer to the disconnect (often a
                    # 500) is not sent; its sends raise as after a departure.
                    self._decide(_error_response(exc.status_code, exc.detail))
                    self.disconnected = True
                    self._wake()
                return {"type": "http.disconnect"}
            finally:
                self._reading = False
            return {"type": "http.request", "body": chunk, "more_body": not self._body_done}
        if not self._end_sent and not self._reading:
            self._end_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        # The body is over (or another task is reading it: a disconnect listener beside the
        # body's reader, as Starlette runs them): wait until the client leaves or the
        # exchange ends. The watch runs in a task of its own, so that a call that returns at
        # its first checkpoint (Starlette's is_disconnected()) still lets it go on.
        self._watch()
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = self._new_event()
        await waiter.wait()
        return {"type": "http.disconnect"}

    def _watch(self) -> None:
        """Start the departure watch (once)."""
        if not self._watching:
            self._watching = True
            self._spawn(self._watch_departure)

    async def _watch_departure(self) -> None:
        """Until the exchange ends: a client that leaves makes every ``receive`` say so.

        An exchange that ends with the app's response unfinished (a HEAD response's head
        went out, the app streams on) is over for the app too.
        """
        if await self.request.wait_disconnected() or not self._complete:
            self.disconnected = True
            self._wake()

    async def _read(self) -> bytes:
        iterator = self._body_iterator
        if iterator is None:
            iterator = self._body_iterator = self.request.stream()
        try:
            chunk: bytes = await iterator.__anext__()
        except StopAsyncIteration:
            self._body_done = self._end_sent = True
            return b""
        remaining = self._remaining
        if remaining is not None:
            remaining = self._remaining = remaining - len(chunk)
            if remaining <= 0:
                self._body_done = self._end_sent = True
        return chunk

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()

    # ---- send ------------------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        """Take one ``http.response.*`` message of the application.

        Raises:
            ClientDisconnectedError: the client left.
            ASGIProtocolError: a message out of order (logged here, once).
        """
        kind = message.get("type")
        if kind == "http.response.body":
            if self._dropping and not self._complete:
                if not message.get("more_body", False):
                    self._complete = True
                    self._wake()
                elif self.disconnected:
                    await _disconnected()
                return
            stream = self._stream
            if stream is not None and not self._complete:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if body and not self._head:
                    await stream.put(body if type(body) is bytes else bytes(body))
                if not more:
                    self._complete = True
                    stream.finish()
                    self._wake()
                return
            await self._first_body(message)
            return
        if self.disconnected:
            await _disconnected()
        if kind == "http.response.start":
            if self._status is not None:
                raise self._broken("'http.response.start' sent twice")
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 599:  # RFC 9110 15: 100-599
                raise self._broken(f"'http.response.start' with status {status!r}")
            self._status = status
            self._fields = _header_fields(message.get("headers", ()))
            return
        raise self._broken(f"unexpected ASGI message {kind!r} in an HTTP request")

    async def _first_body(self, message: Message) -> None:
        if self.disconnected:
            await _disconnected()
        status = self._status
        if status is None:
            raise self._broken("'http.response.body' before 'http.response.start'")
        if self._complete:
            raise self._broken("'http.response.body' after the response completed")
        body = message.get("body", b"")
        if type(body) is not bytes:
            body = bytes(body)
        if not message.get("more_body", False):
            self._complete = True
            self._decide(AppResponse(status, self._fields, body, head=self._head))
            self._wake()
            return
        if self._head:
            # A HEAD response has no body: its head goes out now, later chunks are dropped.
            self._dropping = True
            self._decide(AppResponse(status, self._fields, b"", head=True))
            self._watch()  # tells the app once the exchange is over
            return
        fields = self._fields
        bad = _unsendable(fields)
        if bad is not None:
            # Refused here, not by the server: its 500 would leave this body unconsumed.
            raise self._broken(f"a response header that cannot be sent: {bad!r}")
        self._stream = stream = ResponseBody(self)
        self._decide(AppStreamingResponse(status, fields, stream))
        if body:
            await stream.put(body)

    def _decide(self, response: Response) -> None:
        self._response = response
        self._decided.set()

    def _broken(self, what: str) -> ASGIProtocolError:
        error = ASGIProtocolError(f"the ASGI application sent {what}")
        if self.protocol_error is None:
            self.protocol_error = error
            logger.error("%s %s: %s", self.request.method, self.request.raw_path, error)
        return error

    # ---- the server's side -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """True once the server has the response (its head may be out)."""
        return self._response is not None

    async def response(self) -> Response:
        """Wait until the application decided the response (or failed, or returned)."""
        await self._decided.wait()
        response = self._response
        assert response is not None
        return response

    def server_done(self) -> None:
        """The server closed the streamed body: a body not sent whole means the client left."""
        if not self._complete:
            self.disconnected = True
            self._wake()

    def abandon(self) -> None:
        """The server's handler was cancelled: the application is cancelled too."""
        self.disconnected = True
        self._wake()
        cancel = self.cancel
        if cancel is not None:
            cancel()

    def app_returned(self) -> None:
        """The application returned; answer for it if it did not (500, or the body's error)."""
        if self._response is None:
            error = self.body_error
            if error is not None:
                self._decide(_error_response(error.status_code, error.detail))
                return
            if self.protocol_error is None:
                logger.error(
                    "the ASGI application returned without completing a response to %s %s",
                    self.request.method,
                    self.request.raw_path,
                )
            self._decide(_error_response(500, "Internal Server Error"))
            return
        stream = self._stream
        if stream is not None and not self._complete:
            stream.fail(ASGIProtocolError("the ASGI application returned mid-body"))
            self._complete = True
        self._wake()

    def app_failed(self, error: BaseException) -> None:
        """The application raised ``error``: 500 before the response, a cut body during it."""
        quiet = error is self.protocol_error
        if self._response is None:
            if not quiet:
                logger.error(
                    "exception in the ASGI application (%s %s)",
                    self.request.method,
                    self.request.raw_path,
                    exc_info=error,
                )
            self._decide(_error_response(500, "Internal Server Error"))
            return
        stream = self._stream
        if stream is not None and not self._complete and not self.disconnected:
            self._complete = True
            stream.fail(error)  # the server's body loop raises it: logged there, once
        elif self.disconnected:
            logger.info(
                "the ASGI application raised %s after the client left (%s %s)",
                type(error).__name__,
                self.request.method,
                self.request.raw_path,
            )
        elif not quiet:
            logger.error(
                "exception in the ASGI application after its response (%s %s)",
                self.request.method,
                self.request.raw_path,
                exc_info=error,
            )
        self._wake()


def _error_response(status: int, text: str) -> Response:
    return PlainTextResponse(text, status)


async def serve_http(host: CallHost, request: Request) -> Response:
    """Serve ``request`` with the host's application; return the response it decided.

    The application runs in a task of the host's group, so it may go on after its
    response (background tasks); a cancelled server handler cancels it.
    """
    tasks = host.running()
    if host.over_limit():
        return PlainTextResponse("Service Unavailable", 503)
    request.max_body_size = host.max_body_size
    scope = http_scope(request, host.server_address(), host.root_path, host.running_state)
    exchange = HTTPExchange(request, scope, host.new_event, tasks.start_soon)
    start_call(host, exchange, _run_http)
    try:
        return await exchange.response()
    except BaseException:
        exchange.abandon()
        raise


async def _run_http(host: CallHost, exchange: HTTPExchange) -> None:
    host.call_started()
    try:
        if exchange.disconnected:
            return  # the handler was cancelled before this task ran
        try:
            await host.app(exchange.scope, exchange.receive, exchange.send)
        except Exception as exc:
            exchange.app_failed(exc)
        else:
            exchange.app_returned()
    finally:
        host.call_done()
        if not exchange.started:
            exchange.app_returned()  # cancelled: nobody waits, but leave no waiter hanging
