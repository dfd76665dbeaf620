"""The route that serves an application's AsyncAPI document as JSON."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..app.routing import Route
from ..responses import Response
from .document import build_document, dumps

__all__ = ["AsyncAPIEndpoint", "RouteSource"]


class RouteSource(Protocol):
    """What has routes to describe: a :class:`~spikard.Spikard` app."""

    @property
    def routes(self) -> Sequence[Route[Any]]:
        """Every registered route, in order."""
        ...


class AsyncAPIEndpoint:
    """An HTTP handler answering with the document of ``source``'s routes.

    The document is built at the first request and kept as encoded JSON; it is built again
    when routes were registered since (the number of routes changed), so a route added
    after the first request still shows. A type that cannot be described fails that
    request (500, logged with the route it belongs to), not the registration.

    Args:
        source: the app.
        title: ``info.title``.
        version: ``info.version``.
        description: ``info.description``.
        servers: as :func:`~spikard.asyncapi.build_document` takes them.
    """

    def __init__(
        self,
        source: RouteSource,
        *,
        title: str,
        version: str,
        description: str | None = None,
        servers: Mapping[str, str | Mapping[str, Any]] | None = None,
    ) -> None:
        self._source = source
        self._title = title
        self._version = version
        self._description = description
        self._servers = dict(servers) if servers else None
        self._cached: tuple[int, bytes] | None = None

    def document(self) -> bytes:
        """The document as UTF-8 JSON, built at most once per set of routes."""
        routes = self._source.routes
        if self._cached is None or self._cached[0] != len(routes):
            document = build_document(
                routes,
                title=self._title,
                version=self._version,
                description=self._description,
                servers=self._servers,
            )
            self._cached = (len(routes), dumps(document).encode())
        return self._cached[1]

    def __call__(self) -> Response:
        """The document, ``application/json``."""
        return Response(self.document(), media_type="application/json")
