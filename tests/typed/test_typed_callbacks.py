"""Typed messages in the callback shim: ``WebSocketResponse(receive=...)``, an annotated
``on_message``, or the route's ``receive=``; replies encoded to JSON; invalid messages.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
from websockets.exceptions import ConnectionClosed

from spikard import Request, Spikard, WebSocketMessage, WebSocketResponse

from ..helpers import ws_connect
from ..streams import Log
from .models import Join, PSay, Said, Say

app = Spikard()
log = Log()


async def _chat(message: Join | Say) -> Said | None:
    if isinstance(message, Join):
        return None
    return Said(room="r", text=message.text)


@app.websocket("/annotated")
def annotated(request: Request) -> WebSocketResponse:
    return WebSocketResponse(on_message=_chat)  # the annotation declares Join | Say


@app.websocket("/explicit")
def explicit(request: Request) -> WebSocketResponse:
    def on_message(message: Any) -> dict[str, Any]:
        return {"got": type(message).__name__, "text": message.text}

    return WebSocketResponse(on_message=on_message, receive=PSay, on_invalid="reply")


@app.websocket("/route-typed", receive=Join | Say, subprotocols=("chat.v1",))
def route_typed(request: Request) -> WebSocketResponse:
    return WebSocketResponse(on_message=lambda message: {"class": type(message).__name__})


@app.websocket("/raise", receive=Say, on_invalid="raise")
def raise_to_on_error(request: Request) -> WebSocketResponse:
    async def on_error(error: str) -> None:
        log.append(("error", error))

    return WebSocketResponse(on_message=lambda message: message.text, on_error=on_error)


@app.websocket("/raw")
def raw(request: Request) -> WebSocketResponse:
    def on_message(message: WebSocketMessage) -> list[str]:
        return [message.as_text() or "", "as JSON"]

    return WebSocketResponse(on_message=on_message)


async def closed(ws: Any) -> tuple[int, str]:
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def test_annotated_on_message_gets_validated_values() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/annotated")) as ws:
        with anyio.fail_after(5):
            await ws.send('{"type":"join","room":"x"}')  # None: no reply
            await ws.send('{"type":"say","text":"hi"}')
            assert json.loads(await ws.recv()) == {"type": "said", "room": "r", "text": "hi"}
            await ws.send('{"type":"say"}')
        assert await closed(ws) == (1007, "invalid message at text: Field required")


async def test_receive_keyword_with_reply() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/explicit")) as ws:
        with anyio.fail_after(5):
            await ws.send('{"type":"say","text":""}')
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error"
            assert reply["errors"][0]["loc"] == ["text"]
            assert reply["errors"][0]["type"] == "string_too_short"
            await ws.send('{"type":"say","text":"ok"}')
            assert json.loads(await ws.recv()) == {"got": "PSay", "text": "ok"}


async def test_route_types_and_subprotocols_reach_callbacks() -> None:
    async with (
        app.test_server() as server,
        ws_connect(server.ws_url("/route-typed"), subprotocols=["x", "chat.v1"]) as ws,
    ):
        assert ws.subprotocol == "chat.v1"
        with anyio.fail_after(5):
            await ws.send('{"type":"join","room":"x"}')
            assert json.loads(await ws.recv()) == {"class": "Join"}


async def test_raise_hands_the_error_to_on_error_and_closes_1007() -> None:
    log.clear()
    async with app.test_server() as server, ws_connect(server.ws_url("/raise")) as ws:
        with anyio.fail_after(5):
            await ws.send('{"type":"say","text":"fine"}')
            assert await ws.recv() == "fine"
            await ws.send('{"type":"say","text":1}')
        code, reason = await closed(ws)
    assert code == 1007
    assert reason == "invalid message at text: Expected `str`, got `int`"
    assert log == [("error", "InvalidMessage: " + reason)]


async def test_untyped_callbacks_may_reply_with_json() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/raw")) as ws:
        with anyio.fail_after(5):
            await ws.send("hello")
            assert await ws.recv() == '["hello","as JSON"]'
