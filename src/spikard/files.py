"""Files as responses: :class:`FileResponse` (conditional and range requests) and
:class:`StaticFiles` (a directory served under a route).

Work in progress: being written this session.
"""

from __future__ import annotations

from .requests import Request
from .responses import Response, StreamingResponse

__all__ = ["FileResponse"]


class FileResponse(StreamingResponse):
    """A file's contents as the body (placeholder; see the module docstring)."""

    async def prepare(self, request: Request) -> Response:
        """Return the response to send for ``request`` (304, 206, 416, ... or self)."""
        return self
