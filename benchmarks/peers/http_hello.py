"""``GET /`` answering 13 bytes of text (``Hello, world!``), on one of several HTTP stacks.

``--stack``: ``spikard`` (asyncio + uvloop, as ``Spikard.run``), ``uvicorn-h11`` and
``uvicorn-httptools`` (Starlette, uvloop, access log off), ``aiohttp`` (its own server).
Every stack answers ``text/plain`` with keep-alive and logs at WARNING.
"""

from __future__ import annotations

import argparse

from . import check_spikard_source

BODY = "Hello, world!"


def serve_spikard(host: str, port: int) -> None:
    from spikard import Spikard

    app = Spikard()

    @app.get("/")
    async def hello() -> str:
        return BODY

    app.run(host, port, log_level="warning")


def serve_uvicorn(host: str, port: int, http: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(BODY)

    app = Starlette(routes=[Route("/", hello)])
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
