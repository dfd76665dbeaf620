"""uvicorn with ``--ws wsproto`` (and the h11 HTTP parser) serving a Starlette endpoint, uvloop.

Access log off, log level WARNING, lifespan off, permessage-deflate off.
"""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from . import MAX_MESSAGE, parse_args


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] != "websocket.receive":
            break
        text = message.get("text")
        if text is not None:
            await websocket.send_text(text)
        else:
            await websocket.send_bytes(message["bytes"])


app = Starlette(routes=[WebSocketRoute("/", echo)])


def main() -> None:
    args = parse_args(__doc__ or "")
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="h11",
        ws="wsproto",
        ws_max_size=MAX_MESSAGE,
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


if __name__ == "__main__":
    main()
