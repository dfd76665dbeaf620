"""An SSE feed for the fan-out benchmark: ``GET /events`` streams, ``POST /publish`` fans out.

``--stack spikard``: ``EventSourceResponse.from_channel`` on ``app.broker`` (in memory).
``--stack spikard-generator``: ``@app.sse`` on an async generator that reads a subscription.
``--stack sse-starlette``: sse-starlette's ``EventSourceResponse`` on uvicorn (h11, uvloop,
access log off), fed by an in-process broadcast: one ``asyncio.Queue`` per client, which
``POST /publish`` fills. Both send the published body as the event's data, with keepalive
pings off, and answer the publish once every subscriber has the event queued.
``GET /count`` answers how many streams are open.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from . import check_spikard_source

CHANNEL = "feed"


def serve_spikard(host: str, port: int, *, generator: bool = False) -> None:
    from spikard import EventSourceResponse, Request, ServerSentEvent, Spikard

    app = Spikard()
    open_streams = [0]

    async def ready() -> AsyncIterator[ServerSentEvent]:
        open_streams[0] += 1
        yield ServerSentEvent(comment="ready")

    if generator:

        @app.sse("/events", ping=None)
        async def events(request: Request) -> AsyncIterator[ServerSentEvent]:
            async with app.broker.subscribe(CHANNEL, max_backlog=1000) as subscription:
                open_streams[0] += 1
                try:
                    yield ServerSentEvent(comment="ready")
                    async for event in subscription:
                        yield ServerSentEvent(str(event.message.data))
                finally:
                    open_streams[0] -= 1

    else:

        @app.get("/events")
        async def channel(request: Request) -> EventSourceResponse:
            return EventSourceResponse.from_channel(
                app.broker, CHANNEL, first=ready(), max_backlog=1000, ping=None
            )

    @app.post("/publish")
    async def publish(request: Request) -> str:
        return str(await app.broker.publish(CHANNEL, (await request.body()).decode()))

    @app.get("/count")
    async def count() -> str:
        return str(open_streams[0])

    app.run(host, port, log_level="warning")


def serve_sse_starlette(host: str, port: int) -> None:
    import asyncio

    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    clients: set[asyncio.Queue[str]] = set()

    async def events(request: Request) -> EventSourceResponse:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1000)

        async def stream() -> AsyncIterator[dict[str, str]]:
            clients.add(queue)
            try:
                yield {"comment": "ready"}
                while True:
                    yield {"data": await queue.get()}
            finally:
                clients.discard(queue)

        return EventSourceResponse(stream(), ping=3600)

    async def publish(request: Request) -> PlainTextResponse:
        data = (await request.body()).decode()
        for queue in list(clients):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(data)
        return PlainTextResponse(str(len(clients)))

    async def count(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(len(clients)))

    app = Starlette(
        routes=[
            Route("/events", events),
            Route("/publish", publish, methods=["POST"]),
            Route("/count", count),
        ]
    )
    uvicorn.run(
        app, host=host, port=port, loop="uvloop", http="h11", lifespan="off",
        access_log=False, log_level="warning", backlog=4096,
    )  # fmt: skip


def main() -> None:
    check_spikard_source()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    stacks = ("spikard", "spikard-generator", "sse-starlette")
    parser.add_argument("--stack", choices=stacks, required=True)
    args = parser.parse_args()
    if args.stack.startswith("spikard"):
        serve_spikard(args.host, args.port, generator=args.stack == "spikard-generator")
    else:
        serve_sse_starlette(args.host, args.port)


if __name__ == "__main__":
    main()
