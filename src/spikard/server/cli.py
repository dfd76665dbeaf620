"""``spikard module:app`` (or ``python -m spikard``): import an application and serve it.

Every failure that is the user's to fix (a target that does not import, an object that is
not a spikard application, a port that cannot be bound, a startup hook that raises) ends
with one line on stderr and exit status 1; usage errors (an unknown option) exit with 2.

A first argument without a colon names a command instead of an application:
``spikard asyncapi module:app`` prints the application's AsyncAPI document.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import logging
import logging.config
import os
import random
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from .._version import __version__
from ..app.application import Spikard
from ..asgi.serving import (
    ASGIApp,
    ASGIApplication,
    Message,
    Receive,
    Scope,
    Send,
    default_http_config,
    default_websocket_config,
    is_asgi_app,
)
from ..config import HTTPConfig
from ..connection.contract import Application
from ..protocol.forwarded import TrustedProxies
from .bind import BindError, check_port
from .run import hold_sighup, run
from .tls import ReloadingContext, TLSConfig, TLSConfigError, parse_cert_reqs
from .workers import RETIRED_EXIT, run_workers

__all__ = [
    "RequestLimit",
    "build_parser",
    "call_factory",
    "check_app",
    "load_app",
    "main",
    "resolve_app",
    "with_default_headers",
]

PROG = "spikard"
SERVER_HEADER = "spikard"
"""The ``Server`` header ``--server-header`` sends (unless the app configured its own)."""
DISTRIBUTION = "spikard-stream"
"""The name this project is installed under (``pip show spikard-stream``); ``spikard`` on
the package index is an unrelated project."""

logger = logging.getLogger("spikard.server")

_PASSWORD_VARIABLE = "SPIKARD_SSL_KEYFILE_PASSWORD"
"""Where ``--ssl-keyfile-password`` is read from by default (how ``--workers`` passes it on,
out of the process list)."""

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""``trace`` is uvicorn's level below debug; spikard logs nothing below debug, so it is debug."""


