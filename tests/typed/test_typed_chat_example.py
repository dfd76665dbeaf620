"""``examples/typed_chat.py``: two clients in a room, validation errors shown to the client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
from examples import typed_chat
from websockets.exceptions import ConnectionClosed

from ..helpers import ws_connect


async def receive(ws: Any) -> Any:
    with anyio.fail_after(5):
        return json.loads(await ws.recv())


async def test_two_members_chat_in_a_room() -> None:
    async with (
        typed_chat.app.test_server() as server,
        ws_connect(server.ws_url("/chat"), subprotocols=["chat.v1"]) as ada,
        ws_connect(server.ws_url("/chat")) as bob,
    ):
        assert ada.subprotocol == "chat.v1"
        assert bob.subprotocol is None
        await ada.send('{"type": "join", "room": "lobby", "name": "ada"}')
        assert await receive(ada) == {"type": "joined", "room": "lobby", "name": "ada"}
        await bob.send('{"type": "join", "room": "lobby", "name": "bob"}')
        assert await receive(bob) == {"type": "joined", "room": "lobby", "name": "bob"}
        assert await receive(ada) == {"type": "joined", "room": "lobby", "name": "bob"}
        await bob.send('{"type": "say", "text": "hi ada"}')
        said = {"type": "said", "room": "lobby", "name": "bob", "text": "hi ada"}
        assert await receive(ada) == said
        assert await receive(bob) == said


async def test_invalid_and_untimely_messages_get_answers_and_the_chat_goes_on() -> None:
    async with typed_chat.app.test_server() as server, ws_connect(server.ws_url("/chat")) as ws:
        await ws.send('{"type": "say", "text": "too early"}')
        assert await receive(ws) == {"type": "problem", "text": "join a room first"}
        await ws.send('{"type": "shout"}')
        error = await receive(ws)
        assert error["type"] == "error"
        assert error["errors"] == [
            {"loc": ["type"], "msg": "Invalid value 'shout'", "type": "value_error"}
        ]
        await ws.send('{"type": "join", "room": "r"}')
        assert (await receive(ws))["errors"][0] == {
            "loc": ["name"],
            "msg": "Field required",
            "type": "missing",
        }
        await ws.send("not json at all")
        assert (await receive(ws))["errors"][0]["type"] == "json_invalid"
        await ws.send('{"type": "join", "room": "r", "name": "cy"}')
        assert await receive(ws) == {"type": "joined", "room": "r", "name": "cy"}
        await ws.send('{"type": "join", "room": "s", "name": "cy"}')
        assert await receive(ws) == {"type": "problem", "text": "already in 'r'"}
        await ws.send('{"type": "leave"}')
        with anyio.fail_after(5):
            try:
                await ws.recv()
            except ConnectionClosed:
                pass
        assert ws.close_code == 1000


def test_the_example_has_a_command_line() -> None:
    result = subprocess.run(
        [sys.executable, "examples/typed_chat.py", "--help"],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--host", "--port", "--backend"):
        assert option in result.stdout
