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
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from .._version import __version__
from ..app.application import Spikard
from ..asgi.serving import (
    ASGIApp,
    ASGIApplication,
    default_http_config,
    default_websocket_config,
    is_asgi_app,
)
from ..connection.contract import Application
from ..protocol.forwarded import TrustedProxies
from .bind import BindError, check_port
from .run import hold_sighup, run
from .tls import ReloadingContext, TLSConfig, TLSConfigError, parse_cert_reqs
from .workers import run_workers

__all__ = ["build_parser", "check_app", "load_app", "main", "resolve_app"]

PROG = "spikard"
DISTRIBUTION = "spikard-stream"
"""The name this project is installed under (``pip show spikard-stream``); ``spikard`` on
the package index is an unrelated project."""

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def load_app(target: str) -> object:
    """Import ``module:attribute`` (dots allowed in both) from the current directory.

    Raises:
        SystemExit: the target is malformed, the module cannot be imported, or the
            attribute does not exist; the message says which.
    """
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(
            f"error: expected 'module:attribute' (like 'examples.chat:app'), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
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
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_per_message_deflate",
    "limit_concurrency",
    "ws_allowed_origins",
    "ws_max_connections_per_client",
    "ws_handshake_rate",
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
    interface = args.interface
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
        if args.forwarded_allow_ips is not None:
            spikard_app.http_config = dataclasses.replace(
                spikard_app.http_config, forwarded_allow_ips=args.forwarded_allow_ips
            )
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
        http = default_http_config()
        if args.forwarded_allow_ips is not None:
            http = dataclasses.replace(http, forwarded_allow_ips=args.forwarded_allow_ips)
        return ASGIApplication(
            cast("ASGIApp", app),
            lifespan=args.lifespan or "auto",
            root_path=args.root_path or "",
            http_config=http,
            websocket_config=websocket,
            limit_concurrency=args.limit_concurrency,
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


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
        help="lowest level logged to stderr; debug adds handshakes, closes and timeouts "
        "(default info)",
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
    asgi = parser.add_argument_group(
        "plain ASGI apps", "how the server runs an ASGI 3 app (named as uvicorn names them)"
    )
    asgi.add_argument(
        "--interface",
        choices=("auto", "asgi", "spikard"),
        default="auto",
        help="auto: a Spikard() app natively, any other ASGI 3 callable through the ASGI "
        "adapter; asgi: always through the adapter; spikard: only a Spikard() app "
        "(default auto)",
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


_FORWARDED = ("interface", "forwarded_allow_ips", *_ASGI_ONLY)
"""Options each worker gets again (``--workers``)."""


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
    if args.workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    try:
        check_port(args.host, args.port)
    except BindError as exc:
        raise SystemExit(f"error: {exc}") from None
    _check_tls_options(args)
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        raise SystemExit("error: --backend trio needs trio: pip install trio")
    # Import and check the application first, so that a bad target fails fast and once,
    # before any worker starts.
    app = resolve_app(load_app(args.app), args.app, args)
    # Loaded here under --workers too: a certificate that cannot be loaded fails once.
    ssl_context = _ssl_context(args) if args.ssl_certfile else None
    if args.workers > 1:
        extra = _tls_arguments(args)
        for name in _FORWARDED:
            value = getattr(args, name)
            if isinstance(value, tuple):
                value = ",".join(value)
            if isinstance(value, bool):
                value = str(value).lower()
            if value is not None:
                extra += ["--" + name.replace("_", "-"), str(value)]
        run_workers(
            args.app,
            args.host,
            args.port,
            workers=args.workers,
            backend=args.backend,
            log_level=args.log_level,
            extra_args=extra,
            reuse_port=args.reuse_port,
        )
        return
    run(
        app,
        args.host,
        args.port,
        backend=args.backend,
        ssl_context=ssl_context,
        log_level=args.log_level,
        reuse_port=args.reuse_port,
    )


def _check_tls_options(args: argparse.Namespace) -> None:
    for option in ("ssl_keyfile", "ssl_ca_certs", "ssl_cert_reqs"):
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