def load_app(target: str, app_dir: str = ".") -> object:
    """Import ``module:attribute`` (dots allowed in both), looking in ``app_dir`` first.

    ``app_dir`` (``--app-dir``; the current directory by default) goes first on
    ``sys.path`` before the import.

    Raises:
        SystemExit: the target is malformed, ``app_dir`` is no directory, the module
            cannot be imported, or the attribute does not exist; the message says which.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(
            f"error: expected 'module:attribute' (like 'examples.chat:app'), got {target!r}"
        )
    directory = os.path.abspath(app_dir or ".")
    if not os.path.isdir(directory):
        raise SystemExit(f"error: --app-dir {app_dir!r} is not a directory")
    if not sys.path or sys.path[0] != directory:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise SystemExit(f"error: could not import module {module_name!r}") from exc
        raise
    app: object = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise SystemExit(
                f"error: module {module_name!r} has no attribute {attribute!r}"
            ) from None
    return app


def call_factory(factory: object, target: str) -> object:
    """``--factory``: call ``factory`` with no arguments and return the app it makes.

    Raises:
        SystemExit: ``factory`` is not callable, or calling it raised; one line says which.
    """
    if not callable(factory):
        kind = type(factory).__name__
        raise SystemExit(f"error: --factory: {target!r} is not callable (it is a {kind})")
    try:
        return factory()
    except Exception as exc:
        raise SystemExit(
            f"error: --factory: calling {target!r} raised {type(exc).__name__}: {exc}"
        ) from None


def check_app(app: object, target: str) -> Spikard:
    """Return ``app`` if it is a spikard application (what ``spikard asyncapi`` needs).

    Raises:
        SystemExit: ``app`` is a plain ASGI application or something else; the one-line
            message says which.
    """
    if isinstance(app, Spikard):
        return app
    if is_asgi_app(app):
        raise SystemExit(
            f"error: {target!r} is a plain ASGI application, not a spikard one; "
            "only spikard applications describe their WebSockets in AsyncAPI"
        )
    raise SystemExit(_not_an_app(app, target))


def _not_an_app(app: object, target: str) -> str:
    kind = "class" if isinstance(app, type) else type(app).__name__
    return (
        f"error: {target!r} is not a spikard application (it is a {kind}); "
        "point at a Spikard() instance, like 'examples.chat:app', or at an ASGI 3 app "
        "('async def app(scope, receive, send)')"
    )


_ASGI_ONLY = (
    "lifespan",
    "root_path",
    "ws_max_size",
    "ws_max_queue",
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_per_message_deflate",
    "limit_concurrency",
    "limit_max_requests",
    "limit_max_requests_jitter",
    "ws_allowed_origins",
    "ws_max_connections_per_client",
    "ws_handshake_rate",
    "h11_max_incomplete_event_size",
    "header",
)
"""Options that configure the server for a plain ASGI app (a spikard app configures itself)."""


def resolve_app(app: object, target: str, args: argparse.Namespace) -> Application:
    """What to serve for ``app``: a spikard app as it is, a plain ASGI app wrapped.

    ``--interface`` decides: ``auto`` (the default) serves a :class:`~spikard.Spikard` app
    as one and wraps any other ASGI 3 callable in an
    :class:`~spikard.asgi.serving.ASGIApplication`; ``asgi`` wraps even a spikard app
    (served through its ASGI interface); ``spikard`` accepts only a spikard app.

    Raises:
        SystemExit: ``app`` does not fit ``--interface``, or an ASGI-only option was given
            for a spikard app, or an option's value is out of range; one line says which.
    """
    interface = "asgi" if args.interface == "asgi3" else args.interface
    if interface in ("asgi2", "wsgi"):
        raise SystemExit(
            f"error: --interface {interface} is not supported: spikard serves ASGI 3 apps "
            "('async def app(scope, receive, send)')"
        )
    native = isinstance(app, Spikard)
    if interface == "spikard" or (interface == "auto" and native):
        if not native:
            if is_asgi_app(app):
                raise SystemExit(
                    f"error: {target!r} is a plain ASGI application, not a spikard one; "
                    "serve it with --interface asgi (or auto)"
                )
            raise SystemExit(_not_an_app(app, target))
        given = [name for name in _ASGI_ONLY if getattr(args, name) is not None]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise SystemExit(
                f"error: {option} configures the server for a plain ASGI app; a spikard app "
                "sets its own limits (Spikard(websocket=WebSocketConfig(...)))"
            )
        spikard_app = cast("Spikard", app)
        try:
            spikard_app.http_config = _http_config(spikard_app.http_config, args)
        except ValueError as exc:
            raise SystemExit(f"error: {exc}") from None
        return spikard_app
    if not is_asgi_app(app):
        if interface == "asgi":
            raise SystemExit(
                f"error: {target!r} is not an ASGI application: --interface asgi needs "
                "'async def app(scope, receive, send)' or an object with such a __call__"
            )
        raise SystemExit(_not_an_app(app, target))
    defaults = default_websocket_config()
    try:
        websocket = dataclasses.replace(
            defaults,
            max_message_size=_given(args.ws_max_size, defaults.max_message_size),
            max_queue=_given(args.ws_max_queue, defaults.max_queue),
            ping_interval=(
                defaults.ping_interval
                if args.ws_ping_interval is None
                else (args.ws_ping_interval or None)
            ),
            ping_timeout=_given(args.ws_ping_timeout, defaults.ping_timeout),
            permessage_deflate=_given(args.ws_per_message_deflate, defaults.permessage_deflate),
            allowed_origins=_origins(args.ws_allowed_origins, defaults.allowed_origins),
            max_connections_per_client=_given(
                args.ws_max_connections_per_client, defaults.max_connections_per_client
            ),
            handshake_rate=_given(args.ws_handshake_rate, defaults.handshake_rate),
        )
        http = _http_config(default_http_config(), args)
        head = args.h11_max_incomplete_event_size
        if head is not None:
            # As default_http_config has it: the head is bounded by its size only.
            http = dataclasses.replace(http, max_header_bytes=head, max_header_count=head // 4 or 1)
        asgi_app = cast("ASGIApp", app)
        if args.header:
            asgi_app = with_default_headers(asgi_app, args.header)
        if args.limit_max_requests_jitter is not None and args.limit_max_requests is None:
            raise SystemExit("error: --limit-max-requests-jitter needs --limit-max-requests")
        if args.limit_max_requests is not None:
            # Each process draws its own jitter, so that workers are not replaced together.
            jitter = random.randint(0, args.limit_max_requests_jitter or 0)
            asgi_app = RequestLimit(asgi_app, args.limit_max_requests + jitter)
        return ASGIApplication(
            asgi_app,
            lifespan=args.lifespan or "auto",
            root_path=args.root_path or "",
            http_config=http,
            websocket_config=websocket,
            limit_concurrency=args.limit_concurrency,
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def _http_config(base: HTTPConfig, args: argparse.Namespace) -> HTTPConfig:
    """``base`` with what the options that apply to every app change (None: unchanged).

    Raises:
        ValueError: a value ``HTTPConfig`` refuses.
    """
    changes: dict[str, Any] = {}
    if args.forwarded_allow_ips is not None:
        changes["forwarded_allow_ips"] = args.forwarded_allow_ips
    if args.proxy_headers is False:  # uvicorn's --no-proxy-headers: no peer is believed
        changes["forwarded_allow_ips"] = ()
    if args.timeout_keep_alive is not None:
        changes["keep_alive_timeout"] = args.timeout_keep_alive
    if args.timeout_graceful_shutdown is not None:
        changes["shutdown_timeout"] = args.timeout_graceful_shutdown
    if args.backlog is not None:
        changes["backlog"] = args.backlog
    if args.server_header is True and base.server_header is None:
        changes["server_header"] = SERVER_HEADER
    elif args.server_header is False:
        changes["server_header"] = None
    return dataclasses.replace(base, **changes) if changes else base


def with_default_headers(app: ASGIApp, headers: Sequence[tuple[bytes, bytes]]) -> ASGIApp:
    """``--header``: ``app``, with ``headers`` on every HTTP response that lacks them.

    A header the application sets itself wins over a default of the same name.
    """
    defaults = tuple(headers)

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_defaults(message: Message) -> None:
            if message["type"] == "http.response.start":
                given = list(message.get("headers", ()))
                present = {bytes(name).lower() for name, _ in given}
                missing = [(name, value) for name, value in defaults if name not in present]
                if missing:
                    message = {**message, "headers": [*missing, *given]}
            await send(message)

        await app(scope, receive, send_with_defaults)

    return serve


class RequestLimit:
    """``--limit-max-requests``: ``app``, after whose ``limit``-th call the server stops.

    The call that reaches the limit starts a graceful shutdown (a SIGTERM to this process,
    the signal the server already stops on): it and the calls in flight finish, new
    connections are refused, and the process exits with status 0; under ``--workers`` with
    :data:`~.workers.RETIRED_EXIT`, and the supervisor starts a fresh worker in its place.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 1:
            raise ValueError("--limit-max-requests must be at least 1")
        self.app = app
        self.limit = limit
        self.calls = 0

    @property
    def reached(self) -> bool:
        """True once the limit was reached (the shutdown it started is this process's end)."""
        return self.calls >= self.limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count a request or WebSocket, start the shutdown at the limit, call the app."""
        if scope["type"] in ("http", "websocket"):
            self.calls += 1
            if self.calls == self.limit:
                logger.info("--limit-max-requests %d reached: shutting down", self.limit)
                signal.raise_signal(signal.SIGTERM)
        await self.app(scope, receive, send)


_T = TypeVar("_T")


def _origins(
    value: str | None, default: str | tuple[str, ...] | None
) -> str | tuple[str, ...] | None:
    """``--ws-allowed-origins``: ``same-origin``, ``*``, or origins separated by commas."""
    if value is None:
        return default
    value = value.strip()
    if value in ("same-origin", "*"):
        return value
    return tuple(origin.strip() for origin in value.split(",") if origin.strip())


def _addresses(value: str) -> tuple[str, ...]:
    """``--forwarded-allow-ips``: addresses or networks separated by commas, or ``*``."""
    entries = tuple(entry.strip() for entry in value.split(",") if entry.strip())
    try:
        TrustedProxies(entries)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return entries


def _given(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r} (use true or false)")


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number, 0 or more: {text!r}")
    return value


_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


_SERVER_OWNED = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"upgrade", b"te")
)
"""Fields that frame the message or the connection: the server's to send, never a default."""


