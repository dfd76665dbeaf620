"""Run an application on an ephemeral loopback port inside the current event loop."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from ..connection.http import Application
from ..server.serve import Server
from .client import (
    HeaderPairs,
    TestResponse,
    TestWebSocket,
    open_stream,
    open_websocket,
    send_request,
)

__all__ = ["TestServerInfo", "running_test_server"]


@dataclass(frozen=True, slots=True)
class TestServerInfo:
    """A running test server: where it listens, and clients for it.

    ``connect`` opens a WebSocket (:class:`~spikard.testing.TestWebSocket`), ``request`` sends
    one HTTP request (:class:`~spikard.testing.TestResponse`); both work on asyncio and trio.
    """

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

    def connect(
        self,
        path: str = "/",
        *,
        subprotocols: Iterable[str] = (),
        headers: HeaderPairs | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_host: str | None = None,
    ) -> AbstractAsyncContextManager[TestWebSocket]:
        """Open a WebSocket to ``path`` (query string included): ``async with server.connect(..)``.

        ``local_host`` binds the client's end to another loopback address (``"127.0.0.2"``).

        Raises:
            HandshakeRejected: the server refused the handshake (``status_code``, ``body``).
        """
        return open_websocket(
            self.host,
            self.port,
            self.secure,
            path,
            subprotocols=subprotocols,
            headers=headers,
            timeout=timeout,
            ssl_context=ssl_context,
            local_host=local_host,
        )

    async def request(
        self,
        method: str,
        path: str = "/",
        *,
        headers: HeaderPairs | None = None,
        body: bytes | str | None = None,
        json: Any = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_host: str | None = None,
    ) -> TestResponse:
        """Send one HTTP request on a new connection and read the whole response.

        ``json`` sends a JSON body (with its content type). A streamed response (SSE
        included) is read until it ends, bounded by ``timeout`` (TimeoutError after it).
        """
        if not path.startswith("/"):
            path = "/" + path
        with anyio.fail_after(timeout):
            stream = await open_stream(self.host, self.port, self.secure, ssl_context, local_host)
        async with stream:
            return await send_request(
                stream,
                f"{self.host}:{self.port}",
                method.upper(),
                path,
                headers=headers,
                body=body,
                json_body=json,
                timeout=timeout,
            )


@asynccontextmanager
async def running_test_server(
    app: Application, *, ssl_context: ssl.SSLContext | None = None, port: int = 0
) -> AsyncIterator[TestServerInfo]:
    """Serve ``app`` on 127.0.0.1 (a free port, or ``port``) until the block exits."""
    server = Server(
        app,
        getattr(app, "http_config", None),
        getattr(app, "websocket_config", None),
        ssl_context,
    )
    async with server.lifespan(), anyio.create_task_group() as task_group:
        addresses = await task_group.start(
            functools.partial(server.serve, "127.0.0.1", port, lifespan=False)
        )
        try:
            yield TestServerInfo("127.0.0.1", addresses[0].port, ssl_context is not None, server)
        finally:
            server.shutdown()
