"""Bare ASGI apps for the lifespan protocol: each attribute is one behaviour."""

from __future__ import annotations

import json
import sys

import anyio

from .app_raw import Receive, Scope, Send, read_body, respond

STARTED = "LIFESPAN STARTUP COMPLETE"
STOPPED = "LIFESPAN SHUTDOWN COMPLETE"
FAILURE = "database unreachable at startup"
SHUTDOWN_FAILURE = "could not flush at shutdown"


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def show_state(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    state = scope.get("state")
    if scope["path"] == "/mutate" and state is not None:
        state["added-by-request"] = True
        state["shared"].append("mutated")  # a shallow copy shares this list
    shown = None if state is None else sorted(state)
    await respond(send, 200, json.dumps({"keys": shown, "has_state": state is not None}).encode())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Speaks lifespan: startup stores state (after a short delay), shutdown reports."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await anyio.sleep(0.5)
                scope["state"]["token"] = "abc"
                scope["state"]["shared"] = []
                say(STARTED)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                say(STOPPED)
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await show_state(scope, receive, send)
    else:
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(sorted(scope.get("state") or {}))})
        await send({"type": "websocket.close", "code": 1000})


async def failing(scope: Scope, receive: Receive, send: Send) -> None:
    """Reports ``lifespan.startup.failed`` with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": FAILURE})
        return
    await show_state(scope, receive, send)  # pragma: no cover - never served


async def unsupported(scope: Scope, receive: Receive, send: Send) -> None:
    """An HTTP-only app: raises on any other scope type (an app without lifespan support)."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope type {scope['type']}")
    await show_state(scope, receive, send)


async def returns_after_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Completes startup, then returns without waiting for the shutdown message."""
    if scope["type"] == "lifespan":
        await receive()
        scope["state"]["token"] = "early"
        await send({"type": "lifespan.startup.complete"})
        return
    await show_state(scope, receive, send)


async def shutdown_fails(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts, then reports ``lifespan.shutdown.failed`` with a message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": SHUTDOWN_FAILURE})
        return
    await show_state(scope, receive, send)


async def raises_in_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Takes the startup message, then raises (no startup.complete nor .failed)."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup blew up")
    await show_state(scope, receive, send)


async def slow_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """Startup takes 2 s; nothing may be served before it completes."""
    if scope["type"] == "lifespan":
        await receive()
        await anyio.sleep(2)
        scope["state"]["token"] = "slow"
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await show_state(scope, receive, send)
