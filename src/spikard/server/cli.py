"""``spikard module:app`` (or ``python -m spikard``): import an application and serve it.

Every failure that is the user's to fix (a target that does not import, an object that is
not a spikard application, a port that cannot be bound, a startup hook that raises) ends
with one line on stderr and exit status 1; usage errors (an unknown option) exit with 2.

A first argument without a colon names a command instead of an application:
``spikard asyncapi module:app`` prints the application's AsyncAPI document.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import json
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .._version import __version__
from ..app.application import Spikard
from .bind import BindError, check_port
from .run import run
from .workers import run_workers

__all__ = ["build_parser", "check_app", "load_app", "main"]

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


def _is_asgi_app(app: object) -> bool:
    """True for an async callable taking ``(scope, receive, send)`` (an ASGI 3 app)."""
    if not callable(app):
        return False
    # What calling the object runs: the function itself, or its type's __call__.
    plain = inspect.isfunction(app) or inspect.ismethod(app)
    call: object = app if plain else type(app).__call__
    if not inspect.iscoroutinefunction(call):
        return False
    try:
        parameters = inspect.signature(app).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return len(positional) == 3 or (variadic and len(positional) < 3)


def check_app(app: object, target: str) -> Spikard:
    """Return ``app`` if it is a spikard application.

    Raises:
        SystemExit: ``app`` is a plain ASGI application (not served yet) or something else;
            the one-line message says which.
    """
    if isinstance(app, Spikard):
        return app
    if _is_asgi_app(app):
        raise SystemExit(
            f"error: {target!r} is an ASGI application; serving plain ASGI apps is not "
            "supported yet"
        )
    kind = "class" if isinstance(app, type) else type(app).__name__
    raise SystemExit(
        f"error: {target!r} is not a spikard application (it is a {kind}); "
        "point at a Spikard() instance, like 'examples.chat:app'"
    )


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None


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
        "--ssl-certfile", metavar="PEM", help="serve https/wss with this certificate chain"
    )
    parser.add_argument(
        "--ssl-keyfile",
        metavar="PEM",
        help="the certificate's private key (if it is not in --ssl-certfile)",
    )
    parser.add_argument("--version", action="version", version=_version())
    return parser


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
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    try:
        check_port(args.host, args.port)
    except BindError as exc:
        raise SystemExit(f"error: {exc}") from None
    if args.ssl_keyfile and not args.ssl_certfile:
        raise SystemExit("error: --ssl-keyfile needs --ssl-certfile")
    if args.backend == "trio" and importlib.util.find_spec("trio") is None:
        raise SystemExit("error: --backend trio needs trio: pip install trio")
    # Import and check the application first, so that a bad target fails fast and once,
    # before any worker starts.
    app = check_app(load_app(args.app), args.app)
    ssl_context = None
    if args.ssl_certfile:
        ssl_context = _ssl_context(args.ssl_certfile, args.ssl_keyfile)
    if args.workers > 1:
        extra = []
        if args.ssl_certfile:
            extra += ["--ssl-certfile", args.ssl_certfile]
        if args.ssl_keyfile:
            extra += ["--ssl-keyfile", args.ssl_keyfile]
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


def _ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """The server's TLS context; a file that cannot be loaded is a one-line error."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror or str(exc)
        raise SystemExit(f"error: cannot load the TLS certificate {certfile!r}: {reason}") from None
    return context


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``spikard`` script and of ``python -m spikard``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = COMMANDS.get(arguments[0]) if arguments else None
    if command is not None:
        command(arguments[1:])
    else:
        _serve(arguments)
