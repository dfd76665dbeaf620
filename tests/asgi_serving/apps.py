"""Real Starlette and FastAPI apps; also served by ``python -m spikard`` in the CLI tests."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi import WebSocket as FastAPIWebSocket
from pydantic import BaseModel
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from spikard.asgi.serving import Receive, Scope, Send

EVENTS: list[str] = []
"""What the apps did that a test cannot see on the wire (background tasks, disconnects)."""


async def hello(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.query_params.get('name', 'world')}")


async def pid(request: Request) -> Response:
    return PlainTextResponse(str(os.getpid()))


async def scope_view(request: Request) -> Response:
    scope = request.scope
    shown = {
        key: scope[key]
        for key in ("type", "asgi", "http_version", "method", "scheme", "path", "root_path")
    }
    shown["raw_path"] = scope["raw_path"].decode("latin-1")
    shown["query_string"] = scope["query_string"].decode("latin-1")
    shown["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
    shown["client"] = list(scope["client"])
    shown["server"] = list(scope["server"]) if scope["server"] else None
    shown["state"] = sorted(scope.get("state", {}))
    return JSONResponse(shown)


async def upload(request: Request) -> Response:
    size = 0
    parts = 0
    async for chunk in request.stream():
        size += len(chunk)
        parts += 1 if chunk else 0
    return JSONResponse({"size": size, "parts": parts})


async def numbers(request: Request) -> Response:
    count = int(request.query_params.get("count", "5"))

    async def produce() -> AsyncIterator[str]:
        try:
            for number in range(count):
                yield f"{number}\n"
                await anyio.lowlevel.checkpoint()
        finally:
            EVENTS.append("numbers closed")

    return StreamingResponse(produce(), media_type="text/plain")


async def forever(request: Request) -> Response:
    async def produce() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"x" * 1024
                await anyio.sleep(0.01)
        finally:
            EVENTS.append("forever closed")

    return StreamingResponse(produce())


async def with_background(request: Request) -> Response:
    async def later() -> None:
        await anyio.sleep(0.05)
        EVENTS.append("background done")

    return PlainTextResponse("sent first", background=BackgroundTask(later))


async def boom(request: Request) -> Response:
    raise RuntimeError("boom")


async def ticks(request: Request) -> Response:
    async def events() -> AsyncIterator[dict[str, Any]]:
        for number in range(3):
            yield {"event": "tick", "data": str(number), "id": str(number)}

    return EventSourceResponse(events())


async def echo_socket(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(
        subprotocol="chat.v2" if "chat.v2" in offered else None,
        headers=[(b"x-room", b"lobby")],
    )
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                EVENTS.append(f"disconnect {message['code']}")
                return
            if message.get("text") is not None:
                text = message["text"]
                if text == "close please":
                    await websocket.close(4001, "as you asked")
                    return
                await websocket.send_text(text.upper())
            else:
                await websocket.send_bytes(message["bytes"][::-1])
    except WebSocketDisconnect as exc:  # pragma: no cover - receive() above returns it
        EVENTS.append(f"disconnect {exc.code}")


async def refuse_socket(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def deny_socket(websocket: WebSocket) -> None:
    await websocket.send_denial_response(
        PlainTextResponse("no entry", status_code=401, headers={"www-authenticate": "Bearer"})
    )


@contextlib.asynccontextmanager
async def starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    EVENTS.append("startup")
    yield {"greeting": "hi from startup"}
    EVENTS.append("shutdown")


starlette_app = Starlette(
    routes=[
        Route("/", hello),
        Route("/pid", pid),
        Route("/scope/{rest:path}", scope_view),
        Route("/upload", upload, methods=["POST"]),
        Route("/numbers", numbers),
        Route("/forever", forever),
        Route("/background", with_background),
        Route("/boom", boom),
        Route("/ticks", ticks),
        WebSocketRoute("/ws", echo_socket),
        WebSocketRoute("/refuse", refuse_socket),
        WebSocketRoute("/deny", deny_socket),
    ],
    lifespan=starlette_lifespan,
)


# ---- FastAPI -----------------------------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float


@contextlib.asynccontextmanager
async def fastapi_lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"prices": {"hat": 9.5}}


fastapi_app = FastAPI(lifespan=fastapi_lifespan)


def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(status_code=403, detail="bad token")
    return x_token


@fastapi_app.get("/items/{name}")
async def read_item(name: str, request: Request, _: Annotated[str, Depends(token)]) -> Any:
    prices = request.state.prices
    if name not in prices:
        raise HTTPException(status_code=404, detail="no such item")
    return {"name": name, "price": prices[name]}


@fastapi_app.post("/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@fastapi_app.websocket("/ws/{room}")
async def room_socket(
    websocket: FastAPIWebSocket, room: str, _: Annotated[str, Depends(lambda: "dep")]
) -> None:
    await websocket.accept()
    name = await websocket.receive_text()
    await websocket.send_json({"room": room, "hello": name})
    await websocket.close()


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The smallest ASGI app: hello over HTTP; no lifespan (it raises on that scope)."""
    if scope["type"] != "http":
        raise RuntimeError(f"raw_app does not do {scope['type']}")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-raw", b"1")]})
    await send({"type": "http.response.body", "body": b"raw"})


app = starlette_app


async def failing_startup_app(scope: Scope, receive: Receive, send: Send) -> None:
    """An app whose lifespan startup fails (the CLI must not serve it)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "the database is down"})
