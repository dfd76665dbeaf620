"""Run an application on an ephemeral loopback port inside the current event loop."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from ..connection.http import RequestHandler
from ..server.serve import Server

__all__ = ["TestServerInfo", "running_test_server"]


@dataclass(frozen=True, slots=True)
class TestServerInfo:
    """Where a test server listens."""

    __test__ = False  # not a pytest test class

    host: str
    port: int
    secure: bool = False
    server: Server | None = None

    @property
    def url(self) -> str:
        """The HTTP base URL, ``http://127.0.0.1:PORT``."""
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"

    def ws_url(self, path: str = "/") -> str:
        """The WebSocket URL of ``path``, ``ws://127.0.0.1:PORT/path``."""
        if not path.startswith("/"):
            path = "/" + path
        return f"{'wss' if self.secure else 'ws'}://{self.host}:{self.port}{path}"

    def http_url(self, path: str = "/") -> str:
        """The HTTP URL of ``path``."""
        if not path.startswith("/"):
            path = "/" + path
        return self.url + path


@asynccontextmanager
async def running_test_server(
    app: RequestHandler, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[TestServerInfo]:
    """Serve ``app`` on 127.0.0.1 with a free port until the block exits, then shut down."""
    server = Server(
        app,
        getattr(app, "http_config", None),
        getattr(app, "websocket_config", None),
        ssl_context,
    )
    async with server.lifespan(), anyio.create_task_group() as task_group:
        addresses = await task_group.start(
            functools.partial(server.serve, "127.0.0.1", 0, lifespan=False)
        )
        try:
            yield TestServerInfo("127.0.0.1", addresses[0].port, ssl_context is not None, server)
        finally:
            server.shutdown()
