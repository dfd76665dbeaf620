"""The HTTP/1.1 side of a connection: requests in, responses out, keep-alive, the upgrade.

One :class:`HTTPConnection` serves one accepted connection (a driver's
:class:`~.transport.Transport`). It reads request heads with h11 (bounded size and count,
``request_timeout``), hands each request to the application's :data:`RequestHandler` as soon
as its head is read, and writes the response. A WebSocket upgrade request comes with a
:class:`~.wire.WireConnection` in ``CONNECTING``: the application accepts it (the 101 is
written, and the bytes that arrived after the request go to the WebSocket, none lost) or
rejects it with an HTTP response. Malformed heads get 400, oversized ones 431; none of them
ever raises out of :meth:`HTTPConnection.serve`.

Request bodies (theory of operation). A body is read only as the handler pulls it
(:class:`_RequestBody`, the request's :class:`~spikard.requests.BodySource`); what h11
already holds with the head is taken without I/O, so a small POST costs no extra await.
Invariants:

- One reader owns the socket. While a body is unfinished only :class:`_RequestBody` reads
  it; once it ended, only the exchange's :class:`~.departure.DepartureWatch` (for a
  streamed response's watcher and :meth:`~spikard.requests.Request.wait_disconnected`),
  stopped before the connection reads its next request.
- Every body read waits at most ``body_timeout`` for bytes (else 408,
  :class:`~spikard.errors.BodyTimeout`); ``100 Continue`` goes out on the first read that
  needs the client's bytes, never before.
- A failed body (413, 408, malformed, client gone) fails every later read the same way, is
  logged once, and the response to its request closes the connection.
- Keep-alive never desynchronizes: when a response is decided with the body unfinished, the
  connection stays open only when at most :data:`_DRAIN_BYTES` of a ``Content-Length`` body
  remain and the client is not waiting for ``100 Continue``; those bytes are then read and
  dropped within ``linger_timeout``, else the connection closes. Otherwise the head says
  ``connection: close`` and the connection lingers (below) before it closes.

Two readers, one grammar. Between requests no h11 exists: bytes collect in an inbox, and a
head that :func:`~spikard.protocol.http1_simple.parse_simple_head` takes (bodiless, plainly
valid) is served without h11 when its answer is a whole response
(:func:`~spikard.protocol.http1_simple.simple_response`) or a streamed one whose head and
framing that module writes (:func:`~spikard.protocol.http1_simple.streamed_response_head`).
Anything else gets an h11 connection for that exchange, fed every byte from the head on (a
taken head is replayed into it); after the exchange, what h11 holds goes back to the inbox.
The fast path only ever declines, never answers an error, and
``tests/protocol/test_http1_simple.py`` proves it equal to h11 where it does not decline.

This class owns the transport: when :meth:`HTTPConnection.serve` returns, the transport was
closed (flushed within ``close_timeout``, else aborted).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from typing import IO, Any, ClassVar

import anyio
import h11

from ..config import HTTPConfig, WebSocketConfig
from ..datastructures import Address, Headers
from ..errors import (
    BodyTimeout,
    ClientDisconnected,
    ContentTooLarge,
    HandshakeRejected,
    InvalidBody,
)
from ..protocol.forwarded import resolve
from ..protocol.handshake import (
    HandshakeOffer,
    check_origin,
    host_matcher,
    is_websocket_upgrade,
    origin_matcher,
    read_offer,
    trusted_proxies,
)
from ..protocol.http1 import (
    DateHeader,
    ambiguous_framing,
    bad_header_value,
    reason_phrase,
    unsupported_version,
)
from ..protocol.http1_simple import (
    FOR_H11,
    NEED_DATA,
    BodyFraming,
    BodyLengthError,
    SimpleHead,
    find_head_end,
    parse_simple_head,
    simple_response,
    streamed_response_head,
)
from ..protocol.redaction import redact_query
from ..requests import Request
from ..responses import PlainTextResponse, Response, StreamingResponse
from .budget import InboundBudget
from .client_limits import ClientLimits, client_key
from .contract import Application, RequestHandler, ServesRequests
from .deadline import Deadline, move_on_after
from .departure import DepartureWatch
from .heartbeat import Heartbeat
from .state import ConnectionState
from .transport import SendfileUnavailable, Transport, TransportClosed
from .wire import WireConnection

__all__ = ["Application", "HTTPConnection", "RequestHandler", "ServesRequests", "WebSocketCounter"]

logger = logging.getLogger("spikard.http")
access_logger = logging.getLogger("spikard.access")

_READ_SIZE = 65536
_DATE = DateHeader()
_LINGER_AFTER = frozenset({400, 413, 431, 505})
"""Errors answered before the request was read to its end: the client may still be sending."""
_LINGER_BYTES = 4 * 1024 * 1024
"""Most bytes read and dropped after such an error (``linger_timeout`` bounds the time)."""
_DRAIN_BYTES = 64 * 1024
"""Most bytes of an unread request body dropped to keep a keep-alive connection (within
``linger_timeout``); a larger or unknown rest closes the connection instead."""


class _ConnectionGone(Exception):
    """The peer went away or timed out; stop serving this connection quietly."""


def _chunks(content: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    """``content``'s chunks: its own iterator, or a plain iterable's advanced in a thread."""
    if isinstance(content, AsyncIterable):
        return aiter(content)
    return _threaded(iter(content))


async def _threaded(iterator: Iterator[Any]) -> AsyncGenerator[Any, None]:
    done = object()
    while True:
        chunk = await anyio.to_thread.run_sync(next, iterator, done)
        if chunk is done:
            return
        yield chunk


async def _close_unstarted(content: AsyncIterable[Any] | Iterable[Any]) -> None:
    """HEAD: the body is never started; an async generator is closed before its first line."""
    aclose = getattr(content, "aclose", None)
    if aclose is not None:
        await aclose()


class WebSocketCounter:
    """Counts the WebSockets open on a server, across its connections."""

    __slots__ = ("clients", "open")

    def __init__(self) -> None:
        self.open = 0
        self.clients = ClientLimits()
        """Open sockets and handshake buckets per client address (this process's)."""


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
        "_allowed_hosts",
        "_allowed_origins",
        "_budget",
        "_client",
        "_config",
        "_departure",
        "_eof",
        "_exchange",
        "_framing",
        "_goes_on",
        "_h11",
        "_handler",
        "_heartbeat",
        "_idle_scope",
        "_inbox",
        "_method",
        "_must_close",
        "_proxies",
        "_request_body",
        "_scheme",
        "_server",
        "_shutdown_deadline",
        "_shutting_down",
        "_simple",
        "_simple_enabled",
        "_streaming",
        "_websocket",
        "_websockets",
        "peer_label",
        "transport",
        "websocket_config",
    )

    simple_exchanges: ClassVar[bool] = True
    """Serve simple exchanges without h11 (see the module docs). False gives every exchange to
    h11: the reference the differential tests compare with (read when a connection opens)."""

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
        self._allowed_origins = origin_matcher(websocket_config.allowed_origins)
        self._allowed_hosts = host_matcher(config.allowed_hosts)
        self._h11: h11.Connection | None = None
        """h11 serving the current exchange; None between requests and in a simple one."""
        self._inbox = bytearray()
        """Bytes read while no h11 serves (the next request's, from its first byte)."""
        self._eof = False
        """The peer ended its side (seen while reading into the inbox)."""
        self._simple: SimpleHead | None = None
        """The head of the simple exchange in progress (served without h11)."""
        self._goes_on = False
        """After a simple response: whether the connection reads another request."""
        self._framing: BodyFraming | None = None
        """The framing of a simple exchange's streamed body while it is sent (else h11's)."""
        self._simple_enabled = self.simple_exchanges
        self._method = b""
        """The current request's method as sent: ``b"HEAD"`` (case-sensitive, RFC 9110 9.1)
        is the one whose response has no body, as h11 frames it (``head`` is another)."""
        self.websocket_config = websocket_config
        remote = transport.remote_address
        self._client = Address(*remote) if remote is not None else None
        local = transport.local_address
        self._server = Address(*local) if local is not None else None
        self.peer_label = f"{remote[0]}:{remote[1]}" if remote else "-"
        self._handler = handler
        self._config = config
        proxies = trusted_proxies(config.forwarded_allow_ips)
        self._proxies = proxies if self._client is not None and proxies(self._client.host) else None
        """Set when the peer is a trusted proxy: requests then report whom it forwarded for."""
        self._scheme = scheme
        self._websocket: WireConnection | None = None
        self._idle_scope: Deadline | None = None
        self._shutting_down = False
        self._shutdown_deadline = 0.0
        self._must_close = False
        self._streaming: anyio.CancelScope | None = None
        """The scope of a streamed response body in progress (shutdown ends it)."""
        self._request_body: _RequestBody | None = None
        """The current request's body, None when it has none (or is a handshake)."""
        self._exchange = 0
        """The number of the current exchange (a request and its response)."""
        self._departure: DepartureWatch | None = None
        """The current exchange's watch for the client leaving, once someone asked."""

    @property
    def protocol(self) -> h11.Connection:
        """h11 serving the current exchange (a bug to ask for outside of one)."""
        connection = self._h11
        assert connection is not None, "no h11 exchange in progress"
        return connection

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
        if not self._shutting_down:
            self._shutdown_deadline = self.transport.time() + self._config.shutdown_timeout
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
            hosts = self._allowed_hosts
            if hosts is not None and not hosts(request.headers.get("host", "")):
                logger.info(
                    "refused a request from %s: Host %r is not in HTTPConfig.allowed_hosts",
                    self.peer_label,
                    request.headers.get("host", ""),
                )
                await self._send_error(400, "Bad Request: unknown Host")
                return
            if is_websocket_upgrade(request.headers):
                await self._serve_websocket(request)
                return
            body = self._request_body
            try:
                response = await self._handler(request, None)
                if response is None:
                    response = Response(status_code=500)
                await self.send_response(request, response)
            finally:
                self._exchange += 1
                watch = self._departure
                if watch is not None:
                    self._departure = None
                    with anyio.CancelScope(shield=True):  # bounded: stop() cancels the reader
                        await watch.stop()  # before anything reads the socket again
                if body is not None:
                    await request.aclose()  # the form's files
            if body is not None and not body.ended and not await self._end_body(body):
                return
            if not self._next_cycle():
                return

    def _next_cycle(self) -> bool:
        """After an exchange: True when another request may follow (h11, if any, set aside)."""
        connection = self._h11
        if connection is None:
            return self._goes_on
        if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
            return False
        connection.start_next_cycle()
        data, self._eof = connection.trailing_data
        self._inbox[:] = data
        self._h11 = None
        return True

    def _take_h11(self) -> h11.Connection:
        """The h11 connection for this exchange: made now, fed all bytes from its head on.

        A simple exchange's head is replayed into it first, so h11 serves the rest of it.
        """
        connection = self._h11
        if connection is None:
            connection = self._h11 = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self._config.max_header_bytes
            )
            simple, self._simple = self._simple, None
            if simple is not None:
                connection.receive_data(simple.raw)
                replayed = connection.next_event(), connection.next_event()
                assert type(replayed[0]) is h11.Request, replayed  # the differential tests'
                assert type(replayed[1]) is h11.EndOfMessage, replayed  # invariant
            if self._inbox:
                connection.receive_data(bytes(self._inbox))
                self._inbox.clear()
            if self._eof:
                connection.receive_data(b"")
        return connection

    async def _end_body(self, body: _RequestBody) -> bool:
        """After the response: finish an unfinished body; True when the connection goes on.

        The response kept the connection only for a small rest (see the module docs): read
        and drop it. Otherwise the connection closes, after lingering while the client may
        still be sending (not after a stall: that client sends nothing).
        """
        if self.protocol.our_state is h11.DONE:
            return await body.drain()
        if body.lingers:
            await self._linger()
        return False

    async def _serve_websocket(self, request: Request) -> None:
        self._exchange += 1  # the handshake request has no departure watch: the socket does
        request.scheme = "wss" if request.scheme == "https" else "ws"
        try:
            offer = self._check_handshake(request)
        except HandshakeRejected as rejection:
            await self.send_rejection(
                request, rejection.status_code, rejection.body, rejection.headers
            )
            return
        client_key_ = self._admit_client(request)
        if isinstance(client_key_, HandshakeRejected):
            await self.send_rejection(
                request, client_key_.status_code, client_key_.body, client_key_.headers
            )
            return
        if self._h11 is None:  # a simple head: what came after it waits in the inbox
            trailing, self._inbox = bytes(self._inbox), bytearray()
        else:
            trailing, _ = self.protocol.trailing_data
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
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "WebSocket handshake from %s for %s (%d subprotocols offered)",
                self.peer_label,
                request.raw_path,  # percent-encoded: a decoded %0A would break the line
                len(offer.subprotocols),  # their values may carry tokens: never logged
            )
        if self._shutting_down:
            websocket.going_away()
        counter = self._websockets
        counter.open += 1
        try:
            response = await self._handler(request, websocket)
        finally:
            counter.open -= 1
            if client_key_ is not None:
                counter.clients.release(client_key_)
        if websocket.accepted or websocket.rejected or response is None:
            return
        if websocket.state is ConnectionState.CONNECTING:
            await self.send_response(request, response, close=True)

    def _check_handshake(self, request: Request) -> HandshakeOffer:
        """Validate an upgrade request, its origin and the server's capacity (logged once)."""
        try:
            offer = read_offer(request.method, request.http_version, request.headers)
            body = self._request_body
            if body is not None and (not body.ended or body.error is not None):
                # What follows the head would be the body, not WebSocket frames.
                raise HandshakeRejected(400, "WebSocket handshake with an unfinished body")
        except HandshakeRejected as rejection:
            logger.info("bad WebSocket handshake from %s: %s", self.peer_label, rejection.body)
            raise
        allowed = self._allowed_origins
        if allowed is not None and not allowed.allows_any:
            scheme = "https" if request.scheme == "wss" else "http"
            own = f"{scheme}://{request.host}"
            try:
                check_origin(request.headers, allowed, own)
            except HandshakeRejected:
                logger.info(
                    "refused WebSocket from %s: origin %r is not allowed by "
                    "WebSocketConfig.allowed_origins=%r (list it there, or '*' for any)",
                    self.peer_label,
                    request.headers.get("origin"),
                    self.websocket_config.allowed_origins,
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

    def _admit_client(self, request: Request) -> str | HandshakeRejected | None:
        """Count the handshake against its client's limits.

        Returns the key to release when the socket ends, a refusal (429), or None when no
        limit applies.
        """
        config = self.websocket_config
        max_open = config.per_client_limit
        rate = config.handshake_rate
        client = request.client
        if client is None or (max_open is None and rate is None):
            return None
        key = client_key(client.host)
        refusal = self._websockets.clients.admit(
            key, self.transport.time(), max_open=max_open, rate=rate, burst=config.handshake_burst
        )
        if refusal is None:
            return key
        if refusal.first:  # once per episode: a flooding client must not flood the log
            logger.warning(
                "refused WebSocket from %s: too many %s from %s (max_connections_per_client=%s, "
                "handshake_rate=%s/s, handshake_burst=%d); answering 429 until it slows down",
                self.peer_label,
                refusal.reason,
                key,
                max_open,
                rate,
                config.handshake_burst,
            )
        return HandshakeRejected(
            429,
            f"Too many WebSocket {refusal.reason} from your address; try again later",
            {"retry-after": str(refusal.retry_after)},
        )

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

        About 0.75 KiB per open WebSocket; any later use of :attr:`protocol` is a bug, and fails.
        """
        self.log_access(request, 101)
        self._h11 = None

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
            if not reading and not self._shutting_down and logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "closing %s: no request within %.1f s (%s)",
                    self.peer_label,
                    config.request_timeout if first else config.keep_alive_timeout,
                    "request_timeout" if first else "keep_alive_timeout",
                )
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
        """Wait until the inbox has bytes of the next request (or the peer closed).

        Between requests no h11 exists (see the module docs): the inbox holds every byte.
        """
        if not self._inbox and not self._eof:
            await self._receive_into_inbox()

    async def _receive_into_inbox(self) -> None:
        data = await self.transport.receive(_READ_SIZE)
        if data:
            self._inbox += data
        else:
            self._eof = True

    async def _read_simple_head(self) -> SimpleHead | None:
        """Read the next head into the inbox and take it if it is simple; None declines.

        Reads no further than h11 would before it answers: a head end, the peer's EOF, or
        ``max_header_bytes`` without a head end.
        """
        config = self._config
        inbox = self._inbox
        while True:
            end = find_head_end(inbox)
            if end >= 0:
                simple = parse_simple_head(
                    inbox,
                    end,
                    max_bytes=config.max_header_bytes,
                    max_fields=config.max_header_count,
                )
                if simple is not None:
                    del inbox[: end + 4]
                return simple
            if end == FOR_H11 or self._eof or len(inbox) > config.max_header_bytes:
                return None
            assert end == NEED_DATA
            await self._receive_into_inbox()

    async def _receive_into_h11(self) -> None:
        self.protocol.receive_data(await self.transport.receive(_READ_SIZE))

    async def _next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.protocol.next_event()
            if event is h11.NEED_DATA:
                await self._receive_into_h11()
                continue
            return event  # type: ignore[return-value]

    async def _read_request_events(self) -> Request | None:
        self._request_body = None
        self._must_close = False
        simple = await self._read_simple_head() if self._simple_enabled else None
        if simple is not None:
            self._simple = simple
            self._goes_on = False
            headers = Headers.from_raw(simple.headers)
            return self._request(simple.method, simple.target, simple.http_version, headers, None)
        if self._eof and not self._inbox:
            return None  # the peer left between requests
        self._take_h11()
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
            return self._request(event.method, event.target, event.http_version, headers, None)
        # What h11 holds already is taken now, without I/O: a request without a body ends
        # here, and a small body that came with its head is whole before the handler runs.
        # A malformed one raises here (answered 400 by _read_request, the handler never runs).
        part = self.protocol.next_event()
        method, target, version = event.method, event.target, event.http_version
        if type(part) is h11.EndOfMessage:
            return self._request(method, target, version, headers, None)
        length = None if "transfer-encoding" in headers else int(headers["content-length"])
        body = self._request_body = _RequestBody(self, length)
        body.take(part)
        return self._request(method, target, version, headers, body)

    def _request(
        self,
        method: bytes,
        target: bytes,
        http_version: bytes,
        headers: Headers,
        body: _RequestBody | None,
    ) -> Request:
        self._method = method
        client, scheme, host = self._client, self._scheme, None
        if self._proxies is not None:
            forwarded = resolve(headers, client, scheme, self._proxies)
            if forwarded is not None:
                client, scheme, host = forwarded.client, forwarded.scheme, forwarded.host
        return Request(
            method.decode("ascii").upper(),
            target.decode("latin-1"),
            headers,
            client=client,
            server=self._server,
            http_version=http_version.decode("ascii"),
            scheme=scheme,
            host=host,
            source=body,
            max_body_size=self._config.max_body_size,
            departures=self,
            exchange=self._exchange,
        )

    async def send_response(
        self, request: Request, response: Response, *, close: bool = False
    ) -> None:
        """Write a whole response to ``request`` (no body for HEAD).

        A response whose headers cannot be sent (a value that is not latin-1, a control
        character) is replaced by a 500, and the error is logged. A streamed body that is
        never started (that 500, a client gone while the head is written) is closed, so its
        producer does not wait for a reader that will never come.
        """
        try:
            close = (
                close
                or self._must_close
                or self._shutting_down
                or is_websocket_upgrade(request.headers)
            )
            if self._simple is not None:
                if isinstance(response, StreamingResponse):
                    if await self._stream_simple(request, response, close):
                        return
                elif await self._send_simple(request, response, close):
                    return
            self._take_h11()  # h11 serves this response (a simple head is replayed into it)
            body = self._request_body
            if body is not None and (not body.ended or body.error is not None):
                close = self._settle_body(body, request, response) or close
            try:
                head = self._head(response.status_code, response.raw_headers(), close)
            except (UnicodeEncodeError, h11.LocalProtocolError) as exc:
                logger.error(
                    "the response to %s %s has a header that cannot be sent (%s); answering 500",
                    request.method,
                    request.raw_path,
                    exc,
                )
                if isinstance(response, StreamingResponse):
                    await _close_unstarted(response.content)
                response = PlainTextResponse("Internal Server Error", 500)
                head = self._head(500, response.raw_headers(), close)
            self.log_access(request, response.status_code)
            await self._send_raw(head)
            if isinstance(response, StreamingResponse):
                await self._send_streamed(response)
                return
            if self._method != b"HEAD" and response.body:
                await self._send_body_part(response.body)  # dropped if it stalls (write_timeout)
            await self._send_raw(h11.EndOfMessage())
        except BaseException:
            if isinstance(response, StreamingResponse):
                await _close_unstarted(response.content)  # a no-op for a body already closed
            raise

    async def _send_streamed(self, response: StreamingResponse) -> None:
        """After the head: the streamed body (none for HEAD) and its end.

        A body that disagrees with its ``content-length`` is logged and the connection
        aborted: the client sees a cut-off body, never a desynchronized connection.
        """
        if self._method != b"HEAD":
            await self._stream_body(response.content, response.encode, response.keepalive)
        else:
            await _close_unstarted(response.content)
        try:
            end = self._body_end()
        except BodyLengthError as exc:
            self._fail_body_length(exc)
            raise _ConnectionGone from None
        await self._send_bounded(end)

    async def _stream_simple(
        self, request: Request, response: StreamingResponse, close: bool
    ) -> bool:
        """Stream the answer to a simple exchange without h11; False: h11 must write it."""
        simple = self._simple
        assert simple is not None
        status = response.status_code
        try:
            fields = self._fields(response.raw_headers(), close)
        except UnicodeEncodeError:
            return False  # h11's path answers 500
        written = streamed_response_head(
            status,
            reason_phrase(status),
            fields,
            head_request=self._method == b"HEAD",
            keep_alive=simple.keep_alive,
            http_version=simple.http_version,
        )
        if written is None:
            return False
        head, self._framing, goes_on = written
        self._simple = None
        self.log_access(request, status)
        try:
            await self._send_bounded(head)
            await self._send_streamed(response)
        finally:
            self._framing = None
        self._goes_on = goes_on
        return True

    def _body_end(self) -> bytes:
        """The bytes that end a streamed body.

        Raises:
            BodyLengthError: the body is shorter than its ``content-length``.
        """
        if self._framing is not None:
            return self._framing.end()
        try:
            return self.protocol.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            raise BodyLengthError("the body ended before its content-length") from None

    def _fail_body_length(self, error: BodyLengthError) -> None:
        if self._shutting_down:  # shutdown stopped a body that had a length: expected
            logger.info("shutdown cut off a response body to %s", self.peer_label)
        else:
            logger.error(
                "a streamed response body to %s is cut off: %s; dropping the connection",
                self.peer_label,
                error,
            )
        self.transport.abort()

    async def _send_simple(self, request: Request, response: Response, close: bool) -> bool:
        """Answer a simple exchange without h11; False when h11 must write this response."""
        simple = self._simple
        assert simple is not None
        status = response.status_code
        try:
            fields = self._fields(response.raw_headers(), close)
        except UnicodeEncodeError:
            return False  # h11's path answers 500
        written = simple_response(
            status,
            reason_phrase(status),
            fields,
            response.body,
            head_request=self._method == b"HEAD",
            keep_alive=simple.keep_alive,
        )
        if written is None:
            return False
        data, self._goes_on = written
        self._simple = None
        self.log_access(request, status)
        await self._send_bounded(data)
        return True

    def _settle_body(self, body: _RequestBody, request: Request, response: Response) -> bool:
        """Before a response head, with the request body unfinished: True to close after it.

        A whole response ends the handler's use of the body: what is buffered is dropped. A
        streamed one may still read it; a 2xx one gets the ``100 Continue`` the client may
        wait for, so that an upload echo can go on.
        """
        if isinstance(response, StreamingResponse) and self._method != b"HEAD":
            if body.expects_continue and 200 <= response.status_code < 300:
                try:
                    body.send_continue()
                except ClientDisconnected:
                    pass  # the body failed: this response closes (or fails to go out)
        else:
            body.discard_buffered()
        return not body.can_keep_alive()

    async def _stream_body(
        self,
        content: AsyncIterable[Any] | Iterable[Any],
        encode: Callable[[Any], bytes],
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
        gone = failed = False
        activity = [0]  # odd while a chunk is being written; changes with every chunk
        live = True
        transport = self.transport

        def write_now(data: bytes) -> bool:
            # Called from another task (a publisher): write only when nothing of this body
            # is in flight and the kernel takes the bytes at once, else the chunk is queued
            # for the loop below, which keeps the order and the write_timeout bound.
            if not live or activity[0] % 2 or self._shutting_down or not transport.writable:
                return False
            try:
                if self._framing is not None:
                    framed = self._framing.data(data)
                else:
                    framed = self.protocol.send(h11.Data(data=data)) or b""
                transport.write(framed)
            except (BodyLengthError, h11.LocalProtocolError, TransportClosed):
                return False
            activity[0] += 2
            return True

        sendfile_state = ["on"]  # "off" once a part was slow or sendfile is unavailable

        async def sendfile(file: IO[bytes], offset: int, count: int) -> int | None:
            # Called by the body between its chunks (nothing else of it is in flight). None:
            # the body reads and yields these bytes instead.
            framing = self._framing
            if sendfile_state[0] == "off" or framing is None or not framing.takes_as_is(count):
                return None
            bound = self._config.write_timeout
            started = transport.time()
            activity[0] += 1
            try:
                with anyio.move_on_after(bound) as scope:
                    sent = await transport.sendfile(file, offset, count)
            except SendfileUnavailable:
                sendfile_state[0] = "off"
                return None
            except TransportClosed:
                raise _ConnectionGone from None
            except BaseException:
                transport.abort()  # cancelled (shutdown, the client left): an unknown part went
                raise
            finally:
                activity[0] += 1
            if scope.cancelled_caught:
                logger.info(
                    "response to %s stalled for %.0f s; dropping the connection",
                    self.peer_label,
                    bound,
                )
                transport.abort()
                raise _ConnectionGone
            framing.sent_as_is(sent)
            if transport.time() - started > bound / 8:
                # A slow reader: a slice cannot tell progress from a stall, a write can.
                sendfile_state[0] = "off"
            return sent

        attach_writer = getattr(content, "attach_writer", None)
        if attach_writer is not None:
            attach_writer(write_now)
        attach_sendfile = getattr(content, "attach_sendfile", None)
        if attach_sendfile is not None:
            attach_sendfile(sendfile)
        chunks = _chunks(content)
        try:
            async with anyio.create_task_group() as task_group:
                self._streaming = task_group.cancel_scope
                if self._shutting_down:
                    task_group.cancel_scope.cancel()

                async def watch() -> None:
                    nonlocal gone
                    if await self._watch_departure().wait():
                        gone = True
                        task_group.cancel_scope.cancel()

                task_group.start_soon(watch)
                if keepalive is not None:
                    task_group.start_soon(self._keep_alive, keepalive, activity)
                try:
                    async for chunk in chunks:
                        data = encode(chunk)
                        if data:
                            activity[0] += 1
                            await self._send_body_part(data)
                            activity[0] += 1
                except _ConnectionGone:
                    gone = True
                except BodyLengthError as exc:
                    self._fail_body_length(exc)
                    failed = True
                except Exception as exc:
                    body = self._request_body
                    if body is None or exc is not body.error:  # else logged by the body
                        logger.exception("a streamed response body to %s raised", self.peer_label)
                    failed = True
                task_group.cancel_scope.cancel()  # done: stop watching
        finally:
            live = False
            self._streaming = None
            if attach_writer is not None:
                attach_writer(None)
            if attach_sendfile is not None:
                attach_sendfile(None)
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(self._cleanup_bound()):
                    await aclose()
        if failed:
            self.transport.abort()  # the body is cut short: the client must not take it whole
        if gone or failed:
            raise _ConnectionGone

    def _cleanup_bound(self) -> float:
        """Seconds a streamed body's generator may take to close.

        ``write_timeout``, and no more than what is left of ``shutdown_timeout`` once
        shutdown began.
        """
        bound = self._config.write_timeout
        if self._shutting_down:
            bound = min(bound, max(0.0, self._shutdown_deadline - self.transport.time()))
        return bound

    async def _keep_alive(self, keepalive: tuple[float, bytes], activity: list[int]) -> None:
        """Write ``keepalive[1]`` every ``keepalive[0]`` seconds in which no chunk went out."""
        interval, filler = keepalive
        seen = activity[0]
        while True:
            await anyio.sleep(interval)
            if activity[0] == seen and not seen % 2:  # silent, and not in a write
                try:
                    await self._send_body_part(filler)
                except (_ConnectionGone, BodyLengthError):
                    return  # the chunk loop meets the same end
            seen = activity[0]

    def _watch_departure(self) -> DepartureWatch:
        """The current exchange's departure watch (made on the first call)."""
        watch = self._departure
        if watch is None:
            body = self._request_body
            watch = self._departure = DepartureWatch(
                self.transport.receive,
                self._keep_read_ahead,
                self._config.max_header_bytes,
                body.wait_settled if body is not None else None,
            )
        return watch

    def _keep_read_ahead(self, data: bytes) -> None:
        """Bytes read while a request is served: a pipelined request, read after it."""
        if self._h11 is None:
            self._inbox += data
        else:
            self._h11.receive_data(data)

    async def wait_departure(self, exchange: int) -> bool:
        """Wait until the client of exchange ``exchange`` leaves (True) or it ends (False).

        See :meth:`spikard.requests.Request.wait_disconnected`.
        """
        if exchange != self._exchange:
            return False  # that exchange is over
        return await self._watch_departure().wait()

    async def _send_body_part(self, data: bytes) -> None:
        """Write one chunk; abort when the client takes no bytes for ``write_timeout``.

        Raises:
            BodyLengthError: the body outgrew its ``content-length`` (nothing was sent).
        """
        framing = self._framing
        if framing is not None:
            await self._send_bounded(framing.data(data))
            return
        try:
            data = self.protocol.send(h11.Data(data=data)) or b""
        except h11.LocalProtocolError:
            raise BodyLengthError("the body is longer than its content-length") from None
        await self._send_bounded(data)

    async def _send_bounded(self, data: bytes) -> None:
        """Write ``data``; abort when the client takes no bytes for ``write_timeout``."""
        transport = self.transport
        try:
            transport.write(data)
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
        """The response head: the status line's reason, and :meth:`_fields`.

        Raises:
            h11.LocalProtocolError: a header h11 will not send.
        """
        fields = self._fields(headers, close)
        return h11.Response(status_code=status, headers=fields, reason=reason_phrase(status))

    def _fields(self, headers: list[tuple[bytes, bytes]], close: bool) -> list[tuple[bytes, bytes]]:
        """``headers`` with ``Date``, ``Server`` if configured, ``connection: close`` last."""
        names = {name.lower() for name, _ in headers}
        if b"date" not in names:
            headers.append((b"date", _DATE.value()))
        server = self._config.server_header
        if server is not None and b"server" not in names:
            headers.append((b"server", server.encode("latin-1")))
        if close:
            headers.append((b"connection", b"close"))
        return headers

    async def _send_error(self, status: int, text: str) -> None:
        """Answer with ``status`` and close; after an early error, linger (see HTTPConfig)."""
        if self._take_h11().our_state not in (h11.IDLE, h11.SEND_RESPONSE):
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
        if status in _LINGER_AFTER and self.protocol.their_state is not h11.DONE:
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
        data = self.protocol.send(event)
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
            query_string = request.query_string
            query = (
                f"?{redact_query(query_string, self._config.redacted_query_params)}"
                if query_string
                else ""
            )
            client = request.client
            access_logger.info(
                '%s - "%s %s%s HTTP/%s" %d',
                self.peer_label
                if client is None or client == self._client
                else _address_label(client),
                method,
                request.raw_path,
                query,
                request.http_version,
                status,
            )


def _address_label(address: Address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


_H11Event = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]


class _RequestBody:
    """The body of the request being served, read from the connection as the handler pulls.

    The request's :class:`~spikard.requests.BodySource`. Until :attr:`finished` it is the
    only reader of the socket (see the module docs). Bytes h11 already holds are taken without
    I/O; more are read only by :meth:`read` (and :meth:`drain`), one socket read at a time.

    Args:
        connection: the connection the request came on.
        length: the ``Content-Length``; None for a chunked body.
    """

    __slots__ = (
        "_chunks",
        "_connection",
        "_eof",
        "_finished_event",
        "_length",
        "_limit",
        "_reading",
        "_received",
        "_started",
        "_taken",
        "closed",
        "ended",
        "error",
    )

    def __init__(self, connection: HTTPConnection, length: int | None) -> None:
        self._connection = connection
        self._length = length
        self._chunks: deque[bytes] = deque()
        """Bytes taken from h11 before the handler asked for them."""
        self._taken = 0
        """Body bytes taken from h11 so far (read, buffered here or dropped)."""
        self._received = 0
        """Body bytes handed to the handler so far."""
        self._limit = 0
        self._started = False
        self._reading = False
        self._eof = False
        self._finished_event: anyio.Event | None = None
        self.ended = False
        """h11 delivered the end of the body: the connection may read the next request."""
        self.error: Exception | None = None
        """The failure every read raises once the body failed (logged once)."""
        self.closed = False
        """The response ended the handler's use of the body: reads are a bug from now on."""

    # ---- state -------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """The body ended or failed: nothing more of it will be read from the socket."""
        return self.ended or self.error is not None

    @property
    def lingers(self) -> bool:
        """Whether closing should linger: the client may still be sending the body."""
        return not isinstance(self.error, BodyTimeout | ClientDisconnected)

    @property
    def expects_continue(self) -> bool:
        """The client waits for ``100 Continue`` before it sends the body."""
        return self.error is None and self._connection.protocol.they_are_waiting_for_100_continue

    def can_keep_alive(self) -> bool:
        """Whether the connection may serve another request after this one's response.

        Only when the body ended, or a small ``Content-Length`` rest can be dropped (and the
        client is not waiting for a ``100 Continue`` it will not get).
        """
        if self.error is not None:
            return False
        if self.ended:
            return True
        if self._length is None or self.expects_continue:
            return False
        return self._length - self._taken <= _DRAIN_BYTES

    async def wait_finished(self) -> bool:
        """Wait until the body ended or failed; True when the client left meanwhile."""
        if not self.finished:
            if self._finished_event is None:
                self._finished_event = anyio.Event()
            await self._finished_event.wait()
        return isinstance(self.error, ClientDisconnected)

    async def wait_settled(self) -> bool | None:
        """Wait until the body ended (False), failed (None) or the client left (True)."""
        if await self.wait_finished():
            return True
        return None if self.error is not None else False

    # ---- reading (the BodySource) --------------------------------------------------------

    async def read(self, max_body_size: int) -> bytes:
        """The next bytes, ``b""`` at the end; see :class:`~spikard.requests.BodySource`."""
        if self.error is not None:
            raise self.error
        if self.closed:
            raise RuntimeError(
                "the response to this request was sent: its body can no longer be read"
            )
        if not self._started:
            self._started = True
            self._limit = max_body_size
            if self._length is not None and self._length > max_body_size:
                self._chunks.clear()
                raise self._fail(
                    ContentTooLarge(max_body_size),
                    "request body from %s announces %d bytes, over max_body_size (%d)",
                    self._length,
                    max_body_size,
                )
        if self._chunks:
            return self._count(self._chunks.popleft())
        if self.ended:
            return b""
        if self._reading:
            raise RuntimeError("the request body is being read by another task")
        self._reading = True
        try:
            while True:
                event = self._next_event()
                if type(event) is h11.Data:
                    if event.data:
                        return self._count(bytes(event.data))
                elif event is h11.NEED_DATA:
                    await self._receive()
                else:
                    return b""  # EndOfMessage
        finally:
            self._reading = False

    def take(self, event: _H11Event) -> None:
        """Keep ``event`` (h11's first after the head) and what h11 holds after it, no I/O.

        Raises:
            h11.RemoteProtocolError: malformed framing among those bytes.
        """
        h11_connection = self._connection.protocol
        while type(event) is h11.Data:
            if event.data:
                self._taken += len(event.data)
                self._chunks.append(bytes(event.data))
            event = h11_connection.next_event()
        if type(event) is h11.EndOfMessage:
            self._end()

    def _count(self, chunk: bytes) -> bytes:
        """Hand ``chunk`` to the handler; a chunked body over the limit fails instead."""
        self._received += len(chunk)
        if self._length is None and self._received > self._limit:
            raise self._fail(
                ContentTooLarge(self._limit),
                "chunked request body from %s went over max_body_size (%d)",
                self._limit,
            )
        return chunk

    def _next_event(self, *, quiet: bool = False) -> _H11Event:
        """h11's next body event; a framing error or an early EOF fails the body.

        ``quiet``: the handler is done with the body, so an early EOF is not worth a line.
        """
        try:
            event = self._connection.protocol.next_event()
        except h11.RemoteProtocolError as exc:
            if self._eof:
                detail = "client %s left before the request body ended"
                raise self._fail(ClientDisconnected(), None if quiet else detail) from None
            raise self._fail(
                InvalidBody(f"Bad Request: malformed request body: {exc}"),
                "bad request from %s: %s",
                exc,
            ) from None
        if type(event) is h11.Data:
            self._taken += len(event.data)
        elif type(event) is h11.EndOfMessage:
            self._end()
        return event

    async def _receive(self) -> None:
        """Read once from the socket into h11, within ``body_timeout``.

        The ``100 Continue`` the client may wait for goes out first (it is written whole,
        never awaited: it cannot stall).
        """
        connection = self._connection
        if connection.protocol.they_are_waiting_for_100_continue:
            self.send_continue()
        timeout = connection._config.body_timeout
        data = None
        with anyio.move_on_after(timeout):
            data = await connection.transport.receive(_READ_SIZE)
        if data is None:
            raise self._fail(
                BodyTimeout(timeout),
                "request body from %s stalled for %g s",
                timeout,
            )
        if not data:
            self._eof = True
        connection.protocol.receive_data(data)

    def send_continue(self) -> None:
        """Write ``100 Continue`` now (the client then sends the body)."""
        connection = self._connection
        try:
            connection.transport.write(
                connection.protocol.send(
                    h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                )
                or b""
            )
        except TransportClosed:
            self._eof = True
            raise self._fail(
                ClientDisconnected(), "client %s left before the request body ended"
            ) from None

    # ---- after the response ------------------------------------------------------------------

    def discard_buffered(self) -> None:
        """The handler is done with the body: drop what it left and what h11 holds (no I/O)."""
        self.closed = True
        self._chunks.clear()
        try:
            while not self.finished:
                if self._next_event(quiet=True) is h11.NEED_DATA:
                    return
        except Exception:
            return  # failed (and logged): the response closes the connection

    async def drain(self) -> bool:
        """Read and drop the rest of the body: True when it ended within the bounds.

        Bounded by :data:`_DRAIN_BYTES` and ``linger_timeout``; the caller closes the
        connection when it returns False.
        """
        self.closed = True
        self._chunks.clear()
        connection = self._connection
        budget = _DRAIN_BYTES
        with move_on_after(connection._config.linger_timeout, connection.transport.loop):
            while not self.finished:
                try:
                    event = self._next_event(quiet=True)
                except Exception:
                    return False
                if type(event) is h11.Data:
                    budget -= len(event.data)
                    if budget < 0:
                        return False
                elif event is h11.NEED_DATA:
                    data = await connection.transport.receive(_READ_SIZE)
                    if not data:
                        return False
                    connection.protocol.receive_data(data)
        return self.ended

    # ---- ending --------------------------------------------------------------------------

    def _end(self) -> None:
        self.ended = True
        self._wake()

    def _fail(self, error: Exception, message: str | None, *args: object) -> Exception:
        """Record ``error`` as the body's end and log ``message`` (once: a body fails once)."""
        if self.error is None:
            self.error = error
            if message is not None:
                logger.info(message, self._connection.peer_label, *args)
            self._wake()
        return self.error

    def _wake(self) -> None:
        event, self._finished_event = self._finished_event, None
        if event is not None:
            event.set()
