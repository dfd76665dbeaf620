"""A chat with typed messages: a tagged union in, a tagged union out, errors shown to the client.

::

    pip install -e '.[msgspec]'
    python examples/typed_chat.py        # or: python -m spikard examples.typed_chat:app

Clients speak JSON over ``ws://HOST/chat`` (subprotocol ``chat.v1`` when they offer it)::

    -> {"type": "join", "room": "lobby", "name": "ada"}
    <- {"type": "joined", "room": "lobby", "name": "ada"}          (to everyone in the room)
    -> {"type": "say", "text": "hello"}
    <- {"type": "said", "room": "lobby", "name": "ada", "text": "hello"}
    -> {"type": "say"}
    <- {"type": "error", "errors": [{"loc": ["text"], "msg": "Field required", "type": "missing"}]}
    -> {"type": "leave"}

Each message is validated as ``Join | Say | Leave`` by msgspec before the handler sees it (the
``type`` field selects the class). A message that fails gets the error reply and the chat goes
on (``on_invalid="reply"``); a valid message at the wrong time (``say`` before ``join``) gets a
``problem`` event from the handler itself.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import msgspec

from spikard import ChannelMessage, Spikard, WebSocket, WebSocketConfig, WebSocketMessage, merge

# ---- what clients send -------------------------------------------------------------------------


class Join(msgspec.Struct, tag_field="type", tag="join"):
    room: str
    name: str


class Say(msgspec.Struct, tag_field="type", tag="say"):
    text: str


class Leave(msgspec.Struct, tag_field="type", tag="leave"):
    pass


ClientMessage = Join | Say | Leave

# ---- what the server sends ---------------------------------------------------------------------


class Joined(msgspec.Struct, tag_field="type", tag="joined"):
    room: str
    name: str


class Said(msgspec.Struct, tag_field="type", tag="said"):
    room: str
    name: str
    text: str


class Problem(msgspec.Struct, tag_field="type", tag="problem"):
    text: str


ServerMessage = Joined | Said | Problem

app = Spikard(websocket=WebSocketConfig(max_message_size=16 * 1024))
_encode = msgspec.json.Encoder().encode


def _channel(room: str) -> str:
    return f"typed-chat:{room}"


async def _publish(room: str, event: Joined | Said) -> None:
    # Encoded once for every member; the relay below sends the text as it is.
    await app.broker.publish(_channel(room), _encode(event).decode())


@app.websocket("/chat", subprotocols=("chat.v1",), on_invalid="reply")
async def chat(socket: WebSocket[ClientMessage]) -> AsyncIterator[ServerMessage | WebSocketMessage]:
    """Join a room, then say things; ``leave`` (or closing) ends the chat."""
    joined: Join | None = None
    async for message in socket:
        if isinstance(message, Join):
            joined = message
            break
        yield Problem(text="join a room first")
    if joined is None:
        return  # the client left before joining
    room, name = joined.room, joined.name
    async with app.broker.subscribe(_channel(room)) as subscription:
        await _publish(room, Joined(room=room, name=name))
        async with merge(socket, subscription) as events:
            async for event in events:
                if isinstance(event, ChannelMessage):
                    yield event.message  # already JSON text: sent as it is
                elif isinstance(event, Say):
                    await _publish(room, Said(room=room, name=name, text=event.text))
                elif isinstance(event, Leave):
                    return
                else:
                    yield Problem(text=f"already in {room!r}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="spikard typed chat")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(argv)
    app.run(args.host, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