def _header(text: str) -> tuple[bytes, bytes]:
    """``--header NAME:VALUE``: a header field, its name lowercased."""
    name, colon, value = text.partition(":")
    try:
        name_bytes = name.strip().lower().encode("ascii")
        value_bytes = value.strip().encode("latin-1")
    except UnicodeEncodeError:
        name_bytes = value_bytes = b"\n"
    bad_value = any((byte < 0x20 and byte != 0x09) or byte == 0x7F for byte in value_bytes)
    if not colon or not name_bytes or not set(name_bytes) <= _TOKEN or bad_value:
        raise argparse.ArgumentTypeError(f"not a NAME:VALUE header: {text!r}")
    if name_bytes in _SERVER_OWNED:
        raise argparse.ArgumentTypeError(
            f"{name.strip()!r} frames the response; the server sets it, not a default header"
        )
    return name_bytes, value_bytes


def _cert_reqs(text: str) -> ssl.VerifyMode:
    try:
        return parse_cert_reqs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _version() -> str:
    return f"{PROG} {__version__} (the {DISTRIBUTION} distribution)"


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of ``spikard module:app [options]``."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Serve a spikard application (HTTP and WebSocket).",
        epilog=(
            "Commands: 'spikard asyncapi module:app' prints the app's AsyncAPI document. "
            "Exit status: 0 after a signal, 1 when the server cannot start (the reason is "
            "one line on stderr), 2 for a usage error."
        ),
    )
    parser.add_argument("app", help="the application, as module:attribute (like examples.chat:app)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface or host name to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=8000,
        help="TCP port, 0-65535; 0 picks a free one (default 8000)",
    )
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop; asyncio uses uvloop when it is installed (default asyncio)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=_LOG_LEVELS,
        help="lowest level logged to stderr; debug adds handshakes, closes and timeouts; "
        "trace (uvicorn's) is debug (default info)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port with SO_REUSEPORT (default 1)",
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="set SO_REUSEPORT, so that several servers can share the port (with --workers: "
        "join servers that already listen on it)",
    )
    parser.add_argument(
        "--ssl-certfile",
        metavar="PEM",
        help="serve https/wss (TLS 1.2 or later, ALPN http/1.1) with this certificate chain; "
        "SIGHUP reloads it",
    )
    parser.add_argument(
        "--ssl-keyfile",
        metavar="PEM",
        help="the certificate's private key (if it is not in --ssl-certfile)",
    )
    parser.add_argument(
        "--ssl-ca-certs",
        metavar="PEM",
        help="CA certificates that client certificates must chain to (with --ssl-cert-reqs)",
    )
    parser.add_argument(
        "--ssl-cert-reqs",
        type=_cert_reqs,
        default=None,
        metavar="MODE",
        help="client certificates: none, optional (checked when sent) or required; "
        "uvicorn's 0, 1, 2 also work (default none)",
    )
    parser.add_argument(
        "--ssl-keyfile-password",
        metavar="PASSWORD",
        default=None,
        help=f"the password of an encrypted --ssl-keyfile (default: ${_PASSWORD_VARIABLE})",
    )
    parser.add_argument(
        "--app-dir",
        default=".",
        metavar="DIR",
        help="import the application from DIR: it goes first on sys.path (default .)",
    )
    parser.add_argument(
        "--factory",
        action="store_true",
        help="the target is a factory: call it with no arguments for the application",
    )
    parser.add_argument(
        "--env-file",
        metavar="PATH",
        help="set environment variables from this .env file before importing the app "
        "(needs python-dotenv; variables already set are kept)",
    )
    parser.add_argument(
        "--log-config",
        metavar="PATH",
        help="configure logging from this file: .json or .yaml (a logging dictConfig), "
        "else .ini (a logging fileConfig); --log-level still sets spikard's loggers",
    )
    parser.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log a line per request to the spikard.access logger at INFO (default on)",
    )
    parser.add_argument(
        "--use-colors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accepted for uvicorn compatibility; spikard's log lines have no colors",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="with --backend asyncio: uvloop needs uvloop installed; auto uses it when it "
        "is (default auto)",
    )
    parser.add_argument(
        "--timeout-keep-alive",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="close an idle keep-alive connection after SECONDS without a new request "
        "(default: the app's HTTPConfig.keep_alive_timeout, 5)",
    )
    parser.add_argument(
        "--timeout-graceful-shutdown",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, give open connections SECONDS to finish before they are "
        "cut (default: the app's HTTPConfig.shutdown_timeout, 10)",
    )
    parser.add_argument(
        "--backlog",
        type=_count,
        default=None,
        metavar="N",
        help="connections the kernel queues before they are accepted (default: the app's "
        "HTTPConfig.backlog, 4096)",
    )
    parser.add_argument(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="believe Forwarded/X-Forwarded-* headers from --forwarded-allow-ips peers; "
        "--no-proxy-headers believes them from no peer (default on)",
    )
    parser.add_argument(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"send 'server: {SERVER_HEADER}' on responses (or the app's "
        "HTTPConfig.server_header); --no-server-header sends none (default: the app's, "
        "none)",
    )
    parser.add_argument(
        "--date-header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accepted for uvicorn compatibility: spikard always sends Date, as RFC 9110 "
        "asks of a server with a clock; --no-date-header has no effect",
    )
    parser.add_argument(
        "--http",
        choices=("auto", "h11", "httptools"),
        default=None,
        help="accepted for uvicorn compatibility, no effect: spikard has one HTTP/1.1 "
        "implementation",
    )
    parser.add_argument(
        "--ws",
        choices=("auto", "websockets", "websockets-sansio", "wsproto"),
        default=None,
        help="accepted for uvicorn compatibility, no effect: spikard has one WebSocket "
        "implementation",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="not supported (exits with an error): restart the server to load new code",
    )
    parser.add_argument(
        "--uds", metavar="PATH", help="not supported (exits with an error): spikard serves TCP"
    )
    parser.add_argument(
        "--fd", metavar="FD", help="not supported (exits with an error): spikard serves TCP"
    )
    asgi = parser.add_argument_group(
        "plain ASGI apps", "how the server runs an ASGI 3 app (named as uvicorn names them)"
    )
    asgi.add_argument(
        "--interface",
        choices=("auto", "asgi", "asgi3", "spikard", "asgi2", "wsgi"),
        default="auto",
        help="auto: a Spikard() app natively, any other ASGI 3 callable through the ASGI "
        "adapter; asgi (or uvicorn's asgi3): always through the adapter; spikard: only a "
        "Spikard() app; asgi2 and wsgi are not supported (default auto)",
    )
    asgi.add_argument(
        "--lifespan",
        choices=("auto", "on", "off"),
        default=None,
        help="the ASGI lifespan protocol: auto uses it when the app speaks it, on requires "
        "it, off never sends it (default auto)",
    )
    asgi.add_argument(
        "--root-path",
        default=None,
        metavar="PATH",
        help="the ASGI root_path of every scope, for an app mounted below PATH behind a "
        "proxy; scope paths include it (default: none)",
    )
    asgi.add_argument(
        "--header",
        action="append",
        type=_header,
        default=None,
        metavar="NAME:VALUE",
        help="a default header on every HTTP response that does not set it (repeatable)",
    )
    asgi.add_argument(
        "--limit-max-requests",
        type=_count,
        default=None,
        metavar="N",
        help="after N requests and WebSockets, shut down gracefully and exit (status 0); "
        "under --workers the worker is replaced (default: no limit)",
    )
    asgi.add_argument(
        "--limit-max-requests-jitter",
        type=_natural,
        default=None,
        metavar="N",
        help="add a random 0 to N to --limit-max-requests, drawn by each worker, so that "
        "workers are not replaced at the same time (default 0)",
    )
    asgi.add_argument(
        "--h11-max-incomplete-event-size",
        type=_count,
        default=None,
        metavar="BYTES",
        help="largest request head (request line and headers); larger answers 431 (default 16384)",
    )
    asgi.add_argument(
        "--ws-max-queue",
        type=_count,
        default=None,
        metavar="N",
        help="incoming WebSocket messages buffered for the app before reading pauses (default 16)",
    )
    asgi.add_argument(
        "--ws-max-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest incoming WebSocket message; larger closes 1009 (default 16777216)",
    )
    asgi.add_argument(
        "--ws-ping-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds between keepalive pings; 0 turns keepalive off (default 20)",
    )
    asgi.add_argument(
        "--ws-ping-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="seconds to wait for a pong before closing with 1011 (default 20)",
    )
    asgi.add_argument(
        "--ws-per-message-deflate",
        type=_boolean,
        default=None,
        metavar="BOOL",
        help="accept permessage-deflate offers, true or false (default true)",
    )
    asgi.add_argument(
        "--limit-concurrency",
        type=int,
        default=None,
        metavar="N",
        help="most ASGI calls (requests and WebSockets) at once; more get 503 (default: none)",
    )
    asgi.add_argument(
        "--ws-allowed-origins",
        default=None,
        metavar="ORIGINS",
        help="browser origins a plain ASGI app's WebSockets accept: same-origin, *, or "
        "origins separated by commas (default *: the app decides, as under uvicorn)",
    )
    asgi.add_argument(
        "--ws-max-connections-per-client",
        type=int,
        default=None,
        metavar="N",
        help="most WebSockets one client address may hold open; more get 429 "
        "(default: no limit, as under uvicorn)",
    )
    asgi.add_argument(
        "--ws-handshake-rate",
        type=float,
        default=None,
        metavar="PER_SECOND",
        help="WebSocket handshakes per second one client address may open (bursts of "
        "1000); faster get 429 (default: no limit, as under uvicorn)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        type=_addresses,
        default=os.environ.get("FORWARDED_ALLOW_IPS"),
        metavar="IPS",
        help="proxies whose Forwarded/X-Forwarded-* headers are believed: addresses or "
        "networks separated by commas, or * (default: $FORWARDED_ALLOW_IPS, else the app's "
        "HTTPConfig.forwarded_allow_ips, 127.0.0.1)",
    )
    parser.add_argument("--version", action="version", version=_version())
    return parser


