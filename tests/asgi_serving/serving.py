"""Serve an ASGI app with spikard's server on 127.0.0.1 in the running loop."""

from __future__ import annotations

import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from spikard.asgi.serving import ASGIApp, ASGIApplication
from spikard.server.serve import Server


@dataclass
class Running:
    port: int
    server: Server
    adapter: ASGIApplication
    secure: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"{'wss' if self.secure else 'ws'}://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(
    app: ASGIApp | ASGIApplication,
    *,
    ssl_context: ssl.SSLContext | None = None,
    **options: Any,
) -> AsyncIterator[Running]:
    """Serve ``app`` until the block ends, then shut down gracefully (lifespan included)."""
    adapter = app if isinstance(app, ASGIApplication) else ASGIApplication(app, **options)
    server = Server(adapter, adapter.http_config, adapter.websocket_config, ssl_context)
    adapter.attach(server)
    async with adapter.lifespan_context(), anyio.create_task_group() as task_group:
        serving = functools.partial(server.serve, "127.0.0.1", 0, lifespan=False)
        addresses = await task_group.start(serving)
        try:
            yield Running(addresses[0].port, server, adapter, ssl_context is not None)
        finally:
            server.shutdown()


def client(running: Running, **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=running.url, timeout=10, **kwargs)
