"""A bare ASGI 3 app (no framework): one route per protocol corner the suite probes."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import anyio

from .registry import record, seen_json

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_STATE_STARTED = "started"


def jsonable(value: Any) -> Any:
    """A scope value as JSON that keeps its Python type: bytes and tuples are tagged."""
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, tuple):
        return {"tuple": [jsonable(item) for item in value]}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return {"repr": type(value).__name__}


def query(scope: Scope) -> dict[str, str]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}


async def respond(
    send: Send, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    body = b""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return body, messages
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, messages


async def lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started"] = _STATE_STARTED
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    else:
        await http(scope, receive, send)


# HTTP ---------------------------------------------------------------------------------------


def route_of(scope: Scope) -> str:
    """The path below ``root_path`` (ASGI: ``path`` includes ``root_path``)."""
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


async def http(scope: Scope, receive: Receive, send: Send) -> None:
    path = route_of(scope)
    handler = HTTP_ROUTES.get(path)
    if handler is None and path.startswith("/scope"):
        handler = show_scope
    if handler is None:
        await read_body(receive)
        await respond(send, 404, b"not found")
        return
    await handler(scope, receive, send)


async def show_scope(scope: Scope, receive: Receive, send: Send) -> None:
    body, _ = await read_body(receive)
    shown = jsonable({key: value for key, value in scope.items() if key != "app"})
    shown["_body"] = body.decode("latin-1")
    data = json.dumps(shown).encode()
    await respond(send, 200, data, [(b"content-type", b"application/json")])


async def events(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(
        send, 200, seen_json(query(scope)["key"]), [(b"content-type", b"application/json")]
    )


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body, messages = await read_body(receive)
    info = json.dumps(
        {
            "types": [m["type"] for m in messages],
            "more_body": [m.get("more_body", False) for m in messages],
            "length": len(body),
        }
    ).encode()
    headers = [(b"content-length", str(len(body)).encode()), (b"x-info", info)]
    await respond(send, 200, body, headers)


async def status(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    code = int(query(scope)["code"])
    body = b"" if code in (204, 304) or code < 200 else f"status {code}".encode()
    await respond(send, code, body)


async def method(scope: Scope, receive: Receive, send: Send) -> None:
    body, _ = await read_body(receive)
    answer = f"{scope['method']} {len(body)}".encode()
    headers = [(b"content-length", str(len(answer)).encode()), (b"allow", b"GET, HEAD, OPTIONS")]
    await respond(send, 200, answer, headers)


async def many_headers(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    count = int(query(scope).get("n", "100"))
    headers = [(f"x-header-{i}".encode(), f"value-{i}".encode()) for i in range(count)]
    await respond(send, 200, b"ok", headers)


async def cookies(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    headers = [
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; HttpOnly"),
        (b"set-cookie", b"c=3"),
        (b"X-Mixed-Case", b"Kept"),
    ]
    await respond(send, 200, b"ok", headers)


async def stream(scope: Scope, receive: Receive, send: Send) -> None:
    """``n`` chunks of ``size`` bytes with ``more_body``; ``length=1`` declares the total."""
    await read_body(receive)
    params = query(scope)
    count, size = int(params.get("n", "3")), int(params.get("size", "5"))
    headers = [(b"content-type", b"application/octet-stream")]
    if params.get("length") == "1":
        headers.append((b"content-length", str(count * size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for index in range(count):
        chunk = bytes([97 + index % 26]) * size
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def large(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    size = int(query(scope)["size"])
    await respond(send, 200, bytes(range(256)) * (size // 256) + b"x" * (size % 256))


async def head_body(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends a body even for HEAD: the server must not put it on the wire."""
    await read_body(receive)
    body = b"twelve bytes"
    await respond(send, 200, body, [(b"content-length", b"12")])


