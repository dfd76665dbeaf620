"""JSON helpers over real sockets: send_json, receive_json, socket.json(), yielding dicts.

Invalid JSON closes with 1007 and a short reason by default; the route's ``on_invalid``
changes that (``"reply"``, ``"raise"``, a function).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from spikard import Spikard, WebSocket, WebSocketMessage
from spikard.typed import InvalidMessage
from spikard.typed.encoding import coerce_message, decode_json, dumps

from ..helpers import ws_connect
from . import Log

app = Spikard()
log = Log()


@app.websocket("/json-echo")
async def json_echo(socket: WebSocket) -> AsyncIterator[dict[str, Any]]:
    async for value in socket.json():
        yield {"echo": value}


@app.websocket("/receive-json")
async def receive_json(socket: WebSocket) -> None:
    first = await socket.receive_json()
    await socket.send_json({"first": first})
    await socket.send_json("plain string")
    await socket.send_json([1, 2.5, None, True])


@app.websocket("/yield-list")
async def yield_list(socket: WebSocket) -> AsyncIterator[object]:
    yield [1, "two", {"three": 3}]
    yield {"unicode": "héllo ✓"}
    yield "raw text"
    yield b"raw bytes"


@app.websocket("/json-after-end")
async def json_after_end(socket: WebSocket) -> AsyncIterator[str]:
    count = 0
    async for _ in socket.json():
        count += 1
    log.append(("ended", count))
    yield "unreachable after a 1007"  # the client is gone or closing


@app.websocket("/json-reply", on_invalid="reply")
async def json_reply(socket: WebSocket) -> AsyncIterator[object]:
    async for value in socket.json():
        yield {"ok": value}


@app.websocket("/json-raise", on_invalid="raise")
async def json_raise(socket: WebSocket) -> AsyncIterator[object]:
    reader = socket.json()
    while True:
        try:
            async for value in reader:
                yield {"ok": value}
            return
        except InvalidMessage as error:
            yield {"caught": error.errors[0]["type"], "code": error.close_code}


@app.websocket("/json-raise-uncaught", on_invalid="raise")
async def json_raise_uncaught(socket: WebSocket) -> AsyncIterator[object]:
    async for value in socket.json():
        yield value


def custom_outcome(error: InvalidMessage) -> dict[str, Any]:
    return {"custom": error.errors[0]["msg"][:12]}


@app.websocket("/json-callable", on_invalid=custom_outcome)
async def json_callable(socket: WebSocket) -> None:
    while True:
        value = await socket.receive_json()
        await socket.send_json({"got": value})


@app.websocket("/nan")
async def nan(socket: WebSocket) -> AsyncIterator[object]:
    yield {"x": math.nan}


async def expect_close(ws: Any) -> tuple[int, str]:
    """Read until the server's close; return its code and reason."""
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def test_json_iterator_and_yielded_dicts() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-echo")) as ws:
        with anyio.fail_after(5):
            await ws.send('{"a": [1, 2]}')
            assert json.loads(await ws.recv()) == {"echo": {"a": [1, 2]}}
            await ws.send(b'"binary json"')  # UTF-8 JSON in a binary message counts
            assert await ws.recv() == '{"echo":"binary json"}'


async def test_receive_json_and_send_json() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/receive-json")) as ws:
        with anyio.fail_after(5):
            await ws.send("[1, 2, 3]")
            assert await ws.recv() == '{"first":[1,2,3]}'
            assert await ws.recv() == '"plain string"'
            assert await ws.recv() == "[1,2.5,null,true]"


async def test_yielded_lists_dicts_and_raw_values() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/yield-list")) as ws:
        with anyio.fail_after(5):
            assert await ws.recv() == '[1,"two",{"three":3}]'
            assert await ws.recv() == '{"unicode":"héllo ✓"}'  # UTF-8, as HTTP routes write it
            assert await ws.recv() == "raw text"
            assert await ws.recv() == b"raw bytes"
        assert await expect_close(ws) == (1000, "")


