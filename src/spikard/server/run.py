"""Run an application until a signal: event loop choice, logging, SIGINT/SIGTERM handling."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import ssl
from typing import Any

import anyio
import anyio.abc

from ..connection.http import RequestHandler
from ..datastructures import Address
from .serve import Server

__all__ = ["configure_logging", "run", "serve_until_signalled"]

logger = logging.getLogger("spikard.server")


def configure_logging(level: str) -> None:
    """Send spikard's log lines (access log included) to stderr at ``level``."""
    worker = os.environ.get("SPIKARD_WORKER")
    prefix = f"[worker {worker} %(process)d] " if worker else ""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s",
    )


async def serve_until_signalled(
    server: Server, host: str, port: int, reuse_port: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM; the first starts a graceful shutdown, a second cuts it.

    The application's startup hooks run first; one that fails is logged and exits with 1.
    """
    try:
        lifespan = server.lifespan()
        await lifespan.__aenter__()
    except Exception as exc:
        logger.critical("application startup failed: %s: %s", type(exc).__name__, exc)
        raise SystemExit(1) from None
    try:
        await _serve_until_signalled(server, host, port, reuse_port)
    finally:
        with anyio.CancelScope(shield=True):
            await lifespan.__aexit__(None, None, None)


async def _serve_until_signalled(server: Server, host: str, port: int, reuse_port: bool) -> None:
    async with anyio.create_task_group() as task_group:

        async def watch_signals() -> None:
            stopping = False
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    if stopping:
                        logger.warning("second signal: exiting now")
                        server.force_exit()
                        continue
                    stopping = True
                    logger.info(
                        "%s received: shutting down gracefully", signal.Signals(signum).name
                    )
                    server.shutdown()

        async def serve(*, task_status: anyio.abc.TaskStatus[list[Address]]) -> None:
            await server.serve(
                host, port, lifespan=False, reuse_port=reuse_port, task_status=task_status
            )
            task_group.cancel_scope.cancel()

        task_group.start_soon(watch_signals)
        await task_group.start(serve)
        for address in server.addresses:
            logger.info("spikard listening on http://%s:%d", address.host, address.port)


def run(
    app: RequestHandler,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    backend: str = "asyncio",
    ssl_context: ssl.SSLContext | None = None,
    log_level: str | None = "info",
    reuse_port: bool = False,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; uvloop is used on asyncio when installed."""
    if log_level is not None:
        configure_logging(log_level)
    server = Server(
        app,
        getattr(app, "http_config", None),
        getattr(app, "websocket_config", None),
        ssl_context,
    )
    options: dict[str, Any] = {}
    if backend == "asyncio" and importlib.util.find_spec("uvloop") is not None:
        options["use_uvloop"] = True
    elif backend not in ("asyncio", "trio"):
        raise ValueError(f"unknown backend {backend!r}: use 'asyncio' or 'trio'")
    logger.info("starting on %s%s", backend, " (uvloop)" if options else "")
    anyio.run(
        serve_until_signalled,
        server,
        host,
        port,
        reuse_port,
        backend=backend,
        backend_options=options,
    )
