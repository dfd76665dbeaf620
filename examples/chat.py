"""Chat rooms over WebSocket, with a browser page, on spikard's pub/sub broker.

::

    python examples/chat.py            # then open http://127.0.0.1:8000 in two browser tabs
    python examples/chat.py --redis redis://127.0.0.1:6379/0 --workers 2
    python -m spikard examples.chat:app

- ``GET /`` serves a small self-contained HTML page (vanilla JavaScript, no CDN).
- ``ws://HOST/ws/{room}?name=alice`` joins a room. Send plain text, or JSON with a ``text``
  field; everyone in the room (the sender included) receives
  ``{"type": "message", "room": ..., "name": ..., "text": ...}``. Joins and leaves are
  announced as ``{"type": "join" | "leave", "room": ..., "name": ..., "members": [...]}``.
- ``GET /rooms`` lists the rooms that have members on this process, with everyone in them.

Broadcast and presence go through ``app.broker``: in memory by default, Redis with
``--redis URL`` (or the ``SPIKARD_CHAT_REDIS`` environment variable, which is how the worker
processes of ``--workers N`` learn it), so clients connected to different workers or hosts
share rooms. A member that reads too slowly loses its oldest messages instead of slowing the
room (``policy="drop_oldest"``). Everything here runs on asyncio; on trio too with the
in-memory broker.
"""

from __future__ import annotations

import argparse
import json
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from spikard import (
    BrokerError,
    ChannelMessage,
    HandshakeRejected,
    Spikard,
    WebSocket,
    WebSocketConfig,
    WebSocketMessage,
    merge,
)

MAX_NAME_LENGTH = 32
MEMBER_BACKLOG = 64
"""Messages buffered for one member before its oldest ones are dropped."""

app = Spikard(
    websocket=WebSocketConfig(max_message_size=16 * 1024),
    broker=os.environ.get("SPIKARD_CHAT_REDIS") or None,
)
local_rooms: Counter[str] = Counter()
"""Room -> connections on this process (what ``GET /rooms`` lists)."""


def _channel(room: str) -> str:
    return f"chat:{room}"


async def _names(room: str) -> list[str]:
    members = await app.broker.members(_channel(room))
    return sorted(str(info.get("name", "?")) for info in members.values())


async def _announce(kind: str, room: str, name: str) -> None:
    event = {"type": kind, "room": room, "name": name, "members": await _names(room)}
    await app.broker.publish(_channel(room), json.dumps(event, ensure_ascii=False))


def _message_text(raw: str) -> str:
    """Accept plain text, or a JSON object with a ``text`` field (what the page sends)."""
    if raw.startswith("{"):
        try:
            body = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(body, dict) and isinstance(body.get("text"), str):
            return str(body["text"])
    return raw


@app.websocket("/ws/{room}")
async def chat(socket: WebSocket) -> AsyncIterator[WebSocketMessage]:
    room: str = socket.path_params["room"]
    name = (socket.query_params.get("name") or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        # Nothing was read or sent yet, so the handshake is still open: answer with HTTP 400.
        raise HandshakeRejected(400, f"?name= is required (1 to {MAX_NAME_LENGTH} characters)")
    await socket.accept()  # before merge() reads the socket from its own task
    broker = app.broker
    member = f"{name}#{uuid.uuid4().hex[:8]}"  # one presence entry per connection
    local_rooms[room] += 1
    try:
        async with broker.subscribe(
            _channel(room), max_backlog=MEMBER_BACKLOG, policy="drop_oldest"
        ) as subscription, broker.presence(_channel(room), member, {"name": name}):
            await _announce("join", room, name)
            # merge() follows the socket: when the client leaves, the loop ends.
            async with merge(socket, subscription) as events:
                async for event in events:
                    if isinstance(event, ChannelMessage):
                        yield event.message  # room -> this client
                        continue
                    raw = event.as_text()
                    if raw is None:
                        yield WebSocketMessage.close(1003, "text messages only")
                        return
                    said = {"type": "message", "room": room, "name": name,
                            "text": _message_text(raw)}
                    await broker.publish(_channel(room), json.dumps(said, ensure_ascii=False))
    finally:
        with anyio.CancelScope(shield=True):
            local_rooms[room] -= 1
            if not local_rooms[room]:
                del local_rooms[room]
            try:
                await _announce("leave", room, name)
            except BrokerError:
                pass  # the broker is down: the error that ended the chat is the one to report


@app.get("/rooms")
async def list_rooms() -> dict[str, list[str]]:
    return {room: await _names(room) for room in sorted(local_rooms)}


# The page (and anything else in chat_static/) is served from disk: "/" is its index.html.
# Registered last, so the routes above take precedence.
app.static("/", Path(__file__).parent / "chat_static", html=True)




def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="spikard chat rooms")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--redis", metavar="URL", help="share rooms through Redis")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (SO_REUSEPORT)")
    args = parser.parse_args(argv)
    if args.redis:
        os.environ["SPIKARD_CHAT_REDIS"] = args.redis
    if args.workers > 1 or args.redis:
        # Workers import this module afresh, with the broker URL from the environment.
        from spikard.server.workers import run_workers

        run_workers("examples.chat:app", args.host, args.port, workers=args.workers,
                    backend=args.backend)
    else:
        app.run(args.host, args.port, backend=args.backend)


if __name__ == "__main__":
    main()
