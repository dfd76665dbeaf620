"""The :class:`Spikard` application: routes, decorators, running and testing."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, MutableMapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, cast

import anyio
from typing_extensions import TypeVar

from ..config import HTTPConfig, WebSocketConfig
from ..connection.contract import RequestHandler, WebSocketConnection
from ..datastructures import State
from ..errors import HandshakeRejected, RoutingError
from ..files import FileResponse, StaticFiles
from ..pubsub import Broker, create_broker
from ..requests import Request
from ..responses import PlainTextResponse, Response
from ..sse import DEFAULT_PING, EventSourceResponse
from ..streams.runner import SessionStart, run_session
from ..testing.server import TestServerInfo, running_test_server
from ..typed.policy import OnInvalid
from .handshake_gate import HandshakeGate, reject_with
from .http_adapter import HTTPEndpoint, adapt_http_handler
from .middleware import (
    CallNext,
    ExceptionHandler,
    ExceptionHandlers,
    Middleware,
    check_middleware,
    compose,
)
from .routing import PathPattern, Route, RouteKind
from .websocket_adapter import build_websocket_endpoint

if TYPE_CHECKING:
    from ..server.tls import ReloadingContext

__all__ = ["Spikard"]

logger = logging.getLogger("spikard.http")

_F = TypeVar("_F", bound=Callable[..., Any])
StateT = TypeVar("StateT", default=State)
"""The type of ``app.state``: :class:`~spikard.State` unless ``Spikard(state=...)`` says."""
_M = TypeVar("_M", bound=Middleware)


class Spikard(Generic[StateT]):
    """A WebSocket and HTTP application.

    ::

        app = Spikard()

        @app.websocket("/echo")
        async def echo(socket: WebSocket):
            async for message in socket:
                yield message

        @app.get("/")
        async def index(request: Request) -> str:
            return "hello"

    Args:
        websocket: WebSocket limits and timers (max message size, keepalive, ...).
        http: HTTP limits and timers (header and body sizes, timeouts, shutdown deadline).
        lifespan: ``lifespan(app)`` returns an async context manager entered before the server
            listens and exited after it drained; see also :meth:`on_startup`.
        broker: the pub/sub broker (:attr:`broker`): a :class:`~spikard.pubsub.Broker`, or a
            URL for :func:`~spikard.pubsub.create_broker` (``"redis://127.0.0.1:6379/0"``);
            in-memory by default. It is started before the startup hooks and closed after
            the shutdown hooks, in every worker process.
    """

    def __init__(
        self,
        *,
        websocket: WebSocketConfig | None = None,
        http: HTTPConfig | None = None,
        lifespan: Callable[[Spikard[StateT]], AbstractAsyncContextManager[None]] | None = None,
        broker: Broker | str | None = None,
        state: StateT | None = None,
    ) -> None:
        self.state: StateT = cast("StateT", State()) if state is None else state
        """Process-wide objects of your own (``app.state.db``), see :class:`~spikard.State`."""
        self.websocket_config = websocket or WebSocketConfig()
        self.http_config = http or HTTPConfig()
        self._lifespan = lifespan
        self.broker: Broker = broker if isinstance(broker, Broker) else create_broker(broker)
        """Publish, subscribe and presence for this app's handlers."""
        self._startup: list[Callable[[], Any]] = []
        self._shutdown: list[Callable[[], Any]] = []
        self._http_routes: list[Route[HTTPEndpoint]] = []
        self._websocket_routes: list[Route[SessionStart]] = []
        self._middleware: list[Middleware] = []
        self._exception_handlers = ExceptionHandlers()
        self._http_entry: CallNext = self._handle_http

    # ---- registration ----------------------------------------------------------------------

    @property
    def routes(self) -> tuple[Route[Any], ...]:
        """Every registered route, WebSocket routes first, each in registration order."""
        return (*self._websocket_routes, *self._http_routes)

    def websocket(
        self,
        path: str,
        *,
        receive: Any = None,
        send: Any = None,
        subprotocols: Iterable[str] = (),
        on_invalid: OnInvalid = "close",
    ) -> Callable[[_F], _F]:
        """Register a WebSocket handler for ``path`` (keywords: :meth:`add_websocket_route`).

        ::

            @app.websocket("/chat", subprotocols=("chat.v1",), on_invalid="reply")
            async def chat(socket: WebSocket[Join | Say]) -> AsyncIterator[Event]:
                async for message in socket:  # validated Join or Say values
                    yield Event(...)
        """

        def register(function: _F) -> _F:
            self.add_websocket_route(
                path,
                function,
                receive=receive,
                send=send,
                subprotocols=subprotocols,
                on_invalid=on_invalid,
            )
            return function

        return register

    def add_websocket_route(
        self,
        path: str,
        handler: Callable[..., Any],
        *,
        receive: Any = None,
        send: Any = None,
        subprotocols: Iterable[str] = (),
        on_invalid: OnInvalid = "close",
    ) -> None:
        """Register ``handler`` for WebSocket connections to ``path``.

        The handler's shape, parameters and annotations are checked now (see
        :mod:`spikard.app.websocket_adapter`), and the codecs of its message types built.

        Args:
            path: the path template (``/rooms/{room}``).
            handler: the handler (stream style, or returning a ``WebSocketResponse``).
            receive: the type of incoming messages (validated from JSON); wins over the
                annotation ``socket: WebSocket[T]``. None: raw messages.
            send: the type of outgoing messages (encoded with its encoder); wins over the
                return annotation ``AsyncIterator[T]``.
            subprotocols: the subprotocols the route speaks, in its order of preference:
                when the handler does not choose one, the accept picks the first of the
                client's offers that is in this list (none: accepted without one).
            on_invalid: what a message that fails its type (or is not JSON, for
                ``receive_json()``) gets: ``"close"`` (1007), ``"reply"``, ``"raise"`` or a
                function of the error (:data:`spikard.typed.OnInvalid`).

        Raises:
            RoutingError: ``path`` is malformed or already has a WebSocket handler, the
                handler cannot serve it, or its types need a library that is not installed.
        """
        pattern = PathPattern(path)
        if any(route.pattern.template == path for route in self._websocket_routes):
            raise RoutingError(f"a WebSocket handler for {path!r} already exists")
        endpoint = build_websocket_endpoint(
            handler,
            path,
            receive=receive,
            send=send,
            subprotocols=subprotocols,
            on_invalid=on_invalid,
            placeholders=pattern.param_names,
        )
        self._websocket_routes.append(
            Route(
                pattern,
                frozenset({"GET"}),
                endpoint.start,
                function=handler,
                kind="websocket",
                receive_type=endpoint.receive_type,
                send_type=endpoint.send_type,
                subprotocols=endpoint.subprotocols,
            )
        )

    def route(
        self,
        path: str,
        methods: Iterable[str] = ("GET",),
        *,
        max_body_size: int | None = None,
    ) -> Callable[[_F], _F]:
        """Register an HTTP handler for ``path`` and ``methods`` (see :meth:`add_route`)."""

        def register(function: _F) -> _F:
            self.add_route(path, function, methods, max_body_size=max_body_size)
            return function

        return register

    def add_route(
        self,
        path: str,
        handler: Callable[..., Any],
        methods: Iterable[str] = ("GET",),
        *,
        max_body_size: int | None = None,
    ) -> None:
        """Register ``handler`` for HTTP requests to ``path`` with one of ``methods``.

        A GET route answers HEAD too. ``max_body_size`` (bytes) replaces
        ``HTTPConfig.max_body_size`` for this route's request bodies, larger or smaller.

        Raises:
            RoutingError: a malformed path, a method that already has a handler on the same
                path, or a ``max_body_size`` that is not a positive int.
        """
        if max_body_size is not None and (
            isinstance(max_body_size, bool)
            or not isinstance(max_body_size, int)
            or max_body_size <= 0
        ):
            raise RoutingError(f"max_body_size must be a positive int, got {max_body_size!r}")
        self._add_http_route(path, handler, methods, max_body_size, "http", handler)

    def _add_http_route(
        self,
        path: str,
        handler: Callable[..., Any],
        methods: Iterable[str],
        max_body_size: int | None,
        kind: RouteKind,
        function: Callable[..., Any],
    ) -> None:
        pattern = PathPattern(path)
        wanted = frozenset(method.upper() for method in methods)
        for route in self._http_routes:
            if route.pattern.template == path and route.methods & wanted:
                raise RoutingError(
                    f"{sorted(route.methods & wanted)} {path!r} already has a handler"
                )
        label = f"@app.sse({path!r})" if kind == "sse" else f"{'/'.join(sorted(wanted))} {path}"
        endpoint = adapt_http_handler(handler, pattern.param_names, label)
        self._http_routes.append(
            Route(pattern, wanted, endpoint, max_body_size, function=function, kind=kind)
        )

    def sse(self, path: str, *, ping: float | None = DEFAULT_PING) -> Callable[[_F], _F]:
        """Register a GET route that streams Server-Sent Events from an async generator.

        The generator yields :class:`~spikard.sse.ServerSentEvent`, ``str`` or JSON-able
        values; it is sugar for returning ``EventSourceResponse(generator, ping=ping)``.

        Raises:
            RoutingError: the function is not an async generator function.
        """

        def register(function: _F) -> _F:
            if not inspect.isasyncgenfunction(function):
                raise RoutingError(
                    f"@app.sse({path!r}) needs an async generator function (async def with "
                    f"yield); {getattr(function, '__qualname__', function)!r} is not one"
                )

            @functools.wraps(function)
            def events(*args: Any, **kwargs: Any) -> EventSourceResponse:
                return EventSourceResponse(function(*args, **kwargs), ping=ping)

            self._add_http_route(path, events, ("GET",), None, "sse", function)
            return function

        return register

    def static(
        self,
        prefix: str,
        directory: str | os.PathLike[str],
        *,
        html: bool = False,
        follow_symlinks: bool = False,
    ) -> StaticFiles:
        """Serve the files under ``directory`` at ``prefix`` (GET and HEAD).

        ``app.static("/assets", "public")`` answers ``/assets/css/site.css`` with
        ``public/css/site.css``; see :class:`~spikard.StaticFiles` for what is refused (404)
        and for ``html`` (``index.html`` for directories, ``404.html``). Routes registered
        before it on overlapping paths take precedence.

        Raises:
            RoutingError: ``directory`` is not a directory, or ``prefix`` is malformed.
        """
        files = StaticFiles(directory, html=html, follow_symlinks=follow_symlinks)
        base = prefix.rstrip("/")
        self._add_http_route(base + "/{path:path}", files, ("GET",), None, "static", files)
        if base and html:

            def to_directory(request: Request) -> Response:
                """``/prefix`` is the directory: send the browser to ``/prefix/``."""
                query = f"?{request.query_string}" if request.query_string else ""
                return Response(status_code=307, headers={"location": f"{base}/{query}"})

            self.add_route(base, to_directory, ("GET",))
        return files

    def get(self, path: str, *, max_body_size: int | None = None) -> Callable[[_F], _F]:
        """Register a GET (and HEAD) handler."""
        return self.route(path, ("GET",), max_body_size=max_body_size)

    def post(self, path: str, *, max_body_size: int | None = None) -> Callable[[_F], _F]:
        """Register a POST handler."""
        return self.route(path, ("POST",), max_body_size=max_body_size)

    def put(self, path: str, *, max_body_size: int | None = None) -> Callable[[_F], _F]:
        """Register a PUT handler."""
        return self.route(path, ("PUT",), max_body_size=max_body_size)

    def patch(self, path: str, *, max_body_size: int | None = None) -> Callable[[_F], _F]:
        """Register a PATCH handler."""
        return self.route(path, ("PATCH",), max_body_size=max_body_size)

    def delete(self, path: str, *, max_body_size: int | None = None) -> Callable[[_F], _F]:
        """Register a DELETE handler."""
        return self.route(path, ("DELETE",), max_body_size=max_body_size)

    # ---- middleware and exception handlers -------------------------------------------------

    def middleware(self, middleware: _M) -> _M:
        """Add a middleware, ``async def m(request, call_next) -> Response``; also a decorator.

        It runs for every HTTP request and on every WebSocket handshake; the first added is
        the outermost. It may answer by itself, or ``await call_next(request)`` and return
        (or change) that response. On a handshake ``call_next`` returns once the handler
        accepted (a ``101`` response: headers set on it go out with the 101) or refused;
        returning any other response refuses the handshake with it.

        Raises:
            RoutingError: ``middleware`` is not an async callable taking two arguments.
        """
        self._middleware.append(check_middleware(middleware))
        self._http_entry = compose(self._middleware, self._handle_http)
        return middleware

    def exception_handler(self, exc_class: type[Exception]) -> Callable[[_F], _F]:
        """Register ``handler(request, exc)`` for ``exc_class`` (and subclasses), as a decorator.

        Used for exceptions from HTTP handlers and middleware, and from WebSocket handlers
        before the handshake was answered (the response refuses the handshake). It may be
        sync or async and return anything a route may return; the most specific registered
        class of the exception wins.
        """

        def register(function: _F) -> _F:
            self.add_exception_handler(exc_class, function)
            return function

        return register

    def add_exception_handler(self, exc_class: type[Exception], handler: ExceptionHandler) -> None:
        """Register ``handler`` for ``exc_class``; see :meth:`exception_handler`.

        Raises:
            RoutingError: ``exc_class`` is not an Exception subclass or ``handler`` does not
                take ``(request, exc)``.
        """
        self._exception_handlers.add(exc_class, handler)

    # ---- lifespan --------------------------------------------------------------------------

    def on_startup(self, function: _F) -> _F:
        """Run ``function`` (sync or async) before the server accepts connections."""
        self._startup.append(function)
        return function

    def on_shutdown(self, function: _F) -> _F:
        """Run ``function`` (sync or async) after the server drained, in reverse order."""
        self._shutdown.append(function)
        return function

    @asynccontextmanager
    async def lifespan_context(self) -> AsyncIterator[None]:
        """Startup hooks, then the ``lifespan`` context; on exit the reverse, shielded."""
        async with AsyncExitStack() as stack:
            if not self.broker.running:
                await stack.enter_async_context(self.broker)
            for hook in self._startup:
                await _call(hook)
            for hook in self._shutdown:
                stack.push_async_callback(_shielded, hook)
            if self._lifespan is not None:
                await stack.enter_async_context(self._lifespan(self))
            yield

    # ---- request handling ------------------------------------------------------------------

    @property
    def request_handler(self) -> RequestHandler:
        """What spikard's server calls for each request (:meth:`handle`)."""
        return self.handle

    async def handle(
        self, request: Request, upgrade: WebSocketConnection | None
    ) -> Response | None:
        """Answer ``request``, or run the WebSocket session when ``upgrade`` is given."""
        if upgrade is not None:
            for ws_route in self._websocket_routes:
                params = ws_route.pattern.match(request.path)
                if params is not None:
                    request.path_params = params
                    await self._run_session(
                        request, upgrade, ws_route.handler, ws_route.pattern.template
                    )
                    return None
        try:
            response = await self._http_entry(request)
        except Exception as exc:  # from a middleware: the handler's are answered inside
            response = await self._exception_handlers.respond(request, exc)
        if isinstance(response, FileResponse) and not response.prepared:
            response = await response.prepare(request)  # one a middleware made
        return response

    async def _run_session(
        self, request: Request, upgrade: WebSocketConnection, start: SessionStart, route: str
    ) -> None:
        on_error = None
        if self._exception_handlers:

            async def on_error(exc: Exception) -> HandshakeRejected | None:
                return await self._handshake_rejection(request, exc)

        if not self._middleware:
            await run_session(upgrade, start, on_error, route)
            return
        gate = HandshakeGate(upgrade)
        started = False
        async with anyio.create_task_group() as task_group:

            async def session() -> None:
                try:
                    await run_session(gate, start, on_error, route)
                finally:
                    gate.session_ended()

            async def endpoint(request: Request) -> Response:
                nonlocal started
                if started:
                    raise RuntimeError("call_next was called twice for one WebSocket handshake")
                started = True
                task_group.start_soon(session)
                return await gate.decision()

            try:
                response = await compose(self._middleware, endpoint)(request)
            except Exception as exc:
                response = await self._exception_handlers.respond(request, exc)
            if started:
                gate.answer(response)  # the session goes on (or ends) in the task group
            else:
                await reject_with(upgrade, response)  # answered before the handler ran

    async def _handshake_rejection(
        self, request: Request, exc: Exception
    ) -> HandshakeRejected | None:
        """The registered handler's answer to ``exc`` from a handler before its handshake."""
        if self._exception_handlers.find(exc) is None:
            return None
        response = await self._exception_handlers.respond(request, exc)
        status = response.status_code
        if not 400 <= status <= 599:
            logger.error(
                "the exception handler for %s answered a WebSocket handshake with %d; "
                "a refusal needs 4xx or 5xx: answering 500",
                type(exc).__name__,
                status,
            )
            return HandshakeRejected(500)
        return HandshakeRejected(status, response.body, dict(response.headers))

    def _match_http(self, request: Request) -> tuple[Route[HTTPEndpoint] | None, set[str]]:
        allowed: set[str] = set()
        method = "GET" if request.method == "HEAD" else request.method
        for route in self._http_routes:
            params = route.pattern.match(request.path)
            if params is None:
                continue
            if method in route.methods:
                request.path_params = params
                return route, allowed
            allowed |= route.methods
        return None, allowed

    async def _handle_http(self, request: Request) -> Response:
        route, allowed = self._match_http(request)
        if route is None:
            if allowed:
                if "GET" in allowed:
                    allowed.add("HEAD")
                return PlainTextResponse(
                    "Method Not Allowed", 405, {"allow": ", ".join(sorted(allowed))}
                )
            if any(r.pattern.match(request.path) is not None for r in self._websocket_routes):
                return PlainTextResponse(
                    "Upgrade Required: this path speaks WebSocket",
                    426,
                    {
                        "upgrade": "websocket",
                        "connection": "Upgrade",
                        "sec-websocket-version": "13",
                    },
                )
            return PlainTextResponse("Not Found", 404)
        if route.max_body_size is not None:
            try:
                request.max_body_size = route.max_body_size
            except RuntimeError:
                pass  # a middleware read the body already, under the app-wide limit
        try:
            response = await route.handler(request)
        except Exception as exc:
            response = await self._exception_handlers.respond(request, exc)
        if isinstance(response, FileResponse):
            # Conditional and range requests, before the middleware sees the response.
            response = await response.prepare(request)
        return response

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        """Serve one ASGI 3 scope: the app is an ASGI application (see ``docs/asgi.md``).

        ``uvicorn module:app``, ``hypercorn module:app``, ``granian --interface asgi
        module:app`` serve it; ``Mount("/rt", app=app)`` embeds it in a Starlette app (run
        ``app.lifespan_context()`` in the host's lifespan then). Not on the path of
        spikard's own server.
        """
        from ..asgi.hosted import serve_asgi

        await serve_asgi(self, scope, receive, send)

    # ---- running ---------------------------------------------------------------------------

    def run(
        self,
        host: str = "127.0.0.1",
        port: int = 8000,
        *,
        backend: str = "asyncio",
        ssl_context: ssl.SSLContext | ReloadingContext | None = None,
        log_level: str | None = "info",
    ) -> None:
        """Serve until SIGINT or SIGTERM (a second signal cuts the drain short).

        Args:
            host: interface to listen on.
            port: TCP port (0 picks a free one).
            backend: ``"asyncio"`` (uvloop when installed) or ``"trio"``.
            ssl_context: serve ``https``/``wss``.
            log_level: configure logging at this level; None leaves logging alone.
        """
        from ..server.run import run

        run(self, host, port, backend=backend, ssl_context=ssl_context, log_level=log_level)

    @asynccontextmanager
    async def test_server(
        self, *, ssl_context: ssl.SSLContext | None = None, port: int = 0
    ) -> AsyncIterator[TestServerInfo]:
        """Serve the app on an ephemeral 127.0.0.1 port in the running event loop.

        ::

            async with app.test_server() as server:
                async with websockets.connect(server.ws_url("/echo")) as ws:
                    ...

        Leaving the block shuts the server down gracefully (open sockets get 1001). ``port``
        0 (the default) picks a free one.
        """
        async with running_test_server(self, ssl_context=ssl_context, port=port) as server:
            yield server

    # ---- AsyncAPI --------------------------------------------------------------------------

    def asyncapi(
        self,
        *,
        title: str = "spikard app",
        version: str = "1.0.0",
        description: str | None = None,
        servers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Return the AsyncAPI 3.0.0 document of the WebSocket and SSE routes, as a dict.

        One channel per WebSocket route (``receive`` and ``send`` operations) and per SSE
        route (a ``send`` operation), with path parameters, subprotocols and payload schemas
        from the declared message types; see :mod:`spikard.asyncapi.document`.

        Args:
            title: ``info.title``.
            version: ``info.version``, the version of your application.
            description: ``info.description``.
            servers: name to URL (``{"production": "wss://chat.example.com"}``) or to an
                AsyncAPI Server Object.

        Raises:
            TypeError: a declared message type has no JSON Schema (the message names the
                route), or msgspec/pydantic is missing for it.
            ValueError: a server URL without a scheme or host.
        """
        from ..asyncapi import build_document

        return build_document(
            self.routes, title=title, version=version, description=description, servers=servers
        )

    def add_asyncapi_route(
        self,
        path: str = "/asyncapi.json",
        *,
        title: str = "spikard app",
        version: str = "1.0.0",
        description: str | None = None,
        servers: dict[str, Any] | None = None,
    ) -> None:
        """Serve :meth:`asyncapi` as ``application/json`` on GET (and HEAD) ``path``.

        The document is built at the first request and kept; it is built again when routes
        were registered since. The route itself is HTTP, so it is not in the document.

        Raises:
            RoutingError: ``path`` is malformed or already has a GET handler.
        """
        from ..asyncapi import AsyncAPIEndpoint

        endpoint = AsyncAPIEndpoint(
            self, title=title, version=version, description=description, servers=servers
        )
        self.add_route(path, endpoint, ("GET",))


async def _call(hook: Callable[[], Any]) -> None:
    result = hook()
    if inspect.isawaitable(result):
        await result


async def _shielded(hook: Callable[[], Any]) -> None:
    with anyio.CancelScope(shield=True):
        await _call(hook)
