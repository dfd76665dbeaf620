"""A bare ASGI app that exercises the protocol's corners; served by uvicorn and by spikard."""

from __future__ import annotations

import json
from typing import Any

from spikard.asgi.serving import Receive, Scope, Send


def _shown(scope: Scope, *drop: str) -> dict[str, Any]:
    shown = {key: value for key, value in scope.items() if key not in ("app", *drop)}
    if "headers" in shown:
        shown["headers"] = [[name.decode(), value.decode()] for name, value in shown["headers"]]
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in shown.items()}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["x"] = 1
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path.startswith("/scope"):
        data = json.dumps(_shown(scope), default=str, sort_keys=True).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": data})
    elif path == "/raise":
        raise RuntimeError("boom")
    elif path == "/return":
        return
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("later")
    elif path == "/echo":
        length = str(len(body)).encode()
        await send(
            {"type": "http.response.start", "status": 201, "headers": [(b"content-length", length)]}
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-s", b"1")]})
        for part in (b"a", b"b", b"c"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        headers = [
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    path = scope["path"]
    if path == "/ws/close-before":
        await send({"type": "websocket.close", "code": 1000})
        return
    if path == "/ws/deny":
        headers = [(b"x-a", b"b")]
        await send({"type": "websocket.http.response.start", "status": 418, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"teapot"})
        return
    if path == "/ws/raise":
        raise RuntimeError("x")
    if path == "/ws/return":
        return
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "scope":
            text = json.dumps(_shown(scope, "headers", "state", "extensions"), default=str)
            await send({"type": "websocket.send", "text": text})
        elif message.get("text") == "close":
            await send({"type": "websocket.close", "code": 4000, "reason": "bye"})
        else:
            reply = {"text": message.get("text"), "bytes": message.get("bytes")}
            await send({"type": "websocket.send", **reply})
