""":class:`ASGIApplication`: a plain ASGI 3 application, served by spikard's server.

The adapter is an :data:`~spikard.connection.http.Application` like a spikard app: the server
calls its :attr:`~ASGIApplication.request_handler` per request (the same HTTP/1.1 layer,
WebSocket driver, limits, keepalive, TLS, access log and shutdown as for spikard apps), and
enters its :meth:`~ASGIApplication.lifespan_context` around serving. Each ASGI call runs in a
task of the adapter's own group, opened by that context, so an application may go on after
its response is sent (Starlette's background tasks), as ASGI servers allow.

Shutdown: the server closes open WebSockets of an ASGI application with 1012 (Service
Restart, as uvicorn does) and drains its connections; the application's calls still running
then get up to ``shutdown_timeout`` more before they are cancelled, and the lifespan
shutdown runs last.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio

from ...config import HTTPConfig, MiB, WebSocketConfig
from ...connection.contract import RequestHandler, WebSocketConnection
from ...connection.tasks import LightTaskGroup
from ...datastructures import Address
from ...messages import CloseCode
from ...requests import Request
from ...responses import PlainTextResponse, Response
from ._http import HTTPExchange
from ._lifespan import Lifespan, LifespanMode
from ._scope import http_scope, websocket_scope
from ._types import ASGIApp, ClientDisconnectedError
from ._websocket import WebSocketSession

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["ASGIApplication", "default_websocket_config"]

logger = logging.getLogger("spikard.asgi")

_UNLIMITED_BODY = 2**62
"""``max_body_size`` of an ASGI request by default: the application reads the body as it
goes, so only it knows how much is too much (as under uvicorn)."""


def default_websocket_config() -> WebSocketConfig:
    """The WebSocket settings of an ASGI app by default: uvicorn's (16 MiB, deflate on).

    As under uvicorn, no origin check and no per-client limits: the app decides who may
    connect (CLI options ``--ws-allowed-origins``, ``--ws-max-connections-per-client`` and
    ``--ws-handshake-rate`` ask for spikard's).
    """
    return WebSocketConfig(
        max_message_size=16 * MiB,
        permessage_deflate=True,
        allowed_origins="*",
        max_connections_per_client=None,
        handshake_rate=None,
    )


class _Bound(Protocol):
    @property
    def addresses(self) -> list[Address]: ...


class ASGIApplication:
    """Serve the ASGI 3 application ``app`` with spikard's server.

    ``Server(ASGIApplication(app))`` (or ``python -m spikard module:app``, which wraps a
    plain ASGI callable in one) serves it over HTTP/1.1 and WebSocket.

    Args:
        app: ``async def app(scope, receive, send)``.
        lifespan: ``"auto"`` (use the lifespan protocol if the app speaks it), ``"on"``
            (require it) or ``"off"``.
        root_path: the ``root_path`` of every scope (the mount point behind a proxy);
            ``path`` and ``raw_path`` include it, as the ASGI spec has them.
        http_config: HTTP limits and timers (the server's defaults if None).
        websocket_config: WebSocket limits and timers (:func:`default_websocket_config`
            if None).
        limit_concurrency: most ASGI calls (requests and WebSockets) running at once; more
            are answered 503 without calling the app. None: no limit.
        max_body_size: largest request body the app may read (413 past it); None: no limit.
        shutdown_close_code: the close code of open WebSockets at shutdown (1012).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        lifespan: LifespanMode = "auto",
        root_path: str = "",
        http_config: HTTPConfig | None = None,
        websocket_config: WebSocketConfig | None = None,
        limit_concurrency: int | None = None,
        max_body_size: int | None = None,
        shutdown_close_code: int = CloseCode.SERVICE_RESTART,
    ) -> None:
        if lifespan not in ("auto", "on", "off"):
            raise ValueError(f"lifespan must be 'auto', 'on' or 'off', not {lifespan!r}")
        if limit_concurrency is not None and limit_concurrency < 1:
            raise ValueError("limit_concurrency must be at least 1")
        self.app = app
        self.lifespan = lifespan
        self.root_path = root_path.rstrip("/")
        self.http_config = http_config or HTTPConfig()
        self.websocket_config = websocket_config or default_websocket_config()
        self.limit_concurrency = limit_concurrency
        self.max_body_size = max_body_size or _UNLIMITED_BODY
        self.shutdown_close_code = shutdown_close_code
        self.state: dict[str, Any] = {}
        """The lifespan state, shared (a shallow copy) into every scope."""
        self.server: tuple[str, int] | None = None
        """The scopes' ``server`` (host, port); taken from the attached server if None."""
        self._bound: _Bound | None = None
        self._address: tuple[str, int] | None = None
        """The attached server's first address, once known (per serve)."""
        self._tasks: LightTaskGroup | None = None
        self._running_state: dict[str, Any] | None = None
        self._active = 0
        self._idle: anyio.Event | None = None
        """Set when the last running call ends (while shutdown waits for it)."""
        self._sessions: set[WebSocketSession] = set()
        self._shutting_down = False

    # ---- what the server asks for ------------------------------------------------------------

    @property
    def request_handler(self) -> RequestHandler:
        """The handler the server calls for each request."""
        return self._handle

    def lifespan_context(self) -> AbstractAsyncContextManager[None]:
        """Run the app's lifespan (per ``lifespan``) and host its calls while serving."""
        return self._lifespan_context()

    def attach(self, server: _Bound) -> None:
        """Take the scopes' ``server`` address from ``server.addresses`` once it listens."""
        self._bound = server

    async def close_websockets(self) -> None:
        """The server shuts down: close open WebSockets with ``shutdown_close_code``."""
        self._shutting_down = True
        for session in list(self._sessions):
            await session.going_away(self.shutdown_close_code)

    # ---- lifespan ---------------------------------------------------------------------------

    @asynccontextmanager
    async def _lifespan_context(self) -> AsyncIterator[None]:
        if self._tasks is not None:
            raise RuntimeError("this ASGIApplication is already being served")
        try:
            async with self._hosting():
                yield
        except BaseExceptionGroup as group:
            # The adapter's tasks never raise (each catches what its call raises): what the
            # groups carry is the one error of the block or of the startup. Raise it as is.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    @asynccontextmanager
    async def _hosting(self) -> AsyncIterator[None]:
        self._shutting_down = False
        self._address = None
        state: dict[str, Any] = {}
        lifespan = Lifespan(self.app, self.lifespan, state, self.http_config.shutdown_timeout)
        async with anyio.create_task_group() as group:
            try:
                await lifespan.startup(group)
            except BaseException:
                group.cancel_scope.cancel()
                raise
            self.state = state
            self._running_state = state  # every scope has one (empty without lifespan)
            try:
                async with LightTaskGroup() as tasks:
                    self._tasks = tasks
                    try:
                        yield
                    finally:
                        self._tasks = None
                        with anyio.CancelScope(shield=True):
                            await self._settle()
                        tasks.cancel()
            finally:
                self._running_state = None
                with anyio.CancelScope(shield=True):
                    await lifespan.shutdown()
                group.cancel_scope.cancel()

    async def _settle(self) -> None:
        """Give the calls still running the shutdown timeout to end (then they are cut)."""
        if not self._active:
            return
        idle = self._idle = anyio.Event()
        with anyio.move_on_after(self.http_config.shutdown_timeout):
            await idle.wait()
        self._idle = None
        if self._active:
            logger.warning("cancelling %d ASGI call(s) still running at shutdown", self._active)

    # ---- requests ---------------------------------------------------------------------------

    def _server_address(self) -> tuple[str, int] | None:
        server = self.server or self._address
        if server is None and self._bound is not None and self._bound.addresses:
            address = self._bound.addresses[0]
            server = self._address = (address.host, address.port)
        return server

    def _running(self) -> LightTaskGroup:
        tasks = self._tasks
        if tasks is None:
            raise RuntimeError(
                "ASGIApplication serves only inside its lifespan_context(); serve it with "
                "spikard's Server (which enters it) or enter it yourself"
            )
        return tasks

    def _over_limit(self) -> bool:
        limit = self.limit_concurrency
        if limit is not None and self._active >= limit:
            logger.warning("refused a request: %d ASGI calls running (limit_concurrency)", limit)
            return True
        return False

    async def _handle(
        self, request: Request, websocket: WebSocketConnection | None
    ) -> Response | None:
        if websocket is not None:
            return await self._serve_websocket(request, websocket)
        tasks = self._running()
        if self._over_limit():
            return PlainTextResponse("Service Unavailable", 503)
        request.max_body_size = self.max_body_size
        scope = http_scope(request, self._server_address(), self.root_path, self._running_state)
        exchange = HTTPExchange(request, scope)
        tasks.start_soon(self._run_http, exchange)
        try:
            return await exchange.response()
        except BaseException:
            exchange.abandon()
            raise

    async def _run_http(self, exchange: HTTPExchange) -> None:
        self._active += 1
        try:
            with anyio.CancelScope() as scope:
                exchange.cancel_scope = scope
                if exchange.disconnected:
                    return  # the handler was cancelled before this task ran
                try:
                    await self.app(exchange.scope, exchange.receive, exchange.send)
                except Exception as exc:
                    exchange.app_failed(exc)
                else:
                    exchange.app_returned()
        finally:
            self._call_done()
            if not exchange.started:
                exchange.app_returned()  # cancelled: nobody waits, but leave no waiter hanging

    def _call_done(self) -> None:
        self._active -= 1
        if not self._active and self._idle is not None:
            self._idle.set()

    async def _serve_websocket(
        self, request: Request, websocket: WebSocketConnection
    ) -> Response | None:
        tasks = self._running()
        if self._over_limit():
            await websocket.reject(503, "Service Unavailable")
            return None
        scope = websocket_scope(
            request,
            websocket.subprotocols,
            self._server_address(),
            self.root_path,
            self._running_state,
        )
        session = WebSocketSession(websocket, scope)
        if self._shutting_down:
            session.shutdown_code = self.shutdown_close_code
        self._sessions.add(session)
        try:
            tasks.start_soon(self._run_websocket, session)
            async with anyio.create_task_group() as watchers:
                watchers.start_soon(_watch_end, session)
                watchers.start_soon(_watch_answer, session)
                await session.done.wait()
                watchers.cancel_scope.cancel()
            return await session.finish()
        except BaseException:
            app_scope = session.cancel_scope
            if app_scope is not None:
                app_scope.cancel()
            raise
        finally:
            self._sessions.discard(session)

    async def _run_websocket(self, session: WebSocketSession) -> None:
        self._active += 1
        try:
            with anyio.CancelScope() as scope:
                session.cancel_scope = scope
                try:
                    await self.app(session.scope, session.receive, session.send)
                except ClientDisconnectedError:
                    session.failed = True
                except Exception as exc:
                    session.failed = True
                    if exc is not session.protocol_error:
                        logger.error(
                            "exception in the ASGI application (WebSocket %s)",
                            session.connection.request.raw_path,
                            exc_info=exc,
                        )
        finally:
            self._call_done()
            session.app_done = True
            session.done.set()


async def _watch_end(session: WebSocketSession) -> None:
    """Once the connection is over, give the app ``handler_grace`` to return, then stop waiting.

    The application may go on (its ``send`` then raises, its ``receive`` says
    ``websocket.disconnect``); the server closes the transport meanwhile.
    """
    connection = session.connection
    await connection.wait_closed()
    await anyio.sleep(connection.config.handler_grace)
    session.ended = True
    session.done.set()


async def _watch_answer(session: WebSocketSession) -> None:
    """Bound the handshake: unanswered after ``accept_timeout``, the client gets 500.

    The application is cancelled (it may have been authenticating: it is never accepted
    for it), and one WARNING says so.
    """
    connection = session.connection
    timeout = connection.config.accept_timeout
    await anyio.sleep(timeout)
    if not session.answered and not session.app_done:
        logger.warning(
            "the ASGI application did not answer the WebSocket handshake for %s within "
            "accept_timeout (%.3g s); answered 500",
            connection.request.raw_path,
            timeout,
        )
        session.timed_out = True
        app_scope = session.cancel_scope
        if app_scope is not None:
            app_scope.cancel()
        session.done.set()
