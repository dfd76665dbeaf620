"""spikard, callback shim: ``WebSocketResponse(on_message=...)`` returning each message.

Runs like spikard's default runner (``Spikard.run``): asyncio with uvloop when installed, or
trio with ``--backend trio``. Logging at WARNING, so no access-log line per connection.
"""

from __future__ import annotations

from spikard import Request, Spikard, WebSocketConfig, WebSocketMessage, WebSocketResponse

from . import MAX_MESSAGE, parse_args
from ._limits import NO_CLIENT_LIMITS

app = Spikard(websocket=WebSocketConfig(max_message_size=MAX_MESSAGE, **NO_CLIENT_LIMITS))


async def on_message(message: WebSocketMessage) -> WebSocketMessage:
    return message


@app.websocket("/")
async def echo(request: Request) -> WebSocketResponse:
    return WebSocketResponse(on_message=on_message)


def main() -> None:
    args = parse_args(__doc__ or "", backend=True)
    app.run(args.host, args.port, backend=args.backend, log_level="warning")


if __name__ == "__main__":
    main()
