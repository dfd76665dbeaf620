"""HTTP responses, and the conversion of a route's return value into one."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["HTMLResponse", "JSONResponse", "PlainTextResponse", "Response", "to_response"]


class Response:
    """A complete HTTP response with a body held in memory.

    Args:
        content: the body; ``str`` is encoded as UTF-8.
        status_code: the HTTP status.
        headers: extra header fields; ``content-length`` is always computed.
        media_type: the ``content-type``; a ``text/*`` type gets ``charset=utf-8``.
    """

    media_type: str | None = None

    def __init__(
        self,
        content: str | bytes = b"",
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status_code
        self.body = content.encode() if isinstance(content, str) else bytes(content)
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        media_type = media_type or self.media_type
        if media_type is not None and "content-type" not in self.headers:
            if media_type.startswith("text/") and "charset" not in media_type:
                media_type += "; charset=utf-8"
            self.headers["content-type"] = media_type

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Return the header fields as h11 wants them, with an exact ``content-length``."""
        fields = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        fields = [(k, v) for k, v in fields if k != b"content-length"]
        if self.status_code >= 200 and self.status_code not in (204, 304):
            fields.append((b"content-length", str(len(self.body)).encode()))
        return fields

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
        headers: Mapping[str, str] | None = None,
    ) -> None:
        body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
        super().__init__(body, status_code, headers)


def to_response(value: object) -> Response:
    """Convert what a route returned: Response as is, str as text, bytes raw, dict/list as JSON.

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
    if value is None:
        return Response(status_code=204)
    raise TypeError(
        f"a route returned {type(value).__name__!r}; return str, bytes, dict, list or Response"
    )
