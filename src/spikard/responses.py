"""HTTP responses, and the conversion of a route's return value into one."""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterable, Callable, Iterable
from datetime import datetime, timezone
from email.utils import format_datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any, Literal, cast

from .datastructures import HeadersInit, MutableHeaders
from .typed.encoding import encode_value

__all__ = [
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "Response",
    "StreamingResponse",
    "to_response",
]

Chunk = str | bytes | bytearray | memoryview
"""What a streamed body yields: ``str`` is sent as UTF-8."""


class Response:
    """A complete HTTP response with a body held in memory.

    Args:
        content: the body; ``str`` is encoded as UTF-8.
        status_code: the HTTP status.
        headers: extra header fields, a mapping or (name, value) pairs (a name may repeat);
            ``content-length`` is always computed.
        media_type: the ``content-type``; a ``text/*`` type gets ``charset=utf-8``.

    :attr:`headers` is a :class:`~spikard.datastructures.MutableHeaders`: item assignment
    replaces a field, :meth:`~spikard.datastructures.MutableHeaders.append` adds one more.
    """

    media_type: str | None = None

    def __init__(
        self,
        content: str | bytes = b"",
        status_code: int = 200,
        headers: HeadersInit = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = content.encode() if isinstance(content, str) else bytes(content)
        self.headers = MutableHeaders(headers)
        media_type = media_type or self.media_type
        if media_type is not None and "content-type" not in self.headers:
            if media_type.startswith("text/") and "charset" not in media_type:
                media_type += "; charset=utf-8"
            self.headers["content-type"] = media_type

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Return the header fields as h11 wants them, with an exact ``content-length``."""
        fields = self._encoded_headers(without="content-length")
        if self.status_code >= 200 and self.status_code not in (204, 304):
            fields.append((b"content-length", str(len(self.body)).encode()))
        return fields

    def _encoded_headers(self, without: str | None = None) -> list[tuple[bytes, bytes]]:
        """Every field as latin-1 bytes, in order, except those named ``without``."""
        return [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.multi_items()
            if name != without
        ]

    def set_cookie(
        self,
        name: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Add a ``Set-Cookie`` header (one per cookie; earlier ones are kept).

        ``expires`` is an aware datetime (sent in GMT) or an HTTP date string; ``max_age`` in
        seconds wins over it in browsers. ``samesite="none"`` needs ``secure=True``.

        Raises:
            ValueError: an illegal name, an unknown ``samesite``, ``"none"`` without
                ``secure``, or a naive ``expires``.
        """
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie[name] = value
        except CookieError as exc:
            raise ValueError(f"cannot set cookie {name!r}: {exc}") from None
        morsel = cookie[name]
        if max_age is not None:
            morsel["max-age"] = str(max_age)
        if expires is not None:
            if isinstance(expires, datetime):
                if expires.tzinfo is None:
                    raise ValueError("expires must be an aware datetime (tzinfo set)")
                expires = format_datetime(expires.astimezone(timezone.utc), usegmt=True)
            morsel["expires"] = expires
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite is not None:
            if samesite not in ("lax", "strict", "none"):
                raise ValueError(f"samesite must be 'lax', 'strict' or 'none', not {samesite!r}")
            if samesite == "none" and not secure:
                raise ValueError("samesite='none' needs secure=True (browsers drop it otherwise)")
            morsel["samesite"] = samesite.capitalize()
        self.headers.append("set-cookie", morsel.OutputString())

    def delete_cookie(
        self,
        name: str,
        *,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Tell the browser to drop cookie ``name`` (same ``path`` and ``domain`` as set)."""
        self.set_cookie(
            name,
            max_age=0,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status_code}, {len(self.body)} bytes>"


class PlainTextResponse(Response):
    """A ``text/plain`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html`` response."""

    media_type = "text/html"


class JSONResponse(Response):
    """A response whose body is ``content`` serialized as compact JSON."""

    media_type = "application/json"

    def __init__(
        self,
        content: Any,
        status_code: int = 200,
        headers: HeadersInit = None,
    ) -> None:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        super().__init__(body, status_code, headers)


class StreamingResponse(Response):
    """A response whose body is sent as ``content`` produces it, chunk by chunk.

    ``content`` is an async iterable (an async generator, typically) or a plain iterable of
    ``str`` (sent as UTF-8) or bytes. The next chunk is taken only once the previous one was
    handed to the connection and its buffer drained, so a slow client slows the producer.
    The body is chunked (HTTP/1.1), ends with the connection (HTTP/1.0), or is exactly
    ``content-length`` bytes when that header is given. When the client goes away, or the
    server shuts down, an async generator is closed (its ``finally`` runs); a HEAD request
    gets the head and never starts it. A plain iterable is advanced in a worker thread, so
    it may block.
    """

    def __init__(
        self,
        content: AsyncIterable[Chunk] | Iterable[Chunk],
        status_code: int = 200,
        headers: HeadersInit = None,
        media_type: str | None = None,
    ) -> None:
        super().__init__(b"", status_code, headers, media_type)
        if not isinstance(content, (AsyncIterable, Iterable)) or isinstance(content, (str, bytes)):
            raise TypeError(
                f"StreamingResponse needs an iterable of chunks, not {type(content).__name__!r}"
            )
        self.content = content
        self.encode: Callable[[Any], bytes] = encode_chunk
        """Turns each item of ``content`` into the bytes sent (SSE: one event each)."""
        self.keepalive: tuple[float, bytes] | None = None
        """(seconds, bytes): send these bytes whenever the body was silent that long (SSE)."""

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The header fields; ``content-length`` only when the application gave one."""
        return self._encoded_headers()


def encode_chunk(chunk: object) -> bytes:
    """The bytes of one streamed chunk.

    Raises:
        TypeError: ``chunk`` is neither text nor bytes.
    """
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        return bytes(chunk)
    raise TypeError(f"a streamed body yielded {type(chunk).__name__!r}; yield str or bytes")


def to_response(value: object) -> Response:
    """Convert what a route returned: Response as is, str as text, bytes raw, dict/list as JSON.

    A model instance (msgspec Struct, pydantic model, dataclass) is sent as JSON too.

    ``None`` becomes ``204 No Content``.

    Raises:
        TypeError: the value is of none of those types.
    """
    if isinstance(value, Response):
        return value
    if isinstance(value, str):
        return PlainTextResponse(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return Response(bytes(value), media_type="application/octet-stream")
    if isinstance(value, (dict, list)):
        return JSONResponse(value)
    if inspect.isasyncgen(value):
        return StreamingResponse(cast("AsyncIterable[Chunk]", value))
    if value is None:
        return Response(status_code=204)
    encoded = encode_value(value)  # a msgspec Struct, a pydantic model, a dataclass
    if encoded is not None:
        return Response(encoded, media_type="application/json")
    raise TypeError(
        f"a route returned {type(value).__name__!r}; return str, bytes, dict, list or Response"
    )