_FORWARDED = (
    "interface",
    "forwarded_allow_ips",
    "app_dir",
    "log_config",
    "loop",
    "timeout_keep_alive",
    "timeout_graceful_shutdown",
    "backlog",
    *_ASGI_ONLY,
)
"""Options with a value each worker gets again (``--workers``)."""
_FORWARDED_SWITCHES = ("factory", "access_log", "proxy_headers", "server_header")
"""Flags each worker gets again: ``--factory``, ``--access-log`` or ``--no-access-log``..."""


def _worker_arguments(args: argparse.Namespace) -> list[str]:
    """The options again, as each worker (``--workers``) gets them on its command line.

    The key's password is not among them (a command line is visible to every user of the
    machine): the workers read it from ``$SPIKARD_SSL_KEYFILE_PASSWORD``.
    """
    extra = _tls_arguments(args)
    for name in _FORWARDED:
        option = "--" + name.replace("_", "-")
        value = getattr(args, name)
        if value is None:
            continue
        if name == "header":
            for field, text in value:
                extra += [option, f"{field.decode('ascii')}:{text.decode('latin-1')}"]
            continue
        if isinstance(value, tuple):
            value = ",".join(value)
        elif isinstance(value, bool):
            value = str(value).lower()
        extra += [option, str(value)]
    for name in _FORWARDED_SWITCHES:
        value = getattr(args, name)
        if value is True:
            extra.append("--" + name.replace("_", "-"))
        elif value is False and name != "factory":
            extra.append("--no-" + name.replace("_", "-"))
    return extra


