"""Run an application until a signal: event loop choice, logging, signal handling.

SIGINT and SIGTERM stop the server (a second one cuts the drain short); SIGHUP reloads the
TLS certificate files for new connections (:meth:`.Server.reload_tls`) and stops nothing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import anyio
import anyio.abc

from ..asgi.serving import ASGIApplication
from ..connection.http import Application
from ..datastructures import Address
from .accept import ContextSource
from .bind import BindError, format_address
from .serve import Server
from .workers import STARTUP_FAILED_EXIT

__all__ = ["StartupError", "configure_logging", "hold_sighup", "run", "serve_until_signalled"]

logger = logging.getLogger("spikard.server")


def configure_logging(level: str) -> None:
    """Send spikard's log lines (access log included) to stderr at ``level``."""
    worker = os.environ.get("SPIKARD_WORKER")
    prefix = f"[worker {worker} %(process)d] " if worker else ""
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s",
    )


class StartupError(Exception):
    """The server did not start: a startup hook failed, or the port could not be bound.

    ``str(error)`` is one line saying why; :func:`run` logs it and exits with status 1.
    """


async def serve_until_signalled(
    server: Server, host: str, port: int, reuse_port: bool = False
) -> None:
    """Serve until SIGINT/SIGTERM; the first starts a graceful shutdown, a second cuts it.

    The application's startup hooks run first, then the port is bound. SIGHUP reloads the
    TLS certificate (:meth:`.Server.reload_tls`).

    Raises:
        StartupError: a startup hook raised, or the port could not be bound
            (:class:`~.bind.BindError`: taken, out of range, no such address).
    """
    try:
        lifespan = server.lifespan()
        await lifespan.__aenter__()
    except Exception as exc:
        raise StartupError(f"application startup failed: {type(exc).__name__}: {exc}") from None
    try:
        await _serve_until_signalled(server, host, port, reuse_port)
    except BindError as exc:
        raise StartupError(str(exc)) from None
    finally:
        # Not in a shield scope of ours: a lifespan may hold a task group open from its
        # __aenter__ (a plain ASGI app's does), and exiting that inside a scope entered
        # later breaks the nesting anyio and trio require. Lifespans shield their own exit
        # (a spikard app's hooks, an ASGI app's shutdown).
        await lifespan.__aexit__(None, None, None)


def _loop_label() -> str:
    """The running event loop, as the startup line names it: ``asyncio (uvloop)``."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return "trio"
    return "asyncio (uvloop)" if type(loop).__module__.startswith("uvloop") else "asyncio"


async def _serve_until_signalled(server: Server, host: str, port: int, reuse_port: bool) -> None:
    bind_failure: BindError | None = None
    async with anyio.create_task_group() as task_group:

        async def watch_signals() -> None:
            stopping = False
            with anyio.open_signal_receiver(
                signal.SIGINT, signal.SIGTERM, signal.SIGHUP
            ) as signals:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        if server.secure:
                            logger.info("SIGHUP received: reloading the TLS certificate")
                            server.reload_tls()  # says what came of it, in one line
                        else:
                            logger.info("SIGHUP received: no TLS certificate to reload")
                        continue
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
        try:
            # A bind failure is raised here (before the server started), not by the group.
            await task_group.start(serve)
        except BindError as exc:
            bind_failure = exc
            task_group.cancel_scope.cancel()
        else:
            logger.info("starting on %s", _loop_label())
            http, ws = ("https", "wss") if server.secure else ("http", "ws")
            for address in server.addresses:
                where = format_address(address.host, address.port)
                logger.info(
                    "spikard listening on %s://%s (WebSocket: %s://%s)", http, where, ws, where
                )
    if bind_failure is not None:
        raise bind_failure


def run(
    app: Application,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    backend: str = "asyncio",
    ssl_context: ContextSource | None = None,
    log_level: str | None = "info",
    reuse_port: bool = False,
    loop: str = "auto",
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; uvloop is used on asyncio when installed.

    ``loop="asyncio"`` keeps asyncio's own event loop even where uvloop is installed.

    ``ssl_context`` serves TLS: an ``ssl.SSLContext`` is used as given; a
    :class:`~.tls.ReloadingContext` is built again from its files on SIGHUP.

    Raises:
        SystemExit: with status 1 when the server cannot start (a startup hook raised, the
            port is taken or out of range, the host does not resolve); one CRITICAL log
            line says why. Under ``--workers`` the status is
            :data:`~.workers.STARTUP_FAILED_EXIT`, which stops the supervisor.
        ValueError: ``backend`` is neither ``"asyncio"`` nor ``"trio"``.
    """
    if log_level is not None:
        configure_logging(log_level)
    server = Server(
        app,
        getattr(app, "http_config", None),
        getattr(app, "websocket_config", None),
        ssl_context,
    )
    if isinstance(app, ASGIApplication):
        app.attach(server)  # its scopes' "server" is the address bound
    options: dict[str, Any] = {}
    if (
        backend == "asyncio"
        and loop != "asyncio"
        and importlib.util.find_spec("uvloop") is not None
    ):
        options["use_uvloop"] = True
    elif backend not in ("asyncio", "trio"):
        raise ValueError(f"unknown backend {backend!r}: use 'asyncio' or 'trio'")
    previous = hold_sighup()
    try:
        anyio.run(
            serve_until_signalled,
            server,
            host,
            port,
            reuse_port,
            backend=backend,
            backend_options=options,
        )
    except StartupError as exc:
        logger.critical("%s", exc)
        raise SystemExit(STARTUP_FAILED_EXIT if os.environ.get("SPIKARD_WORKER") else 1) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGHUP, previous)


def _sighup_before_serving(signum: int, frame: FrameType | None) -> None:
    logger.info("SIGHUP received while starting: ignored (the certificate files are being read)")


def hold_sighup() -> signal.Handlers | Callable[[int, FrameType | None], Any] | int | None:
    """Keep a SIGHUP from killing the process until the server's signal watcher takes it.

    A reload asked for during startup (a worker being started as the supervisor passes one
    on) is moot: the files are being read anyway. Only in the main thread, and only over
    the default action.

    Returns:
        The handler to put back afterwards, or None when nothing was changed.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGHUP, _sighup_before_serving)
