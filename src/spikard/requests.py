"""The HTTP request a handler receives; a WebSocket's handshake is one too.

The body is not read before the handler runs: :meth:`Request.stream`, :meth:`Request.body`
(and ``text``, ``json``, ``form`` on top of it) pull it from the connection as they go, under
the request's :attr:`Request.max_body_size`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote

from .config import HTTPConfig
from .datastructures import Address, Headers, QueryParams
from .errors import InvalidBody

if TYPE_CHECKING:
    from .forms import FormData

__all__ = ["BodySource", "Request"]

_DEFAULT_MAX_BODY_SIZE = HTTPConfig().max_body_size
_DEFAULT_MAX_PART_SIZE = 1024 * 1024

# What the body has been read with so far (``Request._reader``).
_UNREAD, _BODY, _STREAM = 0, 1, 2


class BodySource(Protocol):
    """Where a request body comes from: the connection that received the request."""

    async def read(self, max_body_size: int) -> bytes:
        """Return the next bytes of the body, ``b""`` once it ended.

        Every call of one request passes the same ``max_body_size``; a body over it fails
        (a failed source raises the same error again on every later call).

        Raises:
            ContentTooLarge: the body is (or announces to be) over ``max_body_size``.
            BodyTimeout: no byte came for ``body_timeout`` seconds.
            ClientDisconnected: the client left before the body ended.
            InvalidBody: the body's framing is malformed (chunked encoding).
        """


def _split_absolute(target: str) -> tuple[str, str]:
    """The authority and path of an absolute-form target (``http://host:port/path``).

    The path is ``/`` if the target has none.
    """
    _, _, rest = target.partition("://")
    slash = rest.find("/")
    if slash < 0:
        return rest, "/"
    return rest[:slash], rest[slash:]


class DepartureSource(Protocol):
    """Who tells when a request's client leaves: the connection that received it."""

    async def wait_departure(self, exchange: int) -> bool:
        """Wait until the client of ``exchange`` leaves (True) or the exchange ends (False)."""


class Request:
    """An HTTP/1.1 request; its body is read when the handler asks for it.

    Attributes:
        method: the request method, upper case (``"GET"``).
        path: the percent-decoded path, without the query string.
        raw_path: the request target's path as sent, still percent-encoded.
        query_string: the raw query string, without ``?``.
        headers: case-insensitive, multi-value :class:`~spikard.datastructures.Headers`.
        client: the peer's address, or None when the transport has none.
        server: the address the client connected to (this server's end of the
            connection), or None when unknown.
        http_version: ``"1.1"`` or ``"1.0"``.
        path_params: the values captured by the route's ``{name}`` placeholders.

    Args:
        body: the whole body, for a request made by hand (tests); ignored with ``source``.
        source: where the body is read from (the server's connection).
        departures: who tells when the client leaves (the server's connection).
        exchange: the request's number on that connection.
        max_body_size: the initial :attr:`max_body_size`.
    """

    __slots__ = (
        "_body",
        "_cookies",
        "_departures",
        "_exchange",
        "_form",
        "_host",
        "_max_body_size",
        "_parts",
        "_query_params",
        "_reader",
        "_source",
        "client",
        "headers",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "raw_path",
        "scheme",
        "server",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        client: Address | None = None,
        server: Address | None = None,
        http_version: str = "1.1",
        scheme: str = "http",
        host: str | None = None,
        body: bytes = b"",
        source: BodySource | None = None,
        max_body_size: int = _DEFAULT_MAX_BODY_SIZE,
        departures: DepartureSource | None = None,
        exchange: int = 0,
    ) -> None:
        self.method = method
        raw_path, _, self.query_string = target.partition("?")
        if raw_path[:1] != "/" and "://" in raw_path:
            # absolute-form (RFC 9112 3.2.2): the target's authority is the host
            authority, raw_path = _split_absolute(raw_path)
            if host is None and authority:
                host = authority
        self.raw_path = raw_path
        self.path = unquote(raw_path)
        self.headers = headers
        self.client = client
        self.server = server
        self.http_version = http_version
        self.scheme = scheme
        self._host = host
        self.path_params: dict[str, Any] = {}
        # Invariant: _body is the whole body once known (from the start without a source).
        self._body: bytes | None = body if source is None else None
        self._source = source
        self._max_body_size = max_body_size
        self._departures = departures
        self._exchange = exchange
        self._reader = _UNREAD
        self._parts: list[bytes] = []
        self._form: FormData | Exception | None = None
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None

    @property
    def max_body_size(self) -> int:
        """The largest body this request may have, in bytes (``HTTPConfig.max_body_size``).

        Settable (by a route's ``max_body_size``, a middleware, the handler) until the body
        is first read; it then holds for the whole body.

        Raises:
            RuntimeError: set after the body started to be read.
            ValueError: set to a value that is not a positive int.
        """
        return self._max_body_size

    @max_body_size.setter
    def max_body_size(self, value: int) -> None:
        if self._reader is not _UNREAD and self._source is not None:
            raise RuntimeError(
                "max_body_size cannot change once the request body is being read; "
                "set it before the first stream(), body(), text(), json() or form()"
            )
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"max_body_size must be a positive int, got {value!r}")
        self._max_body_size = value

    @property
    def query_params(self) -> QueryParams:
        """The parsed query string (multi-value aware)."""
        if self._query_params is None:
            self._query_params = QueryParams.parse(self.query_string)
        return self._query_params

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookies sent in ``Cookie`` headers; a malformed header yields no cookies."""
        if self._cookies is None:
            jar: SimpleCookie = SimpleCookie()
            for header in self.headers.getlist("cookie"):
                try:
                    jar.load(header)
                except CookieError:
                    continue
            self._cookies = {name: morsel.value for name, morsel in jar.items()}
        return self._cookies

    @property
    def host(self) -> str:
        """The host the client asked for (``Host``; behind a trusted proxy, the forwarded one).

        ``localhost`` when the request named none.
        """
        host = self._host
        if host is None:
            host = self._host = self.headers.get("host", "localhost")
        return host

    @host.setter
    def host(self, value: str) -> None:
        self._host = value

    @property
    def url(self) -> str:
        """The full URL as the client addressed it: scheme, host and target (see :attr:`host`)."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"{self.scheme}://{self.host}{self.raw_path}{query}"

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` a reconnecting ``EventSource`` sent (SSE), else None.

        Browsers send the id as UTF-8; it is decoded so (invalid bytes replaced).
        """
        value = self.headers.get("last-event-id")
        if value is None or value.isascii():
            return value
        return value.encode("latin-1", "replace").decode("utf-8", "replace")

    async def wait_disconnected(self) -> bool:
        """Wait until the client leaves; True if it left before its response was complete.

        For a handler that works a long time before it answers (a long poll, a slow query):
        run the work and this wait side by side and stop the work when the client is gone.
        Returns False once the response went out whole, and at once for a request that did
        not come from a connection (made by hand) or that started a WebSocket.

        The client leaving is seen once it closes the connection (or it breaks). The body
        is read first (the socket has one reader): while the handler has not read it to
        its end (or the client waits for ``100 Continue``), a departure is not seen. A
        client that pipelines its next requests meanwhile cannot be watched either, and
        the wait ends with the response.
        """
        departures = self._departures
        if departures is None:
            return False
        return await departures.wait_departure(self._exchange)

    def stream(self) -> AsyncIterator[bytes]:
        """Return an async iterator over the body's bytes as they arrive (never ``b""``).

        ``async for chunk in request.stream(): ...``. Bytes are read from the client only as
        the loop asks for more (backpressure); leaving the loop early is fine. With
        ``Expect: 100-continue`` the ``100 Continue`` goes out on the first read. The
        streamed bytes are not kept: the body can be streamed once. After :meth:`body` it
        yields the kept body in one chunk.

        The iteration raises:
            ContentTooLarge: the body is over :attr:`max_body_size` (413).
            BodyTimeout: the client sent nothing for ``body_timeout`` seconds (408).
            ClientDisconnected: the client left before the body ended.
            InvalidBody: malformed chunked encoding (400).

        Raises:
            RuntimeError: the body was already streamed, or is being read by :meth:`body`.
        """
        body = self._body
        if body is not None:
            return _BodyStream(None, 0, body)
        if self._reader is not _UNREAD:
            raise RuntimeError(
                "the request body was already read by stream() or form() and is not kept; "
                "it can be streamed once (call body() first to keep it)"
                if self._reader is _STREAM
                else "the request body is being read by body(); stream() cannot start now"
            )
        self._reader = _STREAM
        return _BodyStream(self._source, self._max_body_size, None)

    async def body(self) -> bytes:
        """Return the whole body, read on the first call and kept.

        An interrupted call (a cancelled scope) keeps what it read: the next one goes on.

        Raises:
            ContentTooLarge: the body is over :attr:`max_body_size` (413).
            BodyTimeout: the client sent nothing for ``body_timeout`` seconds (408).
            ClientDisconnected: the client left before the body ended.
            InvalidBody: malformed chunked encoding (400).
            RuntimeError: :meth:`stream` or :meth:`form` already started reading the body.
        """
        body = self._body
        if body is not None:
            return body
        if self._reader is _STREAM:
            raise RuntimeError(
                "body() after stream(): the streamed part of the request body is not kept; "
                "read a body either with body() (kept) or with stream() (once), not both"
            )
        self._reader = _BODY
        source = self._source
        assert source is not None
        limit = self._max_body_size
        parts = self._parts
        while chunk := await source.read(limit):
            parts.append(chunk)
        self._body = body = b"".join(parts)
        parts.clear()
        return body

    async def text(self) -> str:
        """Return the body decoded as UTF-8 (undecodable bytes replaced); see :meth:`body`."""
        return (await self.body()).decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """Return the body parsed as JSON.

        Raises:
            InvalidBody: the body is not valid JSON (uncaught, the client gets 400); it is a
                ``ValueError`` too.
        """
        body = await self.body()
        try:
            return json.loads(body)
        except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError of bad UTF-8
            raise InvalidBody(f"Invalid JSON body: {exc}") from exc

    async def form(
        self,
        *,
        max_files: int = 1000,
        max_fields: int = 1000,
        max_part_size: int = _DEFAULT_MAX_PART_SIZE,
    ) -> FormData:
        """Parse an ``application/x-www-form-urlencoded`` or ``multipart/form-data`` body.

        The body is parsed as it streams in (never held whole); uploaded files spill to a
        temporary file over 1 MiB. The request owns the files: the server closes them after
        the response. A second call returns the same :class:`~spikard.forms.FormData` (or
        raises the same error); the limits of the first call hold.

        Args:
            max_files: most file parts (multipart).
            max_fields: most non-file fields.
            max_part_size: largest non-file field value, in bytes (files are bounded by
                :attr:`max_body_size` only).

        Raises:
            InvalidBody: another content type, malformed multipart, or a limit above
                exceeded (400).
            ContentTooLarge: the body is over :attr:`max_body_size` (413); and the errors
                of :meth:`stream`.
        """
        form = self._form
        if form is None:
            from .forms import parse_form  # python-multipart is loaded on first use

            try:
                form = await parse_form(
                    self.headers.get("content-type", ""),
                    self.stream(),
                    max_files=max_files,
                    max_fields=max_fields,
                    max_part_size=max_part_size,
                )
            except Exception as exc:
                self._form = exc
                raise
            self._form = form
        if isinstance(form, Exception):
            raise form
        return form

    async def aclose(self) -> None:
        """Close what the request owns: the files of :meth:`form`. Idempotent.

        The server calls it once the response was sent.
        """
        form = self._form
        if form is not None and not isinstance(form, Exception):
            await form.close()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_path!r}>"


class _BodyStream(AsyncIterator[bytes]):
    """What :meth:`Request.stream` returns.

    A plain iterator, not an async generator: leaving a loop early leaves nothing to finalize.
    """

    __slots__ = ("_kept", "_limit", "_source")

    def __init__(self, source: BodySource | None, limit: int, kept: bytes | None) -> None:
        self._source = source
        self._limit = limit
        self._kept = kept

    def __aiter__(self) -> _BodyStream:
        return self

    async def __anext__(self) -> bytes:
        source = self._source
        if source is None:
            kept, self._kept = self._kept, None
            if kept:
                return kept
            raise StopAsyncIteration
        chunk = await source.read(self._limit)
        if not chunk:
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        """Nothing to release (the connection owns the rest of the body)."""
