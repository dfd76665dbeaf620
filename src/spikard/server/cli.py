"""``python -m spikard module:app``: import an application and serve it."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .run import run
from .workers import run_workers

__all__ = ["load_app", "main"]


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


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m spikard", description="Serve a spikard application."
    )
    parser.add_argument("app", help="the application, as module:attribute (examples.chat:app)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    parser.add_argument(
        "--backend",
        choices=("asyncio", "trio"),
        default="asyncio",
        help="event loop; asyncio uses uvloop when installed",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="serve from N processes sharing the port (SO_REUSEPORT)",
    )
    parser.add_argument(
        "--reuse-port", action="store_true", help="set SO_REUSEPORT (several servers on one port)"
    )
    parser.add_argument("--ssl-certfile", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="the certificate's private key (PEM)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m spikard`` and the ``spikard`` script."""
    args = build_parser().parse_args(argv)
    if args.workers < 1:
        raise SystemExit("error: --workers must be at least 1")
    if args.workers > 1:
        extra = []
        if args.ssl_certfile:
            extra += ["--ssl-certfile", args.ssl_certfile]
        if args.ssl_keyfile:
            extra += ["--ssl-keyfile", args.ssl_keyfile]
        load_app(args.app)  # fail fast, with a clear message, before starting workers
        run_workers(
            args.app,
            args.host,
            args.port,
            workers=args.workers,
            backend=args.backend,
            log_level=args.log_level,
            extra_args=extra,
        )
        return
    app = load_app(args.app)
    if not callable(app):
        raise SystemExit(f"error: {args.app!r} is not a spikard application")
    ssl_context = None
    if args.ssl_certfile:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    run(
        app,
        args.host,
        args.port,
        backend=args.backend,
        ssl_context=ssl_context,
        log_level=args.log_level,
        reuse_port=args.reuse_port,
    )