@pytest.mark.parametrize("payload", ["{not json", "", "[1,]", "NaN", '{"a": 1} trailing'])
async def test_invalid_json_closes_1007_with_a_short_reason(payload: str) -> None:
    log.clear()
    async with app.test_server() as server, ws_connect(server.ws_url("/json-after-end")) as ws:
        await ws.send('{"fine": 1}')
        await ws.send(payload)
        code, reason = await expect_close(ws)
    assert code == 1007
    assert reason.startswith("invalid message: Invalid JSON")
    assert len(reason.encode()) <= 123
    await log.wait_for_item(("ended", 1))


async def test_invalid_binary_utf8_closes_1007() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-echo")) as ws:
        await ws.send(b"\xff\xfe{}")
        code, reason = await expect_close(ws)
    assert code == 1007
    assert "Invalid JSON" in reason


async def test_on_invalid_reply_answers_and_goes_on() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-reply")) as ws:
        with anyio.fail_after(5):
            await ws.send("nope")
            reply = json.loads(await ws.recv())
            assert reply["type"] == "error"
            [error] = reply["errors"]
            assert error["loc"] == []
            assert error["type"] == "json_invalid"
            assert error["msg"].startswith("Invalid JSON")
            await ws.send("42")
            assert await ws.recv() == '{"ok":42}'


async def test_on_invalid_raise_reaches_the_handler_which_may_go_on() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-raise")) as ws:
        with anyio.fail_after(5):
            await ws.send("{")
            assert json.loads(await ws.recv()) == {"caught": "json_invalid", "code": 1007}
            await ws.send('"again"')
            assert await ws.recv() == '{"ok":"again"}'


async def test_on_invalid_raise_uncaught_closes_1007() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-raise-uncaught")) as ws:
        await ws.send("}")
        code, reason = await expect_close(ws)
    assert code == 1007
    assert reason.startswith("invalid message: Invalid JSON")


async def test_on_invalid_callable_reply() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/json-callable")) as ws:
        with anyio.fail_after(5):
            await ws.send("x")
            assert json.loads(await ws.recv()) == {"custom": "Invalid JSON"}
            await ws.send("{}")
            assert await ws.recv() == '{"got":{}}'


async def test_nan_is_a_handler_error() -> None:
    async with app.test_server() as server, ws_connect(server.ws_url("/nan")) as ws:
        code, _ = await expect_close(ws)
    assert code == 1011


# ---- the codec itself ------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_plain_values_round_trip_as_http_writes_them(value: Any) -> None:
    text = dumps(value)
    assert decode_json(text) == value
    assert decode_json(text.encode()) == value
    # The same bytes an HTTP route's JSONResponse writes.
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, (dict, list)):
        assert coerce_message(value) == WebSocketMessage.text(text)


@given(st.binary(max_size=64) | st.text(max_size=64))
@settings(max_examples=300)
def test_decoding_anything_returns_a_value_or_invalid_message(data: str | bytes) -> None:
    outcome: Any
    try:
        outcome = decode_json(data)
    except InvalidMessage as error:
        outcome = error
    if isinstance(outcome, InvalidMessage):
        assert outcome.close_code == 1007
        assert outcome.errors[0]["type"] == "json_invalid"
        assert len(str(outcome).encode()) <= 123
    else:
        assert outcome == json.loads(data)


def test_deep_nesting_is_invalid_not_a_crash() -> None:
    with pytest.raises(InvalidMessage, match="nested too deeply"):
        decode_json("[" * 100_000 + "]" * 100_000)


async def test_invalid_messages_are_logged_once_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "spikard.websocket")
    async with app.test_server() as server, ws_connect(server.ws_url("/json-reply")) as ws:
        with anyio.fail_after(5):
            for bad in ("x", "y", "z"):
                await ws.send(bad)
                assert json.loads(await ws.recv())["type"] == "error"
    invalid = [r for r in caplog.records if r.getMessage().startswith("invalid message on")]
    assert [r.levelno for r in invalid] == [logging.INFO, logging.DEBUG, logging.DEBUG]
