"""The spikard app the hosted tests serve, and Starlette and FastAPI hosts that mount it.

Every route shows one thing a user writes; the tests run it under real ASGI servers.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from aiostream import pipe

from spikard import (
    ChannelMessage,
    HandshakeRejected,
    Request,
    Spikard,
    StreamingResponse,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
    merge,
)
from spikard.files import FileResponse
from spikard.sse import ServerSentEvent

FILE = Path(tempfile.gettempdir()) / "spikard-asgi-hosted-payload.bin"
"""A file for the file routes: 300,000 deterministic bytes, written once (atomically)."""
PAYLOAD = bytes(range(256)) * 1171 + bytes(range(224))
if not FILE.exists() or FILE.stat().st_size != len(PAYLOAD):
    _partial = FILE.with_name(f"{FILE.name}.{os.getpid()}")
    _partial.write_bytes(PAYLOAD)
    os.replace(_partial, FILE)
events: list[str] = []
"""What the handlers' cleanup and the lifespan hooks recorded (served on /events)."""


@dataclass
class Point:
    x: int
    y: int


app = Spikard(websocket=WebSocketConfig(max_message_size=1024, max_queue=4, close_timeout=2.0))


@app.on_startup
async def started() -> None:
    events.append("startup")
    app.state.greeting = "hello from lifespan"


@app.on_shutdown
def stopped() -> None:
    events.append("shutdown")
    record = os.environ.get("SPIKARD_ASGI_TEST_RECORD")
    if record:  # the process is about to end: tell the test through a file
        Path(record).write_text("shutdown hook ran", encoding="utf-8")


# ---- WebSocket ------------------------------------------------------------------------------


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    try:
        async for message in socket:
            yield message
    finally:
        events.append(f"echo closed {socket.close_code}")


def _upper(message: WebSocketMessage, *_: WebSocketMessage) -> str:
    return (message.as_text() or "").upper()


@app.websocket("/shout")
def shout(socket: WebSocket) -> Any:
    return socket | pipe.filter(WebSocketMessage.is_text) | pipe.map(_upper)


@app.websocket("/callbacks")
def callbacks(request: Request) -> WebSocketResponse:
    def on_connect() -> None:
        if request.query_params.get("token") != "ok":
            raise HandshakeRejected(401, "bad token")

    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        return WebSocketMessage.text(f"cb:{message.as_text()}")

    def on_close(frame: tuple[int, str] | None) -> None:
        events.append(f"callbacks closed {frame}")

    return WebSocketResponse(on_connect=on_connect, on_message=on_message, on_close=on_close)


@app.websocket("/game/{table:int}")
async def game(socket: WebSocket) -> AsyncIterator[str]:
    if socket.headers.get("authorization") != "Bearer letmein":
        raise HandshakeRejected(401, "who are you?", {"x-why": "no token"})
    if "game.v2" not in socket.subprotocols:
        await socket.reject(400, "this server speaks game.v2")
        return
    table = socket.path_params["table"]
    await socket.accept(subprotocol="game.v2", headers={"x-table": str(table)})
    async for message in socket:
        yield f"table {table}: {message.as_text()}"


@app.websocket("/close")
async def close_with(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield WebSocketMessage.close(4000 + len(message.as_text() or ""), "bye now")


@app.websocket("/boom")
async def boom(socket: WebSocket) -> AsyncIterator[str]:
    async for message in socket:
        yield "about to fail"
        raise RuntimeError(f"boom on {message.as_text()}")


@app.websocket("/peer-close")
async def peer_close(socket: WebSocket) -> AsyncIterator[str]:
    async for _ in socket:
        yield "got it"
    events.append(f"peer closed {socket.close_code} {socket.close_reason}")


@app.websocket("/ticker")
async def ticker(socket: WebSocket) -> None:
    """Never reads: cancelled when the client leaves."""
    await socket.accept()
    try:
        for n in range(1000):
            await socket.send(str(n))
            await anyio.sleep(0.02)
    finally:
        events.append("ticker stopped")


@app.websocket("/typed")
async def typed(socket: WebSocket[Point]) -> AsyncIterator[dict[str, int]]:
    async for point in socket:
        yield {"sum": point.x + point.y}


@app.websocket("/room/{room}")
async def room(socket: WebSocket) -> AsyncIterator[Any]:
    channel = f"room:{socket.path_params['room']}"
    await socket.accept()
    async with app.broker.subscribe(channel) as feed, merge(socket, feed) as stream:
        async for event in stream:
            if isinstance(event, ChannelMessage):
                yield event.message
            else:
                await app.broker.publish(channel, event.as_text() or "")


# ---- HTTP -----------------------------------------------------------------------------------


@app.get("/hello")
def hello(request: Request) -> str:
    return f"hello {request.query_params.get('name', 'world')} at {request.path}"


@app.get("/items/{item_id:int}")
async def item(item_id: int, q: str = "none", limit: int = 10) -> dict[str, Any]:
    return {"id": item_id, "q": q, "limit": limit}


@app.post("/points")
async def add_point(point: Point) -> dict[str, int]:
    return {"sum": point.x + point.y}


@app.post("/upload")
async def upload(request: Request) -> dict[str, int]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"size": size}


