"""broadcaster + Starlette fan-out peer for ``benchmarks.fanout``, on uvicorn.

::

    python -m benchmarks.peers.fanout_broadcaster --port 8000                    # memory://
    python -m benchmarks.peers.fanout_broadcaster --port 8000 --workers 2 \\
        --redis redis://127.0.0.1:6379/0                                         # Redis

The same routes as ``fanout_spikard``: ``ws://HOST/sub/{channel}`` subscribes
(``broadcast.subscribe``), sends ``ready <pid>`` and forwards every message published to the
channel; ``POST /publish/{channel}`` publishes the request body. broadcaster keeps one
unbounded queue per subscriber and one Redis connection per process. Two races of
broadcaster 0.3.1 with Redis are worked around below (see the comments).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from broadcaster import Broadcast
from broadcaster._base import Unsubscribed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from .fanout_common import parse_args, serve

KEEPER = "fanout-keeper"


def build_app(url: str) -> Starlette:
    broadcast = Broadcast(url)
    first_subscription = asyncio.Lock()

    async def subscribe(websocket: WebSocket) -> None:
        await websocket.accept()
        async with contextlib.AsyncExitStack() as stack:
            # broadcaster 0.3.1 loses subscribers that enter concurrently while the first
            # one of a channel waits for the backend (Redis): each of them replaces the
            # channel's set of queues. Entering one at a time avoids it; once a channel has a
            # subscriber, entering does not wait at all, so this costs nothing after that.
            async with first_subscription:
                subscriber = await stack.enter_async_context(
                    broadcast.subscribe(websocket.path_params["channel"])
                )
            await websocket.send_text(f"ready {os.getpid()}")
            try:
                while True:
                    event = await subscriber.get()
                    await websocket.send_text(event.message)
            except Unsubscribed:
                pass

    async def publish(request: Request) -> PlainTextResponse:
        body = (await request.body()).decode()
        await broadcast.publish(request.path_params["channel"], body)
        return PlainTextResponse("ok")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with broadcast, broadcast.subscribe(KEEPER):
            # broadcaster 0.3.1's Redis listener stops for good when it wakes up while the
            # first SUBSCRIBE of the process is still in flight (redis-py's PubSub is not
            # "subscribed" yet, so listen() returns at once). A subscription held from
            # startup takes that first SUBSCRIBE, so the listener runs for the channels
            # the sockets subscribe to.
            yield

    return Starlette(
        routes=[
            WebSocketRoute("/sub/{channel}", subscribe),
            Route("/publish/{channel}", publish, methods=["POST"]),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    args = parse_args(__doc__ or "")
    app = build_app(args.redis or "memory://") if args.workers == 1 else None
    serve("benchmarks.peers.fanout_broadcaster", app, args, lifespan="on")


if __name__ == "__main__":
    main()