def build_asyncapi_parser() -> argparse.ArgumentParser:
    """Return the parser of ``spikard asyncapi module:app [options]``."""
    parser = argparse.ArgumentParser(
        prog=f"{PROG} asyncapi",
        description="Print the application's AsyncAPI 3.0 document as JSON.",
    )
    parser.add_argument("app", help="the application, as module:attribute (like examples.chat:app)")
    parser.add_argument("--title", help="info.title of the document (default 'spikard app')")
    parser.add_argument(
        "--api-version",
        metavar="VERSION",
        help="info.version: the version of your application (default 1.0.0)",
    )
    parser.add_argument("--description", help="info.description of the document")
    parser.add_argument(
        "--server",
        action="append",
        metavar="NAME=URL",
        help="a server of the document, like production=wss://chat.example.com (repeatable)",
    )
    return parser


def _servers(pairs: Sequence[str]) -> dict[str, str]:
    servers: dict[str, str] = {}
    for pair in pairs:
        name, equals, url = pair.partition("=")
        if not name or not equals or not url:
            raise SystemExit(f"error: --server expects NAME=URL, got {pair!r}")
        servers[name] = url
    return servers


def _asyncapi(argv: Sequence[str]) -> None:
    args = build_asyncapi_parser().parse_args(argv)
    app = check_app(load_app(args.app), args.app)
    options: dict[str, Any] = {}
    if args.title is not None:
        options["title"] = args.title
    if args.api_version is not None:
        options["version"] = args.api_version
    if args.description is not None:
        options["description"] = args.description
    if args.server:
        options["servers"] = _servers(args.server)
    try:
        document = app.asyncapi(**options)
    except (TypeError, ValueError) as exc:  # a type without a schema, a malformed server URL
        raise SystemExit(f"error: cannot build the AsyncAPI document: {exc}") from None
    print(json.dumps(document, indent=2))


