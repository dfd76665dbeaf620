"""The server: listeners, the accept loop, and graceful shutdown."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute

from ..config import HTTPConfig, WebSocketConfig
from ..connection.budget import InboundBudget
from ..connection.heartbeat import Heartbeat
from ..connection.http import (
    Application,
    HTTPConnection,
    RequestHandler,
    ServesRequests,
    WebSocketCounter,
)
from ..connection.tasks import LightTaskGroup
from ..connection.transport import Transport
from ..datastructures import Address
from .accept import ContextSource, serve_listener
from .bind import bind_error, check_port
from .tls import ReloadingContext

__all__ = ["Server"]

logger = logging.getLogger("spikard.server")


class Server:
    """Serve a request handler on TCP, with graceful shutdown.

    Args:
        handler: the application: a :class:`~spikard.Spikard` app (its ``request_handler``)
            or a :data:`~spikard.connection.http.RequestHandler`.
        http_config: HTTP limits and timers, ``shutdown_timeout`` included.
        websocket_config: WebSocket limits and timers.
        ssl_context: serve TLS (``https``/``wss``) with this context, used as given; or a
            :class:`~spikard.server.tls.ReloadingContext`, which :meth:`reload_tls`
            (SIGHUP) builds again from its files.
        lifespan: an async context manager factory entered around serving (startup and
            shutdown hooks); by default the handler's ``lifespan_context`` if it has one.
    """

    def __init__(
        self,
        handler: Application,
        http_config: HTTPConfig | None = None,
        websocket_config: WebSocketConfig | None = None,
        ssl_context: ContextSource | None = None,
        lifespan: Callable[[], AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        self._application = handler
        # A spikard app offers its request handler; anything else is one already.
        self._handler: RequestHandler = (
            handler.request_handler if isinstance(handler, ServesRequests) else handler
        )
        self.lifespan: Callable[[], AbstractAsyncContextManager[None]] = (
            lifespan or getattr(handler, "lifespan_context", None) or nullcontext
        )
        """The application's startup/shutdown context manager factory."""
        self._http_config = http_config or HTTPConfig()
        self._websocket_config = websocket_config or WebSocketConfig()
        self._ssl_context = ssl_context
        self._connections: set[HTTPConnection] = set()
        self._websockets = WebSocketCounter()
        self._heartbeat = Heartbeat()
        self._budget = InboundBudget(self._websocket_config.max_buffered_bytes)
        self._shutdown_requested = anyio.Event()
        self._drained = anyio.Event()
        self._force_scope: anyio.CancelScope | None = None
        self._connection_tasks: LightTaskGroup | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self.addresses: list[Address] = []
        """The addresses the server listens on, once started."""

    @property
    def secure(self) -> bool:
        """True when the server speaks TLS (``https`` and ``wss``)."""
        return self._ssl_context is not None

    def reload_tls(self) -> bool:
        """Read the TLS certificate files again, for new connections (what SIGHUP does).

        Open connections keep the certificate they were made with. Only a
        :class:`~spikard.server.tls.ReloadingContext` (the command line's) reloads; a
        context the application built itself is used as given.

        Returns:
            True when new connections get the new files; False when the files could not be
            loaded (the previous certificate stays; one ERROR line says why) or there is
            nothing to reload (one INFO or WARNING line says so).
        """
        if isinstance(self._ssl_context, ReloadingContext):
            return self._ssl_context.reload()
        if isinstance(self._ssl_context, ssl.SSLContext):
            logger.warning(
                "cannot reload the TLS certificate: the application gave its own ssl_context "
                "(pass a spikard.server.tls.ReloadingContext to reload it on SIGHUP)"
            )
        else:
            logger.info("no TLS certificate to reload: the server serves no TLS")
        return False

    @property
    def websocket_count(self) -> int:
        """WebSockets open (or in their handshake) right now."""
        return self._websockets.open

    @property
    def buffered_bytes(self) -> int:
        """Inbound WebSocket bytes buffered for applications right now (all connections)."""
        return self._budget.used

    @property
    def connection_count(self) -> int:
        """Connections being served right now (HTTP and WebSocket)."""
        return len(self._connections)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        lifespan: bool = True,
        reuse_port: bool = False,
        task_status: anyio.abc.TaskStatus[list[Address]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host``:``port`` (0 picks a free port) until :meth:`shutdown`.

        ``reuse_port`` sets SO_REUSEPORT, so that several processes can share the port.
        ``task_status.started`` reports the bound addresses, for ``task_group.start``. The
        application's lifespan (startup hooks) runs before the port opens and its shutdown
        hooks after the last connection is gone; a failing startup raises from here. With
        ``lifespan=False`` the caller runs :attr:`lifespan` itself.

        Raises:
            BindError: the port is taken or out of range, the host does not resolve, or no
                interface has the address (an ``OSError``; before ``task_status.started``).
        """
        if not lifespan:
            await self._serve(host, port, reuse_port, task_status)
            return
        async with self.lifespan():
            await self._serve(host, port, reuse_port, task_status)

    async def _serve(
        self,
        host: str,
        port: int,
        reuse_port: bool,
        task_status: anyio.abc.TaskStatus[list[Address]],
    ) -> None:
        check_port(host, port)
        try:
            listener: anyio.abc.Listener[Any] = await anyio.create_tcp_listener(
                local_host=host,
                local_port=port,
                reuse_port=reuse_port,
                backlog=self._http_config.backlog,
            )
        except (OSError, OverflowError) as exc:
            raise bind_error(host, port, exc) from None
        self.addresses = [
            Address(*sub.extra(SocketAttribute.local_address)[:2])
            for sub in listener.listeners  # type: ignore[attr-defined]
        ]
        scheme = "http" if self._ssl_context is None else "https"
        try:
            async with anyio.create_task_group() as task_group, LightTaskGroup() as connections:
                self._force_scope = task_group.cancel_scope
                self._connection_tasks = connections
                self._task_group = task_group
                await task_group.start(self._heartbeat.run)
                async with anyio.create_task_group() as accept_group:
                    accept_group.start_soon(
                        serve_listener,
                        listener,
                        lambda transport: self._handle(transport, scheme),
                        connections,
                        self._ssl_context,
                        self._websocket_config.read_size,
                        self._http_config.backlog,
                        self._http_config.request_timeout,
                    )
                    task_status.started(self.addresses)
                    await self._shutdown_requested.wait()
                    accept_group.cancel_scope.cancel()
                await listener.aclose()
                await self._drain()
                task_group.cancel_scope.cancel()
                connections.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await listener.aclose()

    async def _drain(self) -> None:
        if not self._connections:
            return
        logger.info("shutting down: closing %d connection(s)", len(self._connections))
        assert self._task_group is not None
        with anyio.move_on_after(self._http_config.shutdown_timeout):
            # A plain ASGI app's WebSockets get 1012 (as under uvicorn), before the 1001 that
            # connection.shutdown() sends (a close frame goes out once: the first code holds).
            close_websockets = getattr(self._application, "close_websockets", None)
            if close_websockets is not None:
                await close_websockets()
            # Each goodbye is synchronous (a close frame written without waiting), so one
            # peer that stopped reading delays nobody; the deadline cuts what is left.
            for connection in list(self._connections):
                connection.shutdown()
            await self._drained.wait()
        if self._connections:
            logger.warning(
                "shutdown deadline passed: cutting %d connection(s)", len(self._connections)
            )

    def shutdown(self) -> None:
        """Begin a graceful shutdown: stop accepting, close sockets, drain, return.

        WebSockets get 1001 (Going Away); those of a plain ASGI app get 1012 (Service
        Restart), as uvicorn sends.
        """
        self._shutdown_requested.set()

    def force_exit(self) -> None:
        """Cut every connection now."""
        self._shutdown_requested.set()
        if self._force_scope is not None:
            self._force_scope.cancel()
        if self._connection_tasks is not None:
            self._connection_tasks.cancel()

    async def _handle(self, transport: Transport, scheme: str) -> None:
        connection = HTTPConnection(
            transport,
            self._handler,
            self._http_config,
            self._websocket_config,
            scheme=scheme,
            websockets=self._websockets,
            heartbeat=self._heartbeat,
            budget=self._budget,
        )
        self._connections.add(connection)
        try:
            await connection.serve()
        except Exception:
            logger.exception("unexpected error while serving %s", connection.peer_label)
        finally:
            self._connections.discard(connection)
            if not self._connections and self._shutdown_requested.is_set():
                self._drained.set()
