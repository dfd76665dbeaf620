"""A Starlette app as users write them: routes, mounts, middleware, lifespan, SSE, WebSockets."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .registry import record, seen

FILE_BODY = bytes(range(256)) * 400
_FOLDER = Path(tempfile.mkdtemp(prefix="spikard-compliance-"))
FILE = _FOLDER / "data.bin"
FILE.write_bytes(FILE_BODY)


class Teapot(Exception):
    """Handled by an exception handler: 418 with JSON."""


class StampASGI:
    """A pure ASGI middleware: adds ``x-asgi-middleware`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def stamped(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-asgi-middleware", b"1")]
            await send(message)

        await self.app(scope, receive, stamped)


class StampBase(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-base-middleware"] = "1"
        return response


async def home(request: Request) -> Response:
    return PlainTextResponse("hello starlette")


async def item(request: Request) -> Response:
    return JSONResponse(
        {"id": request.path_params["item_id"], "q": request.query_params.getlist("q")}
    )


async def echo_json(request: Request) -> Response:
    return JSONResponse({"got": await request.json()}, status_code=201)


async def form(request: Request) -> Response:
    async with request.form() as data:
        return JSONResponse({key: str(value) for key, value in data.items()})


async def upload(request: Request) -> Response:
    async with request.form() as data:
        file = data["file"]
        assert not isinstance(file, str)
        content = await file.read()
        return JSONResponse({"name": file.filename, "size": len(content)})


async def streamed_request(request: Request) -> Response:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return JSONResponse({"total": total})


async def stream(request: Request) -> Response:
    async def numbers() -> AsyncIterator[str]:
        for number in range(int(request.query_params.get("n", "5"))):
            yield f"{number}\n"

    return StreamingResponse(numbers(), media_type="text/plain")


async def stream_forever(request: Request) -> Response:
    key = request.query_params["key"]

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"y" * 256
                await anyio.sleep(0.01)
        finally:
            record(key, "generator closed")

    return StreamingResponse(chunks())


async def file(request: Request) -> Response:
    return FileResponse(FILE, media_type="application/octet-stream", filename="data.bin")


async def background(request: Request) -> Response:
    key = request.query_params["key"]
    record(key, "handler")

    async def later() -> None:
        await anyio.sleep(0.1)
        record(key, "background")

    return PlainTextResponse("sent", background=BackgroundTask(later))


async def slow_background(request: Request) -> Response:
    """A 1.2 s background task: the next request on the connection must not wait for it."""
    key = request.query_params["key"]

    async def later() -> None:
        await anyio.sleep(1.2)
        record(key, "slow background done")

    return PlainTextResponse("queued", background=BackgroundTask(later))


async def teapot(request: Request) -> Response:
    raise Teapot


async def crash(request: Request) -> Response:
    raise RuntimeError("starlette route failed")


async def on_teapot(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "teapot"}, status_code=418)


async def state(request: Request) -> Response:
    return JSONResponse({"db": request.state.db, "url": str(request.url.path)})


async def redirect(request: Request) -> Response:
    return RedirectResponse("/", status_code=307)


async def big(request: Request) -> Response:
    return PlainTextResponse("compress me " * 2000)


async def events(request: Request) -> Response:
    return JSONResponse(seen(request.query_params["key"]))


async def sub_where(request: Request) -> Response:
    scope = request.scope
    return JSONResponse(
        {"path": scope["path"], "root_path": scope["root_path"], "url": str(request.url.path)}
    )


async def sse(request: Request) -> Response:
    async def produce() -> AsyncIterator[ServerSentEvent | dict[str, Any]]:
        yield {"event": "greeting", "id": "1", "data": "hello", "retry": 2500}
        yield ServerSentEvent(data="line one\nline two", event="multi", id="2")
        yield {"data": "plain"}
        yield ServerSentEvent(comment="just a comment")

    return EventSourceResponse(produce())


async def sse_ping(request: Request) -> Response:
    async def produce() -> AsyncIterator[dict[str, Any]]:
        yield {"data": "first"}
        await anyio.sleep(1.6)
        yield {"data": "after pings"}

    return EventSourceResponse(produce(), ping=1)


async def sse_forever(request: Request) -> Response:
    key = request.query_params["key"]

    async def produce() -> AsyncIterator[dict[str, Any]]:
        number = 0
        try:
            while True:
                yield {"data": str(number)}
                number += 1
                await anyio.sleep(0.05)
        finally:
            record(key, "sse generator closed")

    return EventSourceResponse(produce())


async def ws_echo(websocket: WebSocket) -> None:
    key = websocket.query_params.get("key", "")
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="graphql-ws" if "graphql-ws" in offered else None)
    try:
        while True:
            message = await websocket.receive_text()
            await websocket.send_text(f"echo: {message}")
    except WebSocketDisconnect as exc:
        record(key, f"disconnect {exc.code}")


async def ws_json(websocket: WebSocket) -> None:
    await websocket.accept()
    data = await websocket.receive_json()
    await websocket.send_json({"received": data, "db": websocket.state.db})
    await websocket.close(code=4002, reason="json done")


async def ws_bytes(websocket: WebSocket) -> None:
    await websocket.accept()
    data = await websocket.receive_bytes()
    await websocket.send_bytes(data[::-1])
    await websocket.close()


async def ws_refuse(websocket: WebSocket) -> None:
    await websocket.close(code=1008)


async def ws_deny(websocket: WebSocket) -> None:
    await websocket.send_denial_response(PlainTextResponse("go away", status_code=401))


async def ws_iter(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        if text == "stop":
            break
        await websocket.send_text(text[::-1])
    await websocket.close(code=1000)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"db": "connected"}


sub_app = Starlette(routes=[Route("/where", sub_where)])
cors_app = CORSMiddleware(
    Starlette(routes=[Route("/data", home, methods=["GET", "PUT"])]),
    allow_origins=["https://app.example"],
    allow_methods=["GET", "PUT"],
    allow_headers=["x-custom"],
)

app = Starlette(
    routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/json", echo_json, methods=["POST"]),
        Route("/form", form, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/streamed-request", streamed_request, methods=["POST"]),
        Route("/stream", stream),
        Route("/stream-forever", stream_forever),
        Route("/file", file),
        Route("/background", background),
        Route("/teapot", teapot),
        Route("/slow-background", slow_background),
        Route("/crash", crash),
        Route("/state", state),
        Route("/redirect", redirect),
        Route("/big", big),
        Route("/events", events),
        Route("/sse", sse),
        Route("/sse-ping", sse_ping),
        Route("/sse-forever", sse_forever),
        Mount("/sub", app=sub_app),
        Mount("/static", app=StaticFiles(directory=_FOLDER)),
        Mount("/cors", app=cors_app),
        WebSocketRoute("/ws", ws_echo),
        WebSocketRoute("/ws-json", ws_json),
        WebSocketRoute("/ws-bytes", ws_bytes),
        WebSocketRoute("/ws-refuse", ws_refuse),
        WebSocketRoute("/ws-deny", ws_deny),
        WebSocketRoute("/ws-iter", ws_iter),
    ],
    middleware=[
        Middleware(StampASGI),
        Middleware(StampBase),
        Middleware(GZipMiddleware, minimum_size=500),
    ],
    exception_handlers={Teapot: on_teapot},
    lifespan=lifespan,
)