COMMANDS: dict[str, Callable[[Sequence[str]], None]] = {"asyncapi": _asyncapi}
"""Commands, named by a first argument without a colon (an application target has one)."""


def _serve(argv: Sequence[str]) -> None:
    hold_sighup()  # a worker importing its app must not die of a reload signal
    args = build_parser().parse_args(argv)
    if args.log_level == "trace":
        args.log_level = "debug"
    _check_unsupported(args)
    if args.workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    try:
        check_port(args.host, args.port)
    except BindError as exc:
        raise SystemExit(f"error: {exc}") from None
    _check_tls_options(args)
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        raise SystemExit("error: --backend trio needs trio: pip install trio")
    _check_loop(args)
    if args.env_file is not None:
        _load_env_file(args.env_file)
        _read_environment_again(args)
    if args.log_config is not None:
        _configure_logging_from(args.log_config, args.log_level)
    if args.access_log is False:
        logging.getLogger("spikard.access").setLevel(logging.WARNING)
    # Import and check the application first, so that a bad target fails fast and once,
    # before any worker starts.
    loaded = load_app(args.app, args.app_dir)
    if args.factory:
        loaded = call_factory(loaded, args.app)
    app = resolve_app(loaded, args.app, args)
    # Loaded here under --workers too: a certificate that cannot be loaded fails once.
    ssl_context = _ssl_context(args) if args.ssl_certfile else None
    log_level = None if args.log_config is not None else args.log_level
    if args.workers > 1:
        if args.ssl_keyfile_password is not None:
            os.environ[_PASSWORD_VARIABLE] = args.ssl_keyfile_password  # for the workers
        grace = _given(args.timeout_graceful_shutdown, 10.0) + 20.0
        run_workers(
            args.app,
            args.host,
            args.port,
            workers=args.workers,
            backend=args.backend,
            log_level=args.log_level,
            extra_args=_worker_arguments(args),
            shutdown_grace=max(30.0, grace),
            reuse_port=args.reuse_port,
        )
        return
    run(
        app,
        args.host,
        args.port,
        backend=args.backend,
        ssl_context=ssl_context,
        log_level=log_level,
        reuse_port=args.reuse_port,
        loop=args.loop,
    )
    limit = app.app if isinstance(app, ASGIApplication) else None
    if isinstance(limit, RequestLimit) and limit.reached and os.environ.get("SPIKARD_WORKER"):
        raise SystemExit(RETIRED_EXIT)  # the supervisor replaces this worker


