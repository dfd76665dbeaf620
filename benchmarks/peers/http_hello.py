"""``GET /`` answering 13 bytes of text (``Hello, world!``), on one of several HTTP stacks.

``--stack``: ``spikard`` (asyncio + uvloop, as ``Spikard.run``), ``uvicorn-h11`` and
``uvicorn-httptools`` (Starlette, uvloop, access log off), ``aiohttp`` (its own server).
Every stack answers ``text/plain`` with keep-alive and logs at WARNING.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from . import check_spikard_source

BODY = "Hello, world!"
CHUNK = b"x" * 65536
DOWNLOAD_CHUNKS = 1600
"""``GET /download`` streams 1600 x 64 KiB = 100 MiB; ``POST /upload`` counts what it reads."""


def serve_spikard(host: str, port: int) -> None:
    from spikard import Request, Spikard

    app = Spikard()

    @app.get("/")
    async def hello() -> str:
        return BODY

    @app.get("/download")
    async def download() -> AsyncIterator[bytes]:
        for _ in range(DOWNLOAD_CHUNKS):
            yield CHUNK

    @app.post("/upload", max_body_size=1 << 40)
    async def upload(request: Request) -> str:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return str(size)

    app.run(host, port, log_level="warning")


def serve_uvicorn(host: str, port: int, http: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(BODY)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(DOWNLOAD_CHUNKS):
            yield CHUNK

    async def download(request: Request) -> StreamingResponse:
        return StreamingResponse(chunks())

    async def upload(request: Request) -> PlainTextResponse:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return PlainTextResponse(str(size))

    app = Starlette(
        routes=[
            Route("/", hello),
            Route("/download", download),
            Route("/upload", upload, methods=["POST"]),
        ]
    )
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=http,
        lifespan="off",
        access_log=False,
        log_level="warning",
        backlog=4096,
    )


def serve_aiohttp(host: str, port: int) -> None:
    import asyncio

    import uvloop
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text=BODY)

    app = web.Application()
    app.router.add_get("/", hello)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(app, host=host, port=port, access_log=None, print=None, backlog=4096)


def main() -> None:
    check_spikard_source()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--stack", choices=("spikard", "uvicorn-h11", "uvicorn-httptools", "aiohttp"), required=True
    )
    args = parser.parse_args()
    if args.stack == "spikard":
        serve_spikard(args.host, args.port)
    elif args.stack == "aiohttp":
        serve_aiohttp(args.host, args.port)
    else:
        serve_uvicorn(args.host, args.port, args.stack.removeprefix("uvicorn-"))


if __name__ == "__main__":
    main()
