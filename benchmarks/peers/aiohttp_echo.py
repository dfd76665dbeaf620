"""aiohttp's web server (C-accelerated parser and masking) on uvloop, compression off."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from aiohttp import WSMsgType, web

from . import MAX_MESSAGE, parse_args


async def echo(request: web.Request) -> web.WebSocketResponse:
    socket = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False)
    await socket.prepare(request)
    async for message in socket:
        if message.type is WSMsgType.TEXT:
            await socket.send_str(message.data)
        elif message.type is WSMsgType.BINARY:
            await socket.send_bytes(message.data)
    return socket


async def serve_forever(host: str, port: int) -> None:
    app = web.Application()
    app.router.add_get("/", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    try:
        await web.TCPSite(runner, host, port, backlog=4096).start()
        await stop
    finally:
        await runner.cleanup()


def main() -> None:
    args = parse_args(__doc__ or "")
    uvloop.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
