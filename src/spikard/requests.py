"""The HTTP request a handler receives; a WebSocket's handshake is one too."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import unquote

from .datastructures import Address, Headers, QueryParams
from .errors import InvalidBody

__all__ = ["Request"]


class Request:
    """An HTTP/1.1 request, with its body already read (bounded by ``max_body_size``).

    Attributes:
        method: the request method, upper case (``"GET"``).
        path: the percent-decoded path, without the query string.
        raw_path: the request target's path as sent, still percent-encoded.
        query_string: the raw query string, without ``?``.
        headers: case-insensitive, multi-value :class:`~spikard.datastructures.Headers`.
        client: the peer's address, or None when the transport has none.
        http_version: ``"1.1"`` or ``"1.0"``.
        path_params: the values captured by the route's ``{name}`` placeholders.
    """

    __slots__ = (
        "_body",
        "_cookies",
        "_query_params",
        "client",
        "headers",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "raw_path",
        "scheme",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        *,
        client: Address | None = None,
        http_version: str = "1.1",
        scheme: str = "http",
        body: bytes = b"",
    ) -> None:
        self.method = method
        raw_path, _, self.query_string = target.partition("?")
        self.raw_path = raw_path
        self.path = unquote(raw_path)
        self.headers = headers
        self.client = client
        self.http_version = http_version
        self.scheme = scheme
        self.path_params: dict[str, Any] = {}
        self._body = body
        self._query_params: QueryParams | None = None
        self._cookies: dict[str, str] | None = None

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
    def url(self) -> str:
        """The full URL, rebuilt from the scheme, the ``Host`` header and the target."""
        host = self.headers.get("host", "localhost")
        query = f"?{self.query_string}" if self.query_string else ""
        return f"{self.scheme}://{host}{self.raw_path}{query}"

    @property
    def last_event_id(self) -> str | None:
        """The ``Last-Event-ID`` a reconnecting ``EventSource`` sent (SSE), else None."""
        return self.headers.get("last-event-id")

    async def body(self) -> bytes:
        """Return the request body."""
        return self._body

    async def text(self) -> str:
        """Return the body decoded as UTF-8 (undecodable bytes replaced)."""
        return self._body.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """Return the body parsed as JSON.

        Raises:
            InvalidBody: the body is not valid JSON (uncaught, the client gets 400); it is a
                ``ValueError`` too.
        """
        try:
            return json.loads(self._body)
        except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError of bad UTF-8
            raise InvalidBody(f"Invalid JSON body: {exc}") from exc

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.raw_path!r}>"
