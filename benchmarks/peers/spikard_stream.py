"""spikard, stream style: ``async for msg in socket: yield msg``.

Runs like spikard's default runner (``Spikard.run``): asyncio with uvloop when installed, or
trio with ``--backend trio``. Logging at WARNING, so no access-log line per connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from spikard import Spikard, WebSocket, WebSocketConfig, WebSocketMessage

from . import MAX_MESSAGE, parse_args
from ._limits import NO_CLIENT_LIMITS

app = Spikard(websocket=WebSocketConfig(max_message_size=MAX_MESSAGE, **NO_CLIENT_LIMITS))


@app.websocket("/")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


def main() -> None:
    args = parse_args(__doc__ or "", backend=True)
    app.run(args.host, args.port, backend=args.backend, log_level="warning")


if __name__ == "__main__":
    main()
