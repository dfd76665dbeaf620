"""python-socketio fan-out peer for ``benchmarks.fanout``: rooms, AsyncRedisManager, uvicorn.

::

    python -m benchmarks.peers.fanout_socketio --port 8000                       # in-memory
    python -m benchmarks.peers.fanout_socketio --port 8000 --workers 2 \\
        --redis redis://127.0.0.1:6379/0                                         # Redis

- Socket.IO at ``/socket.io/`` (WebSocket transport only, no long-polling): a client emits
  ``join`` with a channel name and an ack id; the server puts it in the room of that name
  and acks with its pid, after which it receives every ``m`` event emitted to the room.
- ``POST /publish/{channel}`` (Starlette, beside Socket.IO in one ASGI app) emits the request
  body as an ``m`` event to the room ``channel``. With ``--redis`` the server uses
  ``socketio.AsyncRedisManager``: the emit goes through Redis and each worker delivers to the
  members of the room it holds.

Engine.IO pings are pushed out to an hour so that none lands inside a measurement.
"""

from __future__ import annotations

import os
from typing import Any

import socketio  # type: ignore[import-untyped]
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from .fanout_common import parse_args, serve


def build_app(redis_url: str | None) -> Any:
    manager = socketio.AsyncRedisManager(redis_url) if redis_url else None
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        transports=["websocket"],
        ping_interval=3600,
        ping_timeout=60,
        logger=False,
        engineio_logger=False,
    )

    async def join(sid: str, channel: str) -> int:
        await sio.enter_room(sid, channel)
        return os.getpid()

    sio.on("join", join)

    async def publish(request: Request) -> PlainTextResponse:
        body = (await request.body()).decode()
        await sio.emit("m", body, to=request.path_params["channel"])
        return PlainTextResponse("ok")

    http = Starlette(routes=[Route("/publish/{channel}", publish, methods=["POST"])])
    return socketio.ASGIApp(sio, other_asgi_app=http)


def main() -> None:
    args = parse_args(__doc__ or "")
    app = build_app(args.redis) if args.workers == 1 else None
    serve("benchmarks.peers.fanout_socketio", app, args)


if __name__ == "__main__":
    main()