def _check_unsupported(args: argparse.Namespace) -> None:
    """Options of uvicorn's that spikard does not have: one line each, before anything starts."""
    if args.reload:
        raise SystemExit(
            "error: --reload is not supported: spikard does not reload code; restart the "
            "server (or run it under a file watcher)"
        )
    for option in ("uds", "fd"):
        if getattr(args, option) is not None:
            raise SystemExit(
                f"error: --{option} is not supported: spikard listens on TCP (--host, --port)"
            )


def _check_loop(args: argparse.Namespace) -> None:
    """``--loop``: a choice of asyncio loop (uvicorn's option); ``auto`` is spikard's way."""
    if args.loop == "auto":
        return
    if args.backend != "asyncio":
        raise SystemExit(f"error: --loop {args.loop} needs --backend asyncio")
    if args.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        raise SystemExit("error: --loop uvloop needs uvloop: pip install uvloop")


def _load_env_file(path: str) -> None:
    """``--env-file``: set the file's variables (those not set already) in ``os.environ``."""
    try:
        dotenv = importlib.import_module("dotenv")
    except ModuleNotFoundError:
        raise SystemExit(
            "error: --env-file needs python-dotenv: pip install python-dotenv"
        ) from None
    if not os.path.isfile(path):
        raise SystemExit(f"error: --env-file {path!r}: no such file")
    dotenv.load_dotenv(path, override=False)


