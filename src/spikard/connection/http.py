"""The HTTP/1.1 side of a connection: requests in, responses out, keep-alive, the upgrade.

One :class:`HTTPConnection` serves one accepted socket. It reads requests with h11 (bounded
head size and count, bounded body, timeouts), hands each to the application's
:data:`RequestHandler`, and writes the response. A WebSocket upgrade request comes with a
:class:`WebSocketUpgrade`: the application accepts it (the 101 is written, and the bytes that
arrived after the request go to the WebSocket protocol, none lost) or rejects it with an HTTP
response. Malformed requests get 400, oversized heads 431, oversized bodies 413; none of them
ever raises out of :meth:`HTTPConnection.serve`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Protocol

import anyio
import anyio.abc
import h11
from wsproto.extensions import Extension

from ..config import HTTPConfig, WebSocketConfig
from ..datastructures import Address, Headers
from ..errors import HandshakeRejected
from ..protocol.deflate import negotiate_deflate
from ..protocol.handshake import (
    HandshakeOffer,
    accept_response,
    check_origin,
    is_websocket_upgrade,
    normalize_origin,
    read_offer,
)
from ..protocol.websocket import WebSocketProtocol
from ..requests import Request
from ..responses import PlainTextResponse, Response
from .deadline import Deadline, move_on_after
from .driver import WebSocketConnection
from .heartbeat import Heartbeat
from .transport import (
    DepartureWatch,
    close_now,
    direct_reader,
    direct_writer,
    event_loop_of,
    pause_unrequested_reads,
    release_protocol_hooks,
    watch_departure,
)

__all__ = ["HTTPConnection", "RequestHandler", "TaskStarter", "WebSocketUpgrade"]

logger = logging.getLogger("spikard.http")
access_logger = logging.getLogger("spikard.access")

_READ_SIZE = 65536
_TRANSPORT_ERRORS = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class TaskStarter(Protocol):
    """Where a WebSocket session starts its helper tasks (an anyio task group, or alike)."""

    def start_soon(
        self, func: Callable[..., Coroutine[Any, Any, Any]], /, *args: Any, name: object = None
    ) -> object:
        """Run ``func(*args)`` concurrently."""


class _ConnectionGone(Exception):
    """The peer went away or timed out; stop serving this connection quietly."""


class WebSocketUpgrade:
    """A pending WebSocket handshake: accept it once, or reject it with HTTP.

    Attributes:
        offer: what the client's handshake offered (key, subprotocols, extensions).
        accepted: True once the 101 went out.
    """

    __slots__ = (
        "_answered",
        "_departure",
        "_early_data",
        "_going_away",
        "_going_away_requested",
        "_owner",
        "_request",
        "_watch_done",
        "_watch_scope",
        "accepted",
        "connection",
        "offer",
        "peer_gone",
        "rejected",
    )

    def __init__(self, owner: HTTPConnection, request: Request, offer: HandshakeOffer) -> None:
        self.offer = offer
        self.accepted = False
        self.rejected = False
        self.connection: WebSocketConnection | None = None
        self._owner = owner
        self._request = request
        self._going_away: Callable[[], Coroutine[Any, Any, None]] | None = None
        self.peer_gone = False
        """True when the client left before the handshake was answered."""
        self._going_away_requested = False
        self._answered = False
        self._departure: DepartureWatch | None = None
        self._early_data = bytearray()
        self._watch_scope: anyio.CancelScope | None = None
        self._watch_done: anyio.Event | None = None

    def watch_for_departure(self, on_gone: Callable[[], None], task_group: TaskStarter) -> None:
        """Until the handshake is answered, notice a client that leaves and call ``on_gone``.

        Bytes that arrive meanwhile are kept for the WebSocket protocol. On asyncio the
        transport reports the departure; elsewhere a task in ``task_group`` reads.
        """

        def gone() -> None:
            self.peer_gone = True
            on_gone()

        reader = self._owner.reader
        if reader is not None:
            self._departure = watch_departure(reader, gone)
        else:
            self._watch_scope = anyio.CancelScope()
            self._watch_done = anyio.Event()
            task_group.start_soon(self._watch_by_reading, gone)

    async def _watch_by_reading(self, gone: Callable[[], None]) -> None:
        assert self._watch_scope is not None
        assert self._watch_done is not None
        limit = self._owner.websocket_config.max_message_size + _READ_SIZE
        try:
            if self._answered:
                return  # the handshake was answered before this task started
            with self._watch_scope:
                try:
                    while len(self._early_data) < limit:
                        self._early_data += await self._owner.stream.receive(_READ_SIZE)
                    await anyio.sleep_forever()
                except (anyio.EndOfStream, *_TRANSPORT_ERRORS):
                    gone()
        finally:
            self._watch_done.set()

    async def _stop_watching(self) -> None:
        self._answered = True
        if self._departure is not None:
            self._departure.stop()
        elif self._watch_scope is not None and self._watch_done is not None:
            self._watch_scope.cancel()
            await self._watch_done.wait()

    @property
    def websocket_config(self) -> WebSocketConfig:
        """The limits that apply to the WebSocket once accepted."""
        return self._owner.websocket_config

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio event loop the connection runs on; None elsewhere (trio, TLS)."""
        return self._owner.event_loop

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> WebSocketConnection:
        """Send ``101 Switching Protocols`` and return the open connection.

        Raises:
            RuntimeError: the handshake was already answered.
            ValueError: ``subprotocol`` was not offered by the client.
        """
        if self.accepted or self.rejected:
            raise RuntimeError("the WebSocket handshake was already answered")
        await self._stop_watching()
        owner = self._owner
        config = owner.websocket_config
        extensions_header = None
        extensions: list[Extension] = []
        if config.permessage_deflate:
            negotiated = negotiate_deflate(self.offer.extensions, config.max_message_size)
            if negotiated is not None:
                extensions_header, deflate = negotiated
                extensions.append(deflate)
        response = accept_response(
            self.offer, subprotocol=subprotocol, extensions=extensions_header, headers=headers
        )
        trailing, _ = owner.h11.trailing_data
        owner.forget_http_parser()
        # A client that left before the 101 gets nothing more: not even replies to its frames.
        early = b"" if self.peer_gone else bytes(trailing) + bytes(self._early_data)
        protocol = WebSocketProtocol(
            max_message_size=config.max_message_size,
            max_frame_size=config.max_frame_size,
            extensions=extensions,
            trailing_data=early,
        )
        self.accepted = True
        label = f"{owner.peer_label} {self._request.raw_path}"
        self.connection = WebSocketConnection(
            owner.stream,
            protocol,
            config,
            label,
            heartbeat=owner.heartbeat,
            reader=owner.reader,
            writer=owner.writer,
        )
        if owner.reader is not None:
            owner.reader.set_high_water(4 * config.read_size)
        self._departure = None
        if self.peer_gone:
            protocol.receive_eof()
            return self.connection
        owner.log_access(self._request, 101)
        try:
            await owner.write(response)
        except _TRANSPORT_ERRORS:
            protocol.receive_eof()
        return self.connection

    async def reject(self, rejection: HandshakeRejected) -> None:
        """Answer the handshake with an HTTP error response instead of a WebSocket."""
        if self.accepted or self.rejected:
            raise RuntimeError("the WebSocket handshake was already answered")
        self.rejected = True
        await self._stop_watching()
        response = PlainTextResponse(rejection.body, rejection.status_code, rejection.headers)
        await self._owner.send_response(self._request, response)

    def on_going_away(
        self, callback: Callable[[], Coroutine[Any, Any, None]], task_group: TaskStarter
    ) -> None:
        """Register what to run when the server shuts down while this socket is open.

        If the shutdown already began, ``callback`` is started at once in ``task_group``.
        """
        self._going_away = callback
        if self._going_away_requested:
            task_group.start_soon(callback)

    def forget_going_away(self) -> None:
        """Drop the callback :meth:`on_going_away` registered (the session is over)."""
        self._going_away = None

    async def going_away(self) -> None:
        """Ask the socket to close with 1001 (server shutdown)."""
        self._going_away_requested = True
        if self._going_away is not None:
            await self._going_away()


