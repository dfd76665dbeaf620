"""A FastAPI app: routers, dependencies (with yield), validation, lifespan state, WebSockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
    WebSocketException,
    status,
)
from fastapi.requests import HTTPConnection
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field

from .registry import record, seen


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float = Field(gt=0)
    tags: list[str] = []


class Conflict(Exception):
    def __init__(self, name: str) -> None:
        self.name = name


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
    yield {"pool": "pool-1", "settings": {"mode": "compliance"}}


def pool_of(connection: HTTPConnection) -> str:
    """Works for HTTP and WebSocket routes alike."""
    return str(connection.state.pool)


async def tracked(request: Request) -> AsyncIterator[str]:
    key = request.query_params.get("key", "")
    record(key, "dependency setup")
    try:
        yield "resource"
    finally:
        record(key, "dependency teardown")


def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "bad token", {"www-authenticate": "Token"}
        )
    return x_token


router = APIRouter(prefix="/api", tags=["api"])


@router.get("/items/{item_id}")
async def read_item(
    item_id: int, pool: Annotated[str, Depends(pool_of)], q: str | None = None
) -> dict[str, Any]:
    return {"item_id": item_id, "q": q, "pool": pool}


@router.post("/items", status_code=status.HTTP_201_CREATED)
async def create_item(item: Item) -> Item:
    if item.name == "taken":
        raise Conflict(item.name)
    return item


@router.get("/secure")
async def secure(auth: Annotated[str, Depends(token)]) -> dict[str, str]:
    return {"token": auth}


@router.get("/resource")
async def resource(value: Annotated[str, Depends(tracked)]) -> dict[str, str]:
    return {"value": value}


@router.get("/limited")
async def limited(n: Annotated[int, Query(ge=1, le=10)]) -> dict[str, int]:
    return {"n": n}


app = FastAPI(lifespan=lifespan)
app.include_router(router)


@app.exception_handler(Conflict)
async def on_conflict(request: Request, exc: Conflict) -> JSONResponse:
    return JSONResponse({"conflict": exc.name}, status_code=409)


@app.get("/")
async def root() -> dict[str, str]:
    return {"hello": "fastapi"}


@app.get("/sync")
def sync_route() -> dict[str, str]:
    return {"ran": "in a thread"}


@app.get("/missing")
async def missing() -> None:
    raise HTTPException(404, "no such thing")


@app.get("/crash")
async def crash() -> None:
    raise RuntimeError("fastapi route failed")


@app.get("/state")
async def state(request: Request) -> dict[str, Any]:
    return {"pool": request.state.pool, "settings": request.state.settings}


@app.post("/notify")
async def notify(background: BackgroundTasks, key: str) -> dict[str, str]:
    async def later() -> None:
        await anyio.sleep(0.1)
        record(key, "background ran")

    background.add_task(later)
    record(key, "responded")
    return {"queued": key}


@app.get("/stream")
async def stream(n: int = 5) -> StreamingResponse:
    async def lines() -> AsyncIterator[bytes]:
        for number in range(n):
            yield f"line {number}\n".encode()
            await anyio.lowlevel.checkpoint()

    return StreamingResponse(lines(), media_type="text/plain")


@app.get("/text", response_class=PlainTextResponse)
async def text() -> str:
    return "plain text"


@app.get("/poll")
async def poll(request: Request, key: str) -> PlainTextResponse:
    """Long poll with ``request.is_disconnected()``, the usual idiom."""
    record(key, "polling")
    with anyio.move_on_after(5):
        while not await request.is_disconnected():
            await anyio.sleep(0.05)
        record(key, "disconnected")
        return PlainTextResponse("gone")
    record(key, "never noticed")
    return PlainTextResponse("timeout")


@app.get("/events")
async def events(key: str) -> list[str]:
    return seen(key)


@app.websocket("/ws/{room}")
async def room(
    websocket: WebSocket, room: str, pool: Annotated[str, Depends(pool_of)], name: str = "anon"
) -> None:
    await websocket.accept()
    await websocket.send_json({"room": room, "name": name, "pool": pool})
    try:
        while True:
            message = await websocket.receive_text()
            await websocket.send_text(f"{name}@{room}: {message}")
    except WebSocketDisconnect as exc:
        record(name, f"disconnect {exc.code}")


@app.websocket("/ws-guarded")
async def ws_guarded(websocket: WebSocket, token: Annotated[str | None, Query()] = None) -> None:
    if token is None:
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="token required")
    await websocket.accept()
    await websocket.send_text("guarded ok")
    await websocket.close()


@app.websocket("/ws-auth")
async def ws_auth(websocket: WebSocket, token: str | None = None) -> None:
    if token != "secret":
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
        return
    await websocket.accept()
    await websocket.send_text("welcome")
    await websocket.close()
