"""Echo every text and binary message back to the sender.

Serves ``/echo`` and ``/`` (so conformance suites that connect to the root work too)::

    python examples/echo.py --port 9001 --max-message-size 16777216
    python -m spikard examples.echo:app

The handler is the smallest stream handler there is: the socket is an async iterator of
incoming messages, and whatever the generator yields is sent back, in order, one message
at a time (the next message is read only after the previous echo was written).
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage


async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


def create_app(max_message_size: int | None = None) -> Spikard:
    """Build the echo app; ``max_message_size`` (bytes) replaces the 1 MiB default."""
    config = (
        WebSocketConfig()
        if max_message_size is None
        else WebSocketConfig(max_message_size=max_message_size)
    )
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
    args = parser.parse_args(argv)
    create_app(args.max_message_size).run(args.host, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
