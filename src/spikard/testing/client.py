"""Clients for :meth:`Spikard.test_server`: a WebSocket and plain HTTP requests, on any backend.

They run on anyio with h11 and wsproto (what spikard itself is built on), so a user's tests
work the same on asyncio and trio and need no other client library::

    async with app.test_server() as server:
        async with server.connect("/chat?name=a") as ws:
            await ws.send_json({"type": "say", "text": "hi"})
            assert (await ws.receive_json())["text"] == "hi"
        reply = await server.request("GET", "/items/1")
        assert reply.status == 200 and reply.json() == {"id": 1}

Every wait is bounded by the client's ``timeout`` (seconds, default 10): a test that expects a
message the server never sends fails with :class:`TimeoutError` instead of hanging.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import anyio.streams.tls
import h11
import wsproto
import wsproto.events as ws_events

from ..datastructures import Headers
from ..errors import ConnectionClosedError, ConnectionClosedOK, HandshakeRejected
from ..messages import CloseCode, WebSocketMessage

__all__ = ["TestResponse", "TestWebSocket", "open_stream", "open_websocket", "send_request"]

_READ = 65536
HeaderPairs = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(headers: HeaderPairs | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _client_context(secure: bool, context: ssl.SSLContext | None) -> ssl.SSLContext | None:
    if not secure:
        return None
    if context is not None:
        return context
    # A test server's certificate is the test's own: accept it unverified unless told.
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    return unverified


async def open_stream(
    host: str,
    port: int,
    secure: bool,
    context: ssl.SSLContext | None = None,
    local_host: str | None = None,
) -> anyio.abc.ByteStream:
    """A TCP connection to the test server, wrapped in TLS when it serves TLS.

    ``local_host`` binds the client's end (``"127.0.0.2"``: another client address on
    loopback, for per-client limits and proxies).
    """
    stream: anyio.abc.ByteStream = await anyio.connect_tcp(host, port, local_host=local_host)
    tls = _client_context(secure, context)
    if tls is not None:
        stream = await anyio.streams.tls.TLSStream.wrap(
            stream, server_side=False, hostname=host, ssl_context=tls, standard_compatible=False
        )
    return stream


@dataclass(frozen=True, slots=True)
class TestResponse:
    """An HTTP response as a test sees it."""

    __test__ = False

    status: int
    headers: Headers
    body: bytes
    reason: str = ""

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (undecodable bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


async def send_request(
    stream: anyio.abc.ByteStream,
    host: str,
    method: str,
    path: str,
    *,
    headers: HeaderPairs | None = None,
    body: bytes | str | None = None,
    json_body: Any = None,
    timeout: float = 10.0,
) -> TestResponse:
    """Send one request on ``stream`` and read the whole response (``Connection: close``)."""
    pairs = _pairs(headers)
    names = {name.lower() for name, _ in pairs}
    if json_body is not None:
        if body is not None:
            raise ValueError("give body or json, not both")
        body = json.dumps(json_body, separators=(",", ":"))
        if "content-type" not in names:
            pairs.append(("content-type", "application/json"))
    data = body.encode() if isinstance(body, str) else body
    if "host" not in names:
        pairs.insert(0, ("host", host))
    if "connection" not in names:
        pairs.append(("connection", "close"))
    if data is not None and "content-length" not in names and "transfer-encoding" not in names:
        pairs.append(("content-length", str(len(data))))
    client = h11.Connection(h11.CLIENT)
    with anyio.fail_after(timeout):
        await stream.send(client.send(h11.Request(method=method, target=path, headers=pairs)))
        if data:
            await stream.send(client.send(h11.Data(data=data)))
        await stream.send(client.send(h11.EndOfMessage()))
        response: h11.Response | None = None
        chunks: list[bytes] = []
        while True:
            event = client.next_event()
            if event is h11.NEED_DATA:
                try:
                    received = await stream.receive(_READ)
                except anyio.EndOfStream:
                    received = b""
                client.receive_data(received)
                continue
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
    if response is None:
        raise ConnectionError(f"the server closed the connection without answering {path}")
    return TestResponse(
        response.status_code,
        Headers([(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers]),
        b"".join(chunks),
        response.reason.decode("latin-1"),
    )


class TestWebSocket:
    """A WebSocket client connection to a test server (see :func:`open_websocket`).

    One task at a time may receive; sends may come from any task.
    """

    __test__ = False

    def __init__(self, stream: anyio.abc.ByteStream, timeout: float) -> None:
        self._stream = stream
        self._protocol = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._timeout = timeout
        self._pending: list[WebSocketMessage] = []
        self._text: list[str] = []
        self._binary: list[bytes] = []
        self._send_lock = anyio.Lock()
        self._closed = False
        self.close_code: int | None = None
        """The close code once the connection closed (1006 when it was dropped)."""
        self.close_reason: str | None = None
        self.subprotocol: str | None = None
        """The subprotocol the server chose."""
        self.response_headers: Headers = Headers([])
        """The headers of the 101 response."""

    async def _handshake(
        self, host: str, path: str, subprotocols: Iterable[str], headers: HeaderPairs | None
    ) -> None:
        request = ws_events.Request(
            host=host,
            target=path,
            subprotocols=list(subprotocols),
            extra_headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in _pairs(headers)],
        )
        await self._stream.send(self._protocol.send(request))
        status: int | None = None
        reject_headers: list[tuple[str, str]] = []
        body = bytearray()
        while True:
            for event in self._protocol.events():
                if isinstance(event, ws_events.AcceptConnection):
                    self.subprotocol = event.subprotocol
                    self.response_headers = Headers(
                        [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.extra_headers]
                    )
                    return
                if isinstance(event, ws_events.RejectConnection):
                    status = event.status_code
                    reject_headers = [
                        (k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers
                    ]
                    if not event.has_body:
                        raise HandshakeRejected(status, b"", dict(reject_headers))
                elif isinstance(event, ws_events.RejectData):
                    body += event.data
                    if event.body_finished:
                        raise HandshakeRejected(status or 0, bytes(body), dict(reject_headers))
            if not await self._read():
                raise HandshakeRejected(status or 0, bytes(body), dict(reject_headers))

    async def _read(self) -> bool:
        """Feed one read to the protocol; False at the end of the input."""
        try:
            data = await self._stream.receive(_READ)
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            self._protocol.receive_data(None)
            return False
        self._protocol.receive_data(data)
        return True

    async def _write(self, event: ws_events.Event) -> None:
        async with self._send_lock:
            try:
                data = self._protocol.send(event)
            except wsproto.utilities.LocalProtocolError as exc:
                raise self._closed_error() from exc
            try:
                await self._stream.send(data)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
                raise self._closed_error() from None

    def _closed_error(self) -> ConnectionClosedOK | ConnectionClosedError:
        code = self.close_code if self.close_code is not None else CloseCode.ABNORMAL_CLOSURE
        reason = self.close_reason or ""
        if code in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY):
            return ConnectionClosedOK(code, reason)
        return ConnectionClosedError(code, reason)

    async def _next_message(self) -> WebSocketMessage | None:
        """The next message, answering pings and closes on the way; None once closed."""
        while not self._pending:
            if self._closed:
                return None
            for event in self._protocol.events():
                await self._handle(event)
            if self._pending or self._closed:
                continue
            if not await self._read():
                for event in self._protocol.events():
                    await self._handle(event)
                if not self._closed:
                    self._gone()
        return self._pending.pop(0)

    def _gone(self) -> None:
        self._closed = True
        if self.close_code is None:
            self.close_code = CloseCode.ABNORMAL_CLOSURE
            self.close_reason = ""

    async def _handle(self, event: ws_events.Event) -> None:
        if isinstance(event, ws_events.TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                self._pending.append(WebSocketMessage.text("".join(self._text)))
                self._text.clear()
        elif isinstance(event, ws_events.BytesMessage):
            self._binary.append(bytes(event.data))
            if event.message_finished:
                self._pending.append(WebSocketMessage.binary(b"".join(self._binary)))
                self._binary.clear()
        elif isinstance(event, ws_events.Ping):
            try:
                await self._write(event.response())
            except (ConnectionClosedOK, ConnectionClosedError):
                pass
        elif isinstance(event, ws_events.CloseConnection):
            self.close_code = event.code
            self.close_reason = event.reason or ""
            if self._protocol.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                try:
                    await self._write(event.response())
                except (ConnectionClosedOK, ConnectionClosedError):
                    pass
            self._closed = True

    async def receive(self) -> WebSocketMessage:
        """The next message.

        Raises:
            ConnectionClosed: the connection closed (``close_code`` says how).
            TimeoutError: nothing arrived within the client's timeout.
        """
        with anyio.fail_after(self._timeout):
            message = await self._next_message()
        if message is None:
            raise self._closed_error()
        return message

    async def receive_text(self) -> str:
        """The next message, which must be text."""
        message = await self.receive()
        text = message.as_text()
        if text is None:
            raise TypeError("expected a text message, got a binary one")
        return text

    async def receive_bytes(self) -> bytes:
        """The next message, which must be binary."""
        message = await self.receive()
        if message.as_text() is not None:
            raise TypeError("expected a binary message, got a text one")
        return bytes(message.as_binary() or b"")

    async def receive_json(self) -> Any:
        """The next message, parsed as JSON (text or UTF-8 binary)."""
        message = await self.receive()
        text = message.as_text()
        return json.loads(text if text is not None else (message.as_binary() or b""))

    def __aiter__(self) -> AsyncIterator[WebSocketMessage]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[WebSocketMessage]:
        while True:
            with anyio.fail_after(self._timeout):
                message = await self._next_message()
            if message is None:
                return
            yield message

    async def send(self, message: str | bytes | WebSocketMessage) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        if isinstance(message, WebSocketMessage):
            text = message.as_text()
            payload: str | bytes = text if text is not None else (message.as_binary() or b"")
        else:
            payload = message
        with anyio.fail_after(self._timeout):
            if isinstance(payload, str):
                await self._write(ws_events.TextMessage(data=payload))
            else:
                await self._write(ws_events.BytesMessage(data=bytes(payload)))

    async def send_json(self, value: Any) -> None:
        """Send ``value`` as a JSON text message."""
        await self.send(json.dumps(value, separators=(",", ":")))

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Start the close handshake and wait (bounded) for the server's reply."""
        if not self._closed and self._protocol.state is wsproto.connection.ConnectionState.OPEN:
            try:
                with anyio.fail_after(self._timeout):
                    await self._write(ws_events.CloseConnection(code=code, reason=reason))
            except (ConnectionClosedOK, ConnectionClosedError):
                pass
        with anyio.move_on_after(self._timeout):
            while await self._next_message() is not None:
                pass  # messages after our close are dropped
        if self.close_code is None:
            self._gone()

    async def __aenter__(self) -> TestWebSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if not self._closed:
                await self.close()
        finally:
            await self._stream.aclose()


@asynccontextmanager
async def open_websocket(
    host: str,
    port: int,
    secure: bool,
    path: str,
    *,
    subprotocols: Iterable[str] = (),
    headers: HeaderPairs | None = None,
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
    local_host: str | None = None,
) -> AsyncIterator[TestWebSocket]:
    """Open a WebSocket to ``path`` (with its query string); close it when the block ends.

    Raises:
        HandshakeRejected: the server answered the handshake with HTTP (``status_code``,
            ``body``, ``headers`` say how).
    """
    if not path.startswith("/"):
        path = "/" + path
    target = urlsplit(path)
    request_target = target.path + (f"?{target.query}" if target.query else "")
    with anyio.fail_after(timeout):
        stream = await open_stream(host, port, secure, ssl_context, local_host)
    socket = TestWebSocket(stream, timeout)
    try:
        with anyio.fail_after(timeout):
            await socket._handshake(f"{host}:{port}", request_target, subprotocols, headers)
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise
    async with socket:
        yield socket
