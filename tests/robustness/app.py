"""The server the robustness tests run in a subprocess; ``/stats`` reports its resources."""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.lowlevel

from spikard import (
    Request,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    WebSocketResponse,
)

# Per-client limits off: the load tests open every connection from 127.0.0.1.
app = Spikard(
    websocket=WebSocketConfig(
        ping_interval=None,
        close_timeout=2.0,
        max_connections_per_client=None,
        handshake_rate=None,
    )
)
produced = 0
PAYLOAD = b"\xab" * 65536


@app.websocket("/echo")
async def echo(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    async for message in socket:
        yield message


@app.websocket("/callback-echo")
async def callback_echo(request: Request) -> WebSocketResponse:
    async def on_message(message: WebSocketMessage) -> WebSocketMessage:
        return message

    return WebSocketResponse(on_message=on_message)


@app.websocket("/sink")
async def sink(socket: WebSocket) -> None:
    """Accept and never read: incoming data must be held back by TCP, not buffered."""
    await socket.accept()
    await anyio.sleep_forever()


@app.websocket("/source")
async def source(socket: WebSocket) -> AsyncIterator[bytes]:
    """Produce 64 KiB messages without end; a client that does not read must pace us."""
    global produced
    pause = "pause" in socket.query_params  # awaits something between items
    while True:
        yield PAYLOAD
        produced += 1
        if pause:
            await anyio.lowlevel.checkpoint()


@app.websocket("/raise")
async def raising(socket: WebSocket) -> AsyncIterator[str]:
    async for message in socket:
        raise RuntimeError(f"handler failed on {message!r}")
    yield "unreachable"


@app.websocket("/block")
async def block(socket: WebSocket) -> AsyncIterator[str]:
    """Block the event loop briefly on every message, as careless handlers do."""
    async for message in socket:
        deadline = anyio.current_time() + 0.02
        while anyio.current_time() < deadline:
            pass
        yield message.as_text() or ""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


@app.get("/stats")
async def stats(request: Request) -> dict[str, Any]:
    gc.collect()
    return {
        "rss_kib": _status_kib("VmRSS"),
        "fds": len(os.listdir("/proc/self/fd")),
        "produced": produced,
        "tasks": len(anyio.get_running_tasks()),
    }
