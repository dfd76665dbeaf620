"""The HTTP/1.1 side of a connection: requests in, responses out, keep-alive, the upgrade.

One :class:`HTTPConnection` serves one accepted connection (a driver's
:class:`~.transport.Transport`). It reads requests with h11 (bounded head size and count,
bounded body, timeouts), hands each to the application's :data:`RequestHandler`, and writes
the response. A WebSocket upgrade request comes with a :class:`~.wire.WireConnection` in
``CONNECTING``: the application accepts it (the 101 is written, and the bytes that arrived
after the request go to the WebSocket, none lost) or rejects it with an HTTP response.
Malformed requests get 400, oversized heads 431, oversized bodies 413; none of them ever
raises out of :meth:`HTTPConnection.serve`.

This class owns the transport: when :meth:`HTTPConnection.serve` returns, the transport was
closed (flushed within ``close_timeout``, else aborted).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio
import h11

from ..config import HTTPConfig, WebSocketConfig
from ..datastructures import Address, Headers
from ..errors import HandshakeRejected
from ..protocol.handshake import (
    HandshakeOffer,
    check_origin,
    is_websocket_upgrade,
    normalize_origin,
    read_offer,
)
from ..protocol.http1 import (
    DateHeader,
    ambiguous_framing,
    bad_header_value,
    reason_phrase,
    unsupported_version,
)
from ..requests import Request
from ..responses import PlainTextResponse, Response, StreamingResponse, encode_chunk
from .budget import InboundBudget
from .contract import WebSocketConnection
from .deadline import Deadline, move_on_after
from .heartbeat import Heartbeat
from .state import ConnectionState
from .transport import Transport, TransportClosed
from .wire import WireConnection

__all__ = ["HTTPConnection", "RequestHandler", "WebSocketCounter"]

logger = logging.getLogger("spikard.http")
access_logger = logging.getLogger("spikard.access")

_READ_SIZE = 65536
_DATE = DateHeader()
_LINGER_AFTER = frozenset({400, 413, 431, 505})
"""Errors answered before the request was read to its end: the client may still be sending."""
_LINGER_BYTES = 4 * 1024 * 1024
"""Most bytes read and dropped after such an error (``linger_timeout`` bounds the time)."""


class _ConnectionGone(Exception):
    """The peer went away or timed out; stop serving this connection quietly."""


async def _chunks(content: AsyncIterable[Any] | Iterable[Any]) -> AsyncGenerator[Any, None]:
    """``content``'s chunks; a plain iterable is advanced in a worker thread."""
    if isinstance(content, AsyncIterable):
        iterator = aiter(content)
        try:
            async for chunk in iterator:
                yield chunk
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
        return
    iterator_ = iter(content)
    done = object()
    while True:
        chunk = await anyio.to_thread.run_sync(next, iterator_, done)
        if chunk is done:
            return
        yield chunk


async def _close_unstarted(content: AsyncIterable[Any] | Iterable[Any]) -> None:
    """HEAD: the body is never started; an async generator is closed before its first line."""
    aclose = getattr(content, "aclose", None)
    if aclose is not None:
        await aclose()


RequestHandler = Callable[[Request, WebSocketConnection | None], Awaitable[Response | None]]
"""The application: answer a request, or run the WebSocket and return None."""