RequestHandler = Callable[[Request, WebSocketUpgrade | None], Awaitable[Response | None]]
"""The application: answer a request, or run the WebSocket and return None."""


class WebSocketCounter:
    """Counts the WebSockets open on a server, across its connections."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = 0


class HTTPConnection:
    """Serve HTTP/1.1 requests on one byte stream until it closes.

    Args:
        stream: the accepted byte stream (closed by :meth:`serve` when done).
        handler: the application.
        config: HTTP limits and timers.
        websocket_config: WebSocket limits, for upgrades.
        client: the peer's address, if known.
        scheme: ``"http"`` or ``"https"``; WebSocket requests report ``ws``/``wss``.
        websockets: the server-wide count of open WebSockets, for ``max_connections``.
        heartbeat: the server's timer task for keepalive and idle timeouts.
    """

    __slots__ = (
        "_allowed_origins",
        "_client",
        "_config",
        "_handler",
        "_idle_scope",
        "_scheme",
        "_shutting_down",
        "_upgrade",
        "_websockets",
        "event_loop",
        "h11",
        "heartbeat",
        "peer_label",
        "reader",
        "stream",
        "websocket_config",
        "writer",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        handler: RequestHandler,
        config: HTTPConfig,
        websocket_config: WebSocketConfig,
        *,
        client: Address | None = None,
        scheme: str = "http",
        websockets: WebSocketCounter | None = None,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.stream = stream
        self.writer = direct_writer(stream)
        """Writes straight to the asyncio transport; None for other streams."""
        self.reader = direct_reader(stream, _READ_SIZE)
        """Reads straight from the asyncio transport (for HTTP, then the WebSocket); None for
        other streams, which are read through anyio and do not read ahead. HTTP reads ahead
        one read's worth; an accepted WebSocket four of its reads."""
        if self.reader is None:
            pause_unrequested_reads(stream)
        self.event_loop = event_loop_of(stream)
        self.heartbeat = heartbeat
        self._websockets = websockets or WebSocketCounter()
        origins = websocket_config.allowed_origins
        self._allowed_origins = (
            None if origins is None else frozenset(normalize_origin(o) for o in origins)
        )
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=config.max_header_bytes)
        self.websocket_config = websocket_config
        self.peer_label = f"{client.host}:{client.port}" if client else "-"
        self._handler = handler
        self._config = config
        self._client = client
        self._scheme = scheme
        self._upgrade: WebSocketUpgrade | None = None
        self._idle_scope: Deadline | None = None
        self._shutting_down = False

    async def serve(self) -> None:
        """Serve requests until the peer leaves, an error ends the connection, or shutdown."""
        try:
            await self._serve()
        except _ConnectionGone:
            pass
        finally:
            if not close_now(self.stream):
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
            if self.reader is not None:
                self.reader.redirect(None, None)
            release_protocol_hooks(self.stream)
            self._upgrade = None

    async def shutdown(self) -> None:
        """Stop after the current request; an open WebSocket is asked to close with 1001."""
        self._shutting_down = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self._upgrade is not None:
            await self._upgrade.going_away()

    async def _serve(self) -> None:
        first = True
        while not self._shutting_down:
            request = await self._read_request(first)
            if request is None:
                return
            first = False
            upgrade = None
            if is_websocket_upgrade(request.headers):
                request.scheme = "wss" if self._scheme == "https" else "ws"
                try:
                    offer = self._check_handshake(request)
                except HandshakeRejected as rejection:
                    refusal = PlainTextResponse(
                        rejection.body, rejection.status_code, rejection.headers
                    )
                    await self.send_response(request, refusal, close=True)
                    return
                upgrade = self._upgrade = WebSocketUpgrade(self, request, offer)
                self._websockets.open += 1
                try:
                    response = await self._handler(request, upgrade)
                finally:
                    self._websockets.open -= 1
            else:
                response = await self._handler(request, None)
            if upgrade is not None and (upgrade.accepted or upgrade.rejected or upgrade.peer_gone):
                return
            if response is None:
                response = Response(status_code=500)
            await self.send_response(request, response)
            if self.h11.our_state is not h11.DONE or self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()

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
            loop = self.event_loop
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
                    now = anyio.current_time() if loop is None else loop.time()
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
        try:
            data = await (self.reader or self.stream).receive(_READ_SIZE)
        except anyio.EndOfStream:
            data = b""
        except _TRANSPORT_ERRORS:
            raise _ConnectionGone from None
        self.h11.receive_data(data)

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
        """Write a whole response to ``request`` (no body for HEAD)."""
        headers = response.raw_headers()
        if close or self._shutting_down or is_websocket_upgrade(request.headers):
            headers.append((b"connection", b"close"))
        self.log_access(request, response.status_code)
        await self._send_raw(h11.Response(status_code=response.status_code, headers=headers))
        if request.method != "HEAD" and response.body:
            await self._send_raw(h11.Data(data=response.body))
        await self._send_raw(h11.EndOfMessage())

    async def _send_error(self, status: int, text: str) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = text.encode("utf-8", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            await self._send_raw(h11.Response(status_code=status, headers=headers))
            await self._send_raw(h11.Data(data=body))
            await self._send_raw(h11.EndOfMessage())
        except h11.LocalProtocolError:
            pass

    async def _send_raw(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            try:
                await self.write(data)
            except _TRANSPORT_ERRORS:
                raise _ConnectionGone from None

    def forget_http_parser(self) -> None:
        """Drop h11's state once the connection became a WebSocket (it reads no more HTTP).

        About 0.75 KiB per open WebSocket; any later use of :attr:`h11` is a bug, and fails.
        """
        del self.h11

    async def write(self, data: bytes) -> None:
        """Send ``data`` to the peer (straight to the transport on asyncio).

        Raises:
            anyio.BrokenResourceError: the connection is lost (or another transport error).
        """
        writer = self.writer
        if writer is None:
            await self.stream.send(data)
        elif writer.write(data):
            await writer.drain()

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
