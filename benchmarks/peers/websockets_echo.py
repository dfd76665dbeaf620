"""python-websockets (the asyncio implementation) on uvloop, compression off."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from websockets.asyncio.server import ServerConnection, serve

from . import MAX_MESSAGE, parse_args


async def echo(connection: ServerConnection) -> None:
    async for message in connection:
        await connection.send(message)


async def serve_forever(host: str, port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(echo, host, port, compression=None, max_size=MAX_MESSAGE, backlog=4096):
        await stop


def main() -> None:
    args = parse_args(__doc__ or "")
    uvloop.run(serve_forever(args.host, args.port))


if __name__ == "__main__":
    main()