class WebSocketCounter:
    """Counts the WebSockets open on a server, across its connections."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = 0


class HTTPConnection:
    """Serve HTTP/1.1 requests on one transport until it closes.

    Args:
        transport: the accepted connection (closed by :meth:`serve` when done).
        handler: the application.
        config: HTTP limits and timers.
        websocket_config: WebSocket limits, for upgrades.
        scheme: ``"http"`` or ``"https"``; WebSocket requests report ``ws``/``wss``.
        websockets: the server-wide count of open WebSockets, for ``max_connections``.
        heartbeat: the server's running timer task.
        budget: the server's inbound budget for WebSockets.
    """

    __slots__ = (
        "_allowed_origins",
        "_budget",
        "_client",
        "_config",
        "_handler",
        "_heartbeat",
        "_idle_scope",
        "_must_close",
        "_scheme",
        "_shutting_down",
        "_streaming",
        "_websocket",
        "_websockets",
        "h11",
        "peer_label",
        "transport",
        "websocket_config",
    )

    def __init__(
        self,
        transport: Transport,
        handler: RequestHandler,
        config: HTTPConfig,
        websocket_config: WebSocketConfig,
        *,
        scheme: str = "http",
        websockets: WebSocketCounter | None = None,
        heartbeat: Heartbeat,
        budget: InboundBudget | None = None,
    ) -> None:
        self.transport = transport
        self._heartbeat = heartbeat
        self._budget = budget or InboundBudget(websocket_config.max_buffered_bytes)
        self._websockets = websockets or WebSocketCounter()
        origins = websocket_config.allowed_origins
        self._allowed_origins = (
            None if origins is None else frozenset(normalize_origin(o) for o in origins)
        )
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.websocket_config = websocket_config
        remote = transport.remote_address
        self._client = Address(*remote) if remote is not None else None
        self.peer_label = f"{remote[0]}:{remote[1]}" if remote else "-"
        self._handler = handler
        self._config = config
        self._scheme = scheme
        self._websocket: WireConnection | None = None
        self._idle_scope: Deadline | None = None
        self._shutting_down = False
        self._must_close = False
        self._streaming: anyio.CancelScope | None = None
        """The scope of a streamed response body in progress (shutdown ends it)."""
        """The current request's framing was ambiguous: close after its response."""

    async def serve(self) -> None:
        """Serve requests until the peer leaves, an error ends the connection, or shutdown."""
        try:
            await self._serve()
        except _ConnectionGone:
            pass
        finally:
            websocket, self._websocket = self._websocket, None
            if websocket is not None:
                websocket.detach()
            await self.transport.aclose(self.websocket_config.close_timeout)

    def shutdown(self) -> None:
        """Stop after the current request; an open WebSocket is closed with 1001."""
        self._shutting_down = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self._streaming is not None:
            self._streaming.cancel()  # the body ends with its last chunk, then we close
        if self._websocket is not None:
            self._websocket.going_away()

    async def _serve(self) -> None:
        first = True
        while not self._shutting_down:
            request = await self._read_request(first)
            if request is None:
                return
            first = False
            if is_websocket_upgrade(request.headers):
                await self._serve_websocket(request)
                return
            response = await self._handler(request, None)
            if response is None:
                response = Response(status_code=500)
            await self.send_response(request, response)
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()

    async def _serve_websocket(self, request: Request) -> None:
        request.scheme = "wss" if self._scheme == "https" else "ws"
        try:
            offer = self._check_handshake(request)
        except HandshakeRejected as rejection:
            await self.send_rejection(
                request, rejection.status_code, rejection.body, rejection.headers
            )
            return
        trailing, _ = self.h11.trailing_data
        websocket = self._websocket = WireConnection(
            self.transport,
            request,
            offer,
            self.websocket_config,
            owner=self,
            heartbeat=self._heartbeat,
            budget=self._budget,
            early=bytes(trailing),
            label=f"{self.peer_label} {request.raw_path}",
        )
        if self._shutting_down:
            websocket.going_away()
        self._websockets.open += 1
        try:
            response = await self._handler(request, websocket)
        finally:
            self._websockets.open -= 1
        if websocket.accepted or websocket.rejected or response is None:
            return
        if websocket.state is ConnectionState.CONNECTING:
            await self.send_response(request, response, close=True)

    def _check_handshake(self, request: Request) -> HandshakeOffer:
        """Validate an upgrade request, its origin and the server's capacity (logged once)."""
        try:
            offer = read_offer(request.method, request.http_version, request.headers)
        except HandshakeRejected as rejection:
            logger.info("bad WebSocket handshake from %s: %s", self.peer_label, rejection.body)
            raise
        try:
            check_origin(request.headers, self._allowed_origins)
        except HandshakeRejected:
            logger.info(
                "refused WebSocket from %s: origin %r is not allowed",
                self.peer_label,
                request.headers.get("origin"),
            )
            raise
        config = self.websocket_config
        if self._websockets.open >= config.max_connections:
            logger.warning(
                "refused WebSocket from %s: %d open (max_connections)",
                self.peer_label,
                self._websockets.open,
            )
            raise HandshakeRejected(
                503,
                "Too many WebSocket connections; try again later",
                {"retry-after": str(config.retry_after)},
            )
        return offer

    # ---- HandshakeOwner (for the WebSocket) ------------------------------------------------

    async def send_rejection(
        self,
        request: Request,
        status_code: int,
        body: str | bytes | None,
        headers: Mapping[str, str] | None,
    ) -> None:
        """Refuse a WebSocket handshake with an HTTP response (the connection then closes)."""
        rejection = HandshakeRejected(status_code, body, headers)
        response = PlainTextResponse(rejection.body, rejection.status_code, rejection.headers)
        try:
            await self.send_response(request, response, close=True)
        except _ConnectionGone:
            pass

    def upgraded(self, request: Request) -> None:
        """The 101 goes out: log it and drop h11's state (it reads no more HTTP).

        About 0.75 KiB per open WebSocket; any later use of :attr:`h11` is a bug, and fails.
        """
        self.log_access(request, 101)
        del self.h11

    # ---- requests ----------------------------------------------------------------------------

    async def _read_request(self, first: bool) -> Request | None:
        """Read one whole request (head and body); None when the connection should end.

        One cancel scope times both phases: waiting for the request to start (idle; shutdown
        cancels this wait) and reading it. The first request of a connection must be complete
        ``request_timeout`` after the connection opened; a keep-alive request gets
        ``keep_alive_timeout`` to start and ``request_timeout`` from its first bytes.
        """
        config = self._config
        reading = False
        try:
            loop = self.transport.loop
            with move_on_after(
                config.request_timeout if first else config.keep_alive_timeout, loop
            ) as scope:
                self._idle_scope = scope
                try:
                    await self._fill()
                finally:
                    self._idle_scope = None
                if self._shutting_down:
                    return None
                reading = True
                if not first:
                    now = self.transport.time()
                    scope.deadline = now + config.request_timeout
                return await self._read_request_events()
            self._idle_scope = None
            if reading:
                logger.info("request from %s timed out", self.peer_label)
                await self._send_error(408, "Request Timeout")
            return None
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            logger.info("bad request from %s: %s", self.peer_label, exc)
            text = "Request Header Fields Too Large" if status == 431 else "Bad Request"
            await self._send_error(status, f"{text}: {exc}")
            return None

    async def _fill(self) -> None:
        """Wait until h11 has bytes of the next request (or the peer closed)."""
        if self.h11.trailing_data[0] or self.h11.their_state is not h11.IDLE:
            return
        await self._receive_into_h11()

    async def _receive_into_h11(self) -> None:
        self.h11.receive_data(await self.transport.receive(_READ_SIZE))

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self._receive_into_h11()
                continue
            return event  # type: ignore[return-value]

    async def _read_request_events(self) -> Request | None:
        event = await self._next_event()
        if not isinstance(event, h11.Request):
            return None  # ConnectionClosed or PAUSED: the peer is done
        config = self._config
        if unsupported_version(event.http_version):
            logger.info(
                "HTTP/%s request from %s", event.http_version.decode("latin-1"), self.peer_label
            )
            await self._send_error(505, "HTTP Version Not Supported: HTTP/1.1 and HTTP/1.0 only")
            return None
        if len(event.headers) > config.max_header_count:
            logger.info("too many header fields from %s", self.peer_label)
            await self._send_error(431, "Request Header Fields Too Large: too many fields")
            return None
        # h11 bounds only a head still arriving; one that came whole in a read is measured here.
        head_size = (
            len(event.method)
            + len(event.target)
            + 12
            + sum(len(name) + len(value) + 4 for name, value in event.headers.raw_items())
        )
        if head_size > config.max_header_bytes:
            logger.info("request head of %d bytes from %s", head_size, self.peer_label)
            await self._send_error(431, "Request Header Fields Too Large")
            return None
        bad_name = bad_header_value(event.headers)
        if bad_name is not None:
            name = bad_name.decode("latin-1")
            logger.info("control character in the %s header from %s", name, self.peer_label)
            await self._send_error(400, f"Bad Request: control character in the {name} header")
            return None
        self._must_close = ambiguous_framing(event.headers)
        headers = Headers.from_raw(event.headers)
        if (
            event.method == b"GET"
            and "content-length" not in headers
            and "transfer-encoding" not in headers
            and is_websocket_upgrade(headers)
        ):
            # A handshake has no body, and after it h11 reads no more: its end-of-message
            # event is not needed (a refusal closes the connection).
            return self._request(event, headers, b"")
        body = bytearray()
        while True:
            if self.h11.they_are_waiting_for_100_continue:
                await self._send_raw(h11.InformationalResponse(status_code=100, headers=[]))
            part = await self._next_event()
            if isinstance(part, h11.Data):
                body += part.data
                if len(body) > config.max_body_size:
                    await self._send_error(413, "Content Too Large")
                    return None
            elif isinstance(part, h11.EndOfMessage) or part is h11.PAUSED:
                break
            else:
                return None
        return self._request(event, headers, bytes(body))

    def _request(self, event: h11.Request, headers: Headers, body: bytes) -> Request:
        return Request(
            event.method.decode("ascii").upper(),
            event.target.decode("latin-1"),
            headers,
            client=self._client,
            http_version=event.http_version.decode("ascii"),
            scheme=self._scheme,
            body=body,
        )

    async def send_response(
        self, request: Request, response: Response, *, close: bool = False
    ) -> None:
        """Write a whole response to ``request`` (no body for HEAD).

        A response whose headers cannot be sent (a value that is not latin-1, a control
        character) is replaced by a 500, and the error is logged.
        """
        close = (
            close
            or self._must_close
            or self._shutting_down
            or is_websocket_upgrade(request.headers)
        )
        try:
            head = self._head(response.status_code, response.raw_headers(), close)
        except (UnicodeEncodeError, h11.LocalProtocolError) as exc:
            logger.error(
                "the response to %s %s has a header that cannot be sent (%s); answering 500",
                request.method,
                request.raw_path,
                exc,
            )
            response = PlainTextResponse("Internal Server Error", 500)
            head = self._head(500, response.raw_headers(), close)
        self.log_access(request, response.status_code)
        await self._send_raw(head)
        if isinstance(response, StreamingResponse):
            if request.method != "HEAD":
                await self._stream_body(response.content, response.keepalive)
            else:
                await _close_unstarted(response.content)
        elif request.method != "HEAD" and response.body:
            await self._send_raw(h11.Data(data=response.body))
        await self._send_raw(h11.EndOfMessage())

    async def _stream_body(
        self,
        content: AsyncIterable[Any] | Iterable[Any],
        keepalive: tuple[float, bytes] | None = None,
    ) -> None:
        """Send the chunks of a streamed body, each once the previous one drained.

        A watcher reads meanwhile, to see the client leave (then the body stops, the
        generator is closed and the connection ends); what a pipelining client sends is kept
        for h11, up to ``max_header_bytes``. Shutdown stops the body too: the caller then
        ends it with the last chunk. With ``keepalive`` (seconds, bytes), those bytes go out
        whenever no chunk did for that long while the body waits for its next chunk.

        An exception from the body is logged and the connection aborted (the head is out: a
        cut-off body is what the client can still be told).

        Raises:
            _ConnectionGone: the client left, took no bytes for ``write_timeout``, or the
                body raised.
        """
        chunks = _chunks(content)
        gone = failed = False
        activity = [0]  # odd while a chunk is being written; changes with every chunk
        try:
            async with anyio.create_task_group() as task_group:
                self._streaming = task_group.cancel_scope
                if self._shutting_down:
                    task_group.cancel_scope.cancel()

                async def watch() -> None:
                    nonlocal gone
                    gone = await self._wait_for_departure()
                    task_group.cancel_scope.cancel()

                task_group.start_soon(watch)
                if keepalive is not None:
                    task_group.start_soon(self._keep_alive, keepalive, activity)
                try:
                    async for chunk in chunks:
                        data = encode_chunk(chunk)
                        if data:
                            activity[0] += 1
                            await self._send_body_part(data)
                            activity[0] += 1
                except _ConnectionGone:
                    gone = True
                except Exception:
                    logger.exception("a streamed response body to %s raised", self.peer_label)
                    failed = True
                task_group.cancel_scope.cancel()  # done: stop watching
        finally:
            self._streaming = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._config.write_timeout):
                await chunks.aclose()
        if failed:
            self.transport.abort()  # the body is cut short: the client must not take it whole
        if gone or failed:
            raise _ConnectionGone

    async def _keep_alive(self, keepalive: tuple[float, bytes], activity: list[int]) -> None:
        """Write ``keepalive[1]`` every ``keepalive[0]`` seconds in which no chunk went out."""
        interval, filler = keepalive
        seen = activity[0]
        while True:
            await anyio.sleep(interval)
            if activity[0] == seen and not seen % 2:  # silent, and not in a write
                try:
                    await self._send_body_part(filler)
                except _ConnectionGone:
                    return  # the chunk loop meets the same end
            seen = activity[0]

    async def _wait_for_departure(self) -> bool:
        """Read until the client's EOF (True), or until it sent a head's worth (False)."""
        left = self._config.max_header_bytes
        while left > 0:
            data = await self.transport.receive(_READ_SIZE)
            if not data:
                return True
            self.h11.receive_data(data)  # a pipelined request: read after this response
            left -= len(data)
        return False

    async def _send_body_part(self, data: bytes) -> None:
        """Write one chunk; abort when the client takes no bytes for ``write_timeout``."""
        transport = self.transport
        try:
            transport.write(self.h11.send(h11.Data(data=data)) or b"")
            while not transport.writable:
                sent = transport.bytes_sent
                with anyio.move_on_after(self._config.write_timeout):
                    await transport.drain()
                    return
                if transport.bytes_sent == sent:
                    logger.info(
                        "response to %s stalled for %.0f s; dropping the connection",
                        self.peer_label,
                        self._config.write_timeout,
                    )
                    transport.abort()
                    raise _ConnectionGone
        except TransportClosed:
            raise _ConnectionGone from None

    def _head(self, status: int, headers: list[tuple[bytes, bytes]], close: bool) -> h11.Response:
        """The response head: the status line's reason, ``Date``, ``Server`` if configured.

        Raises:
            h11.LocalProtocolError: a header h11 will not send.
        """
        names = {name.lower() for name, _ in headers}
        if b"date" not in names:
            headers.append((b"date", _DATE.value()))
        server = self._config.server_header
        if server is not None and b"server" not in names:
            headers.append((b"server", server.encode("latin-1")))
        if close:
            headers.append((b"connection", b"close"))
        return h11.Response(status_code=status, headers=headers, reason=reason_phrase(status))

    async def _send_error(self, status: int, text: str) -> None:
        """Answer with ``status`` and close; after an early error, linger (see HTTPConfig)."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = text.encode("utf-8", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        try:
            await self._send_raw(self._head(status, headers, close=True))
            await self._send_raw(h11.Data(data=body))
            await self._send_raw(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return
        if status in _LINGER_AFTER and self.h11.their_state is not h11.DONE:
            await self._linger()

    async def _linger(self) -> None:
        """Read and drop what the client still sends, so that it reads the response.

        Bounded by ``linger_timeout`` seconds and :data:`_LINGER_BYTES`; the peer's EOF ends
        it at once.
        """
        left = _LINGER_BYTES
        with move_on_after(self._config.linger_timeout, self.transport.loop):
            while left > 0:
                data = await self.transport.receive(_READ_SIZE)
                if not data:
                    return
                left -= len(data)

    async def _send_raw(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            try:
                await self.write(data)
            except TransportClosed:
                raise _ConnectionGone from None

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the peer, waiting while the transport's buffer is full.

        Raises:
            TransportClosed: the connection is closed or lost.
        """
        transport = self.transport
        transport.write(data)
        if not transport.writable:
            await transport.drain()

    def log_access(self, request: Request, status: int) -> None:
        """Write one access-log line for ``request``."""
        if access_logger.isEnabledFor(logging.INFO):
            method = "WEBSOCKET" if status == 101 else request.method
            query = f"?{request.query_string}" if request.query_string else ""
            access_logger.info(
                '%s - "%s %s%s HTTP/%s" %d',
                self.peer_label,
                method,
                request.raw_path,
                query,
                request.http_version,
                status,
            )