@app.get("/stream")
async def stream(n: int = 3) -> StreamingResponse:
    async def numbers() -> AsyncIterator[str]:
        for i in range(n):
            yield f"{i}\n"
            await anyio.sleep(0.001)

    return StreamingResponse(numbers(), media_type="text/plain")


@app.get("/forever")
async def forever() -> StreamingResponse:
    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
                await anyio.sleep(0.01)
        finally:
            events.append("forever closed")

    return StreamingResponse(chunks())


@app.get("/long-poll")
async def long_poll(request: Request) -> str:
    with anyio.move_on_after(10):
        events.append(f"long-poll left {await request.wait_disconnected()}")
        return "gone"
    return "answered"


@app.sse("/sse")
async def ticks(request: Request) -> AsyncIterator[ServerSentEvent]:
    try:
        for i in range(1000):
            yield ServerSentEvent(json.dumps({"n": i}), event="tick", id=str(i))
            await anyio.sleep(0.01)
    finally:
        events.append("sse closed")


@app.get("/fail")
async def fail() -> str:
    raise RuntimeError("the handler failed")


@app.get("/state")
async def state() -> dict[str, Any]:
    return {"greeting": app.state.greeting, "broker": app.broker.running}


@app.get("/events")
async def recorded() -> list[str]:
    return events


@app.get("/file")
async def file() -> FileResponse:
    return FileResponse(FILE)


@app.get("/publish/{room}")
async def publish(room: str, text: str) -> dict[str, int]:
    await app.broker.publish(f"room:{room}", text)
    return {"ok": 1}


# ---- hosts ----------------------------------------------------------------------------------


def without_denial(inner: Any) -> Any:
    """``inner`` as under a server without the ``websocket.http.response`` extension."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            scope = {**scope, "extensions": {}}
        await inner(scope, receive, send)

    return asgi


orphan = Spikard()
"""An app whose lifespan nobody runs (mounted at /orphan)."""


@orphan.get("/hello")
def orphan_hello() -> str:
    return "never"


@orphan.websocket("/ws")
async def orphan_ws(socket: WebSocket) -> AsyncIterator[str]:
    yield "never"


@asynccontextmanager
async def _host_lifespan(_: Any) -> AsyncIterator[None]:
    async with app.lifespan_context():  # hosts do not forward lifespan to mounted apps
        yield


def starlette_host() -> Any:
    """A Starlette app mounting the test app at /rt (and /nodenial), the orphan at /orphan."""
    from starlette.applications import Starlette
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def home(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("starlette home")

    return Starlette(
        routes=[
            Route("/", home),
            Mount("/rt", app=app),
            Mount("/nodenial", app=without_denial(app)),
            Mount("/orphan", app=orphan),
        ],
        lifespan=_host_lifespan,
    )


def fastapi_host() -> Any:
    """A FastAPI app with the test app mounted at /rt, its lifespan run by the host's."""
    from fastapi import Depends, FastAPI

    host = FastAPI(lifespan=_host_lifespan)

    def greeting() -> str:
        return str(app.state.greeting)

    @host.get("/")
    async def home(said: str = Depends(greeting)) -> dict[str, str]:
        return {"host": "fastapi", "spikard says": said}

    host.mount("/rt", app)
    return host


failing = Spikard()
"""An app whose startup fails: the server must not serve it."""


@failing.on_startup
def cannot_start() -> None:
    raise RuntimeError("the database is not there")
