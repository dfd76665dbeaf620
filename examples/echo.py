"""Echo every text and binary message back to the sender.

Serves ``/echo`` and ``/`` (so conformance suites that connect to the root work too)::

    python examples/echo.py --port 9001 --max-message-size 16777216 --permessage-deflate
    python examples/echo.py --port 9443 --ssl-certfile cert.pem --ssl-keyfile key.pem  # wss://
    python -m spikard examples.echo:app

The handler is the smallest stream handler there is: the socket is an async iterator of
incoming messages, and whatever the generator yields is sent back, in order, one message
at a time (the next message is read only after the previous echo was written).
"""

from __future__ import annotations

import argparse
import ssl
from collections.abc import AsyncIterator

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage


async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


def create_app(max_message_size: int | None = None, *, deflate: bool = False) -> Spikard:
    """Build the echo app; ``max_message_size`` (bytes) replaces the 1 MiB default, and
    ``deflate`` accepts permessage-deflate when the client offers it."""
    config = WebSocketConfig(permessage_deflate=deflate)
    if max_message_size is not None:
        config = WebSocketConfig(max_message_size=max_message_size, permessage_deflate=deflate)
    application = Spikard(websocket=config)
    application.add_websocket_route("/echo", echo)
    application.add_websocket_route("/", echo)
    return application


app = create_app()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="spikard echo server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument(
        "--max-message-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest incoming message (default 1 MiB); larger ones close with 1009",
    )
    parser.add_argument(
        "--permessage-deflate",
        action="store_true",
        help="accept permessage-deflate (compression) when the client offers it",
    )
    parser.add_argument(
        "--ssl-certfile",
        metavar="PEM",
        help="serve wss:// (and https://) with this certificate chain",
    )
    parser.add_argument(
        "--ssl-keyfile",
        metavar="PEM",
        help="private key of --ssl-certfile (default: the key is in the certfile)",
    )
    args = parser.parse_args(argv)
    if args.ssl_keyfile and not args.ssl_certfile:
        parser.error("--ssl-keyfile needs --ssl-certfile")
    ssl_context = None
    if args.ssl_certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.ssl_certfile, args.ssl_keyfile)
    application = create_app(args.max_message_size, deflate=args.permessage_deflate)
    application.run(args.host, args.port, backend=args.backend, ssl_context=ssl_context)


if __name__ == "__main__":
    main()