async def raise_before(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    raise RuntimeError("the app failed before its response")


async def raise_after(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    headers = [(b"content-length", b"100")] if query(scope).get("length") else []
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("the app failed during its body")


async def return_none(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)


async def start_only(scope: Scope, receive: Receive, send: Send) -> None:
    """Starts a response and returns without its body."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})


async def bad_header(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(send, 200, b"never", [(b"x-bad", b"a\r\nx-injected: 1")])


async def body_before_start(scope: Scope, receive: Receive, send: Send) -> None:
    key = query(scope)["key"]
    await read_body(receive)
    try:
        await send({"type": "http.response.body", "body": b"early"})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        raise
    record(key, "accepted")


async def long_poll(scope: Scope, receive: Receive, send: Send) -> None:
    """Waits for ``http.disconnect`` before any response (bounded at 5 s)."""
    key = query(scope)["key"]
    await read_body(receive)
    record(key, "waiting")
    with anyio.move_on_after(5) as scope_:
        message = await receive()
        record(key, message["type"])
    if scope_.cancelled_caught:
        record(key, "timeout")
        await respond(send, 200, b"timeout")


async def stream_forever(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams until the client leaves: ``send`` raising or ``http.disconnect`` stops it."""
    key = query(scope)["key"]
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    stopped = "timeout"

    async def listen(cancel: anyio.CancelScope) -> None:
        nonlocal stopped
        message = await receive()
        if message["type"] == "http.disconnect":
            stopped = "disconnect"
            cancel.cancel()

    with anyio.move_on_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(listen, group.cancel_scope)
            try:
                while True:
                    await send(
                        {"type": "http.response.body", "body": b"x" * 512, "more_body": True}
                    )
                    await anyio.sleep(0.01)
            except OSError:
                stopped = stopped if stopped == "disconnect" else "send raised"
                group.cancel_scope.cancel()
    record(key, stopped)


async def after_response(scope: Scope, receive: Receive, send: Send) -> None:
    """``receive`` after the response completed says ``http.disconnect`` without waiting."""
    key = query(scope)["key"]
    await read_body(receive)
    await respond(send, 200, b"done")
    with anyio.move_on_after(2):
        message = await receive()
        record(key, message["type"])
        return
    record(key, "blocked")


async def send_after_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """After the response, more ``send`` calls are an error or ignored, never a second body."""
    key = query(scope)["key"]
    await read_body(receive)
    await respond(send, 200, b"done")
    try:
        await send({"type": "http.response.body", "body": b"more"})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        return
    record(key, "ignored")


async def slow(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    delay = float(query(scope).get("delay", "0.2"))
    await anyio.sleep(delay)
    await respond(send, 200, f"slept {delay}".encode())


async def no_read(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers without reading the request body."""
    await respond(send, 200, b"unread", [(b"content-length", b"6")])


async def upload_stats(scope: Scope, receive: Receive, send: Send) -> None:
    """Counts a streamed upload without keeping it."""
    total = 0
    chunks = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        total += len(message.get("body", b""))
        chunks += 1
        if not message.get("more_body", False):
            break
    await respond(send, 200, json.dumps({"total": total, "chunks": chunks}).encode())


async def empty_chunks(scope: Scope, receive: Receive, send: Send) -> None:
    """Empty ``more_body`` chunks in the middle must not end the body."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one", b"", b"two", b"", b"", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def short_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Declares 100 bytes, sends 5 and ends: the server must not let it pass as complete."""
    await read_body(receive)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
    )
    await send({"type": "http.response.body", "body": b"short"})


async def body_seen(scope: Scope, receive: Receive, send: Send) -> None:
    """Records the messages of a body the client abandons."""
    key = query(scope)["key"]
    with anyio.move_on_after(5):
        while True:
            message = await receive()
            record(key, f"{message['type']} {len(message.get('body', b''))}")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
    await respond(send, 200, b"seen")


async def custom_status(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(send, int(query(scope)["code"]), b"custom")


async def big_header(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(send, 200, b"ok", [(b"x-big", b"v" * 16000)])


async def minimal_messages(scope: Scope, receive: Receive, send: Send) -> None:
    """Only the required keys: no ``headers``, no ``body``, no ``more_body``."""
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body"})


async def list_headers(scope: Scope, receive: Receive, send: Send) -> None:
    """Header pairs as lists (the spec's "iterable of [name, value]") and in a tuple."""
    await read_body(receive)
    headers = ([b"x-list", b"1"], (b"x-tuple", b"2"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


async def request_keys(scope: Scope, receive: Receive, send: Send) -> None:
    """The keys of every ``http.request`` message."""
    keys = []
    while True:
        message = await receive()
        keys.append(sorted(message))
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    await respond(send, 200, json.dumps(keys).encode())


async def close_after(scope: Scope, receive: Receive, send: Send) -> None:
    """The app asks for ``connection: close``: the server must close after this response."""
    await read_body(receive)
    await respond(send, 200, b"bye", [(b"connection", b"close"), (b"content-length", b"3")])


async def own_chunking(scope: Scope, receive: Receive, send: Send) -> None:
    """The app declares ``transfer-encoding: chunked`` itself and streams plain bytes."""
    await read_body(receive)
    headers = [(b"transfer-encoding", b"chunked")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for part in (b"alpha", b"beta"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def duplex(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes each request chunk as it arrives, before the request body has ended."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        body = message.get("body", b"")
        if body:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})


async def poll_cancelled(scope: Scope, receive: Receive, send: Send) -> None:
    """Polls ``receive`` in an already-cancelled scope (Starlette's ``is_disconnected``)."""
    key = query(scope)["key"]
    await read_body(receive)
    record(key, "polling")
    with anyio.move_on_after(5):
        while True:
            message: Message = {}
            with anyio.CancelScope() as poll:
                poll.cancel()
                message = await receive()
            if message.get("type") == "http.disconnect":
                record(key, "http.disconnect")
                return
            await anyio.sleep(0.05)
    record(key, "never noticed")
    await respond(send, 200, b"timeout")


async def long_stream_for_length(scope: Scope, receive: Receive, send: Send) -> None:
    """Declares 5 bytes, then streams 10: the extra bytes must never reach the wire."""
    key = query(scope)["key"]
    await read_body(receive)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    try:
        await send({"type": "http.response.body", "body": b"12345", "more_body": True})
        await send({"type": "http.response.body", "body": b"HTTP/", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        raise
    record(key, "returned")


async def bad_header_name(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(send, 200, b"never", [(b"x bad:name", b"1")])


async def bad_status(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    await respond(send, int(query(scope)["code"]), b"")


async def out_of_order(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends ``?what=`` out of order; records whether ``send`` raised."""
    key, what = query(scope)["key"], query(scope)["what"]
    await read_body(receive)
    wrong: dict[str, list[Message]] = {
        "start-twice": [{"type": "http.response.start", "status": 200}] * 2,
        "unknown-type": [{"type": "http.response.nonsense"}],
        "websocket-in-http": [{"type": "websocket.accept"}],
        "body-after-end": [
            {"type": "http.response.start", "status": 200},
            {"type": "http.response.body", "body": b"end"},
            {"type": "http.response.body", "body": b"more"},
        ],
    }
    try:
        for message in wrong[what]:
            await send(message)
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        raise
    record(key, "returned")


async def flood(scope: Scope, receive: Receive, send: Send) -> None:
    """Streams 64 KiB chunks with nothing else awaited until ``send`` fails; records the end."""
    key = query(scope)["key"]
    await read_body(receive)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"h" * 65536
    with anyio.move_on_after(8):
        try:
            while True:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except Exception as exc:
            record(key, f"send raised {type(exc).__name__}")
            return
    record(key, "still sending")


HTTP_ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/events": events,
    "/echo": echo,
    "/status": status,
    "/method": method,
    "/headers/many": many_headers,
    "/headers/cookies": cookies,
    "/stream": stream,
    "/large": large,
    "/head-body": head_body,
    "/raise-before": raise_before,
    "/raise-after": raise_after,
    "/return-none": return_none,
    "/start-only": start_only,
    "/bad-header": bad_header,
    "/body-before-start": body_before_start,
    "/long-poll": long_poll,
    "/stream-forever": stream_forever,
    "/after-response": after_response,
    "/send-after-response": send_after_disconnect,
    "/slow": slow,
    "/no-read": no_read,
    "/upload-stats": upload_stats,
    "/empty-chunks": empty_chunks,
    "/short-length": short_length,
    "/body-seen": body_seen,
    "/custom-status": custom_status,
    "/big-header": big_header,
    "/minimal-messages": minimal_messages,
    "/list-headers": list_headers,
    "/request-keys": request_keys,
    "/close-after": close_after,
    "/own-chunking": own_chunking,
    "/duplex": duplex,
    "/poll-cancelled": poll_cancelled,
    "/long-stream-for-length": long_stream_for_length,
    "/bad-header-name": bad_header_name,
    "/bad-status": bad_status,
    "/out-of-order": out_of_order,
    "/flood": flood,
}


# WebSocket ----------------------------------------------------------------------------------


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    connect = await receive()
    assert connect["type"] == "websocket.connect"
    path = route_of(scope)
    handler = WS_ROUTES.get(path)
    if handler is None and path.startswith("/ws/scope"):
        handler = ws_scope
    if handler is None:
        await send({"type": "websocket.close", "code": 1000})
        return
    await handler(scope, receive, send)


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes; ``close CODE REASON`` closes with that code; records the disconnect code."""
    key = query(scope).get("key", "")
    offered = scope.get("subprotocols", [])
    wanted = query(scope).get("pick")
    accept: Message = {"type": "websocket.accept"}
    if wanted and wanted in offered:
        accept["subprotocol"] = wanted
    if query(scope).get("headers"):
        accept["headers"] = [(b"x-accepted", b"yes"), (b"set-cookie", b"ws=1")]
    await send(accept)
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            record(key, f"disconnect {message.get('code')}")
            return
        text = message.get("text")
        if text is not None and text.startswith("close "):
            _, code, reason = (text + " ").split(" ", 2)
            await send({"type": "websocket.close", "code": int(code), "reason": reason.strip()})
            return
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def ws_scope(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    shown = jsonable({key: value for key, value in scope.items() if key != "app"})
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    await send({"type": "websocket.close", "code": 1000})


async def ws_types(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "text frame"})
    await send({"type": "websocket.send", "bytes": b"\x00\x01binary"})
    await send({"type": "websocket.close", "code": 1000})


async def ws_close_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.close", "code": 1008})


async def ws_deny(scope: Scope, receive: Receive, send: Send) -> None:
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    headers = [(b"content-type", b"text/plain"), (b"x-denied", b"1")]
    start = {"type": "websocket.http.response.start", "status": 401, "headers": headers}
    await send(start)
    await send({"type": "websocket.http.response.body", "body": b"den", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"ied"})


async def ws_raise_before(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("the app failed before accepting")


async def ws_raise_after(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("the app failed after accepting")


async def ws_return_before(scope: Scope, receive: Receive, send: Send) -> None:
    return


async def ws_return_after(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})


async def ws_after_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """After the disconnect: ``receive`` again, then ``send`` (which must raise)."""
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    with anyio.move_on_after(5):
        while (message := await receive())["type"] != "websocket.disconnect":
            pass
        record(key, f"first {message['type']} {message.get('code')}")
    with anyio.move_on_after(1) as waiting:
        again = await receive()
        record(key, f"again {again['type']}")
    if waiting.cancelled_caught:
        record(key, "again blocked")
    try:
        with anyio.fail_after(2):
            await send({"type": "websocket.send", "text": "into the void"})
    except OSError as exc:
        record(key, f"send OSError {type(exc).__name__}")
    except Exception as exc:
        record(key, f"send {type(exc).__name__}")
    else:
        record(key, "send returned")


async def ws_send_after_close(scope: Scope, receive: Receive, send: Send) -> None:
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})
    try:
        with anyio.fail_after(2):
            await send({"type": "websocket.send", "text": "after close"})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
    else:
        record(key, "returned")


async def ws_send_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    key = query(scope)["key"]
    try:
        await send({"type": "websocket.send", "text": "too early"})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        raise
    record(key, "returned")


async def ws_accept_twice(scope: Scope, receive: Receive, send: Send) -> None:
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    try:
        await send({"type": "websocket.accept"})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
        raise
    record(key, "returned")


async def ws_count(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends ``n`` numbered text messages, then closes 1000."""
    await send({"type": "websocket.accept"})
    for number in range(int(query(scope).get("n", "100"))):
        await send({"type": "websocket.send", "text": str(number)})
    await send({"type": "websocket.close", "code": 1000})


async def ws_wrong_subprotocol(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts with a subprotocol the client did not offer (an app error)."""
    await send({"type": "websocket.accept", "subprotocol": "never-offered"})
    await receive()


async def ws_none_keys(scope: Scope, receive: Receive, send: Send) -> None:
    """Optional keys present as None, as some frameworks send them."""
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    message = await receive()
    await send({"type": "websocket.send", "bytes": None, "text": message.get("text") or "bin"})
    await send({"type": "websocket.send", "text": None, "bytes": b"raw"})
    await send({"type": "websocket.close", "code": 1000, "reason": None})


async def ws_message_keys(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends back the keys of the messages it received, then of the disconnect (recorded)."""
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    received = await receive()
    shown = {k: (type(v).__name__) for k, v in received.items()}
    await send({"type": "websocket.send", "text": json.dumps(shown)})
    with anyio.move_on_after(5):
        disconnect = await receive()
        record(key, json.dumps({k: v for k, v in disconnect.items() if k != "type"}))


async def ws_close_after_disconnect(scope: Scope, receive: Receive, send: Send) -> None:
    """After the client's close, the app closes too (Starlette does): no error expected."""
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    with anyio.move_on_after(5):
        while (await receive())["type"] != "websocket.disconnect":
            pass
    try:
        with anyio.fail_after(2):
            await send({"type": "websocket.close", "code": 1000})
    except Exception as exc:
        record(key, f"raised {type(exc).__name__}")
    else:
        record(key, "returned")


async def ws_flood(scope: Scope, receive: Receive, send: Send) -> None:
    """Sends 256 KiB messages until ``send`` fails (the client left); records how it ended."""
    key = query(scope)["key"]
    await send({"type": "websocket.accept"})
    chunk = b"f" * 262144
    with anyio.move_on_after(8):
        try:
            while True:
                await send({"type": "websocket.send", "bytes": chunk})
        except Exception as exc:
            record(key, f"send raised {type(exc).__name__}")
            return
    record(key, "still sending")


WS_ROUTES: dict[str, Callable[[Scope, Receive, Send], Awaitable[None]]] = {
    "/ws/echo": ws_echo,
    "/ws/types": ws_types,
    "/ws/close-before-accept": ws_close_before_accept,
    "/ws/deny": ws_deny,
    "/ws/raise-before": ws_raise_before,
    "/ws/raise-after": ws_raise_after,
    "/ws/return-before": ws_return_before,
    "/ws/return-after": ws_return_after,
    "/ws/after-disconnect": ws_after_disconnect,
    "/ws/send-after-close": ws_send_after_close,
    "/ws/send-before-accept": ws_send_before_accept,
    "/ws/accept-twice": ws_accept_twice,
    "/ws/count": ws_count,
    "/ws/wrong-subprotocol": ws_wrong_subprotocol,
    "/ws/none-keys": ws_none_keys,
    "/ws/message-keys": ws_message_keys,
    "/ws/close-after-disconnect": ws_close_after_disconnect,
    "/ws/flood": ws_flood,
}


def create_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A factory, for ``--factory``."""
    return app
