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

import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

import anyio
import sniffio

from ...config import HTTPConfig, MiB, WebSocketConfig
from ...connection.contract import RequestHandler, WebSocketConnection
from ...connection.events import LightEvent, Waiter
from ...connection.tasks import LightTaskGroup
from ...datastructures import Address
from ...messages import CloseCode
from ...requests import Request
from ...responses import Response
from ._http import serve_http
from ._lifespan import Lifespan, LifespanMode
from ._types import ASGIApp, GoingAway
from ._websocket import serve_websocket

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["ASGIApplication", "default_http_config", "default_websocket_config"]

logger = logging.getLogger("spikard.asgi")

_UNLIMITED_BODY = 2**62
"""``max_body_size`` of an ASGI request by default: the application reads the body as it
goes, so only it knows how much is too much (as under uvicorn)."""


def default_http_config() -> HTTPConfig:
    """The HTTP settings of an ASGI app by default: the head bounded by its size only.

    As under uvicorn (h11's 16 KiB), a request head may have as many fields as fit in
    ``max_header_bytes``; spikard apps keep their 100-field bound.
    """
    defaults = HTTPConfig()
    return HTTPConfig(max_header_count=defaults.max_header_bytes // 4)  # "a:\r\n" is 4 bytes


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
        http_config: HTTP limits and timers (:func:`default_http_config` if None).
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
        self.http_config = http_config or default_http_config()
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
        self._sessions: set[GoingAway] = set()
        self._shutting_down = False
        self._loop: asyncio.AbstractEventLoop | None = None
        """The asyncio loop served on (None on trio): light events for the calls."""

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
        asyncio_ = sniffio.current_async_library() == "asyncio"
        self._loop = asyncio.get_running_loop() if asyncio_ else None
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

    @property
    def shutting_down(self) -> bool:
        """True once the server began closing WebSockets for shutdown."""
        return self._shutting_down

    @property
    def running_state(self) -> dict[str, Any] | None:
        """The lifespan state every scope gets a copy of (None outside serving)."""
        return self._running_state

    def server_address(self) -> tuple[str, int] | None:
        """The first bound address, for scopes of a connection whose own is unknown."""
        server = self.server or self._address
        if server is None and self._bound is not None and self._bound.addresses:
            address = self._bound.addresses[0]
            server = self._address = (address.host, address.port)
        return server

    def running(self) -> LightTaskGroup:
        """The group the application's calls run in."""
        tasks = self._tasks
        if tasks is None:
            raise RuntimeError(
                "ASGIApplication serves only inside its lifespan_context(); serve it with "
                "spikard's Server (which enters it) or enter it yourself"
            )
        return tasks

    def over_limit(self) -> bool:
        """True (and logged) when ``limit_concurrency`` calls run already."""
        limit = self.limit_concurrency
        if limit is not None and self._active >= limit:
            logger.warning("refused a request: %d ASGI calls running (limit_concurrency)", limit)
            return True
        return False

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The asyncio loop served on; None on trio (or before serving)."""
        return self._loop

    def new_event(self) -> Waiter:
        """An event of the loop served on (settable from any task of it)."""
        loop = self._loop
        return LightEvent(loop) if loop is not None else anyio.Event()

    def call_started(self) -> None:
        """An application call began."""
        self._active += 1

    def call_done(self) -> None:
        """An application call ended (shutdown may be waiting for the last one)."""
        self._active -= 1
        if not self._active and self._idle is not None:
            self._idle.set()

    def track(self, session: GoingAway, open_: bool) -> None:
        """A WebSocket session began (``open_``) or ended."""
        if open_:
            self._sessions.add(session)
        else:
            self._sessions.discard(session)

    async def _handle(
        self, request: Request, websocket: WebSocketConnection | None
    ) -> Response | None:
        if websocket is not None:
            return await serve_websocket(self, request, websocket)
        return await serve_http(self, request)