def _read_environment_again(args: argparse.Namespace) -> None:
    """The defaults that come from the environment, once ``--env-file`` has set it."""
    if args.forwarded_allow_ips is None and "FORWARDED_ALLOW_IPS" in os.environ:
        try:
            args.forwarded_allow_ips = _addresses(os.environ["FORWARDED_ALLOW_IPS"])
        except argparse.ArgumentTypeError as exc:
            raise SystemExit(f"error: FORWARDED_ALLOW_IPS: {exc}") from None


def _configure_logging_from(path: str, level: str) -> None:
    """``--log-config``: configure logging from a dictConfig (.json, .yaml) or fileConfig.

    The file decides handlers and formats; ``level`` (``--log-level``) still sets the level
    of spikard's loggers, as uvicorn's does for its own.
    """
    try:
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                yaml = importlib.import_module("yaml")
            except ModuleNotFoundError:
                raise SystemExit(
                    "error: --log-config with a YAML file needs PyYAML: pip install pyyaml"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            if not os.path.isfile(path):
                raise FileNotFoundError(f"no such file: {path!r}")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except SystemExit:
        raise
    except Exception as exc:  # a file that cannot be read, a config logging refuses
        raise SystemExit(f"error: --log-config {path!r}: {type(exc).__name__}: {exc}") from None
    logging.getLogger("spikard").setLevel(level.upper())


def _check_tls_options(args: argparse.Namespace) -> None:
    for option in ("ssl_keyfile", "ssl_ca_certs", "ssl_cert_reqs", "ssl_keyfile_password"):
        if getattr(args, option) is not None and not args.ssl_certfile:
            raise SystemExit(f"error: --{option.replace('_', '-')} needs --ssl-certfile")
    verifying = args.ssl_cert_reqs not in (None, ssl.CERT_NONE)
    if verifying and args.ssl_ca_certs is None:
        raise SystemExit(
            "error: --ssl-cert-reqs optional or required needs --ssl-ca-certs "
            "(the CA certificates that issue the client certificates)"
        )
    if args.ssl_ca_certs is not None and not verifying:
        raise SystemExit(
            "error: --ssl-ca-certs checks client certificates only with "
            "--ssl-cert-reqs optional or required"
        )


def _tls_arguments(args: argparse.Namespace) -> list[str]:
    """The TLS options again, for each worker (``--workers``)."""
    extra: list[str] = []
    for option in ("ssl_certfile", "ssl_keyfile", "ssl_ca_certs"):
        value = getattr(args, option)
        if value:
            extra += ["--" + option.replace("_", "-"), value]
    if args.ssl_cert_reqs is not None:
        extra += ["--ssl-cert-reqs", ssl.VerifyMode(args.ssl_cert_reqs).name[5:].lower()]
    return extra


def _ssl_context(args: argparse.Namespace) -> ReloadingContext:
    """The server's TLS context, reloaded on SIGHUP; a file that cannot be loaded is one line."""
    config = TLSConfig(
        args.ssl_certfile,
        args.ssl_keyfile,
        ca_certs=args.ssl_ca_certs,
        cert_reqs=args.ssl_cert_reqs or ssl.CERT_NONE,
        password=_given(args.ssl_keyfile_password, os.environ.get(_PASSWORD_VARIABLE)),
    )
    try:
        return ReloadingContext(config)
    except TLSConfigError as exc:
        raise SystemExit(f"error: {exc}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``spikard`` script and of ``python -m spikard``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(arguments[0]) if arguments else None
    if command is not None:
        command(arguments[1:])
    else:
        _serve(arguments)
