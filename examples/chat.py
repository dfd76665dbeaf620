"""Chat rooms over WebSocket, with a browser page, in one file.

::

    python examples/chat.py            # then open http://127.0.0.1:8000 in two browser tabs
    python -m spikard examples.chat:app

- ``GET /`` serves a small self-contained HTML page (vanilla JavaScript, no CDN).
- ``ws://HOST/ws/{room}?name=alice`` joins a room. Send plain text, or JSON with a ``text``
  field; everyone in the room (the sender included) receives
  ``{"type": "message", "room": ..., "name": ..., "text": ...}``. Joins and leaves are
  announced as ``{"type": "join" | "leave", "room": ..., "name": ..., "members": [...]}``.
- ``GET /rooms`` lists the rooms and their members as JSON.

spikard has no pub/sub API yet, so the :class:`RoomRegistry` below is the whole broadcast
engine: one bounded anyio memory stream per member. Publishing never waits: a member whose
buffer is full misses the message (it is counted in ``Member.dropped``) instead of slowing
the room down. Everything here runs on asyncio and on trio.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from spikard import (
    ConnectionClosed,
    HandshakeRejected,
    HTMLResponse,
    Spikard,
    WebSocket,
    WebSocketConfig,
)

MAX_NAME_LENGTH = 32
MEMBER_BUFFER = 64
"""Messages buffered for one member before the room starts dropping messages for it."""


@dataclass(eq=False)
class Member:
    """One connection in a room; ``outbox`` feeds that connection's forwarder task."""

    name: str
    outbox: MemoryObjectSendStream[str]
    dropped: int = 0


@dataclass(eq=False)
class Room:
    name: str
    members: list[Member] = field(default_factory=list)

    def member_names(self) -> list[str]:
        return [member.name for member in self.members]

    def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` (as JSON) for every member, without ever waiting."""
        text = json.dumps(event, ensure_ascii=False)
        for member in list(self.members):
            try:
                member.outbox.send_nowait(text)
            except anyio.WouldBlock:
                member.dropped += 1  # a slow reader: drop for it, never block the others
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # that member is leaving right now


class RoomRegistry:
    """Rooms by name; a room exists while it has members."""

    def __init__(self, buffer_size: int = MEMBER_BUFFER) -> None:
        self.rooms: dict[str, Room] = {}
        self.buffer_size = buffer_size

    @contextmanager
    def join(
        self, room_name: str, name: str
    ) -> Iterator[tuple[Room, MemoryObjectReceiveStream[str]]]:
        """Be a member of ``room_name`` for the duration of the block.

        Yields the room and the member's inbox. Joining and leaving are announced to the room.
        """
        outbox, inbox = anyio.create_memory_object_stream[str](self.buffer_size)
        room = self.rooms.get(room_name)
        if room is None:
            room = self.rooms[room_name] = Room(room_name)
        member = Member(name, outbox)
        room.members.append(member)
        with outbox, inbox:
            try:
                room.publish(_presence("join", room, name))
                yield room, inbox
            finally:
                room.members.remove(member)
                if room.members:
                    room.publish(_presence("leave", room, name))
                else:
                    del self.rooms[room_name]

    def snapshot(self) -> dict[str, list[str]]:
        """Room name -> member names."""
        return {name: room.member_names() for name, room in sorted(self.rooms.items())}


def _presence(kind: str, room: Room, name: str) -> dict[str, Any]:
    return {"type": kind, "room": room.name, "name": name, "members": room.member_names()}


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


rooms = RoomRegistry()
app = Spikard(websocket=WebSocketConfig(max_message_size=16 * 1024))


@app.websocket("/ws/{room}")
async def chat(socket: WebSocket) -> None:
    room_name: str = socket.path_params["room"]
    name = (socket.query_params.get("name") or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        # Nothing was read or sent yet, so the handshake is still open: answer with HTTP 400.
        raise HandshakeRejected(400, f"?name= is required (1 to {MAX_NAME_LENGTH} characters)")
    await socket.accept()
    with rooms.join(room_name, name) as (room, inbox):
        async with anyio.create_task_group() as task_group:
            # Room -> socket runs in its own task; socket -> room is this loop. When the client
            # leaves, the loop ends and the forwarder is cancelled, so nothing waits on the room.
            task_group.start_soon(_forward, socket, inbox)
            async for message in socket:
                raw = message.as_text()
                if raw is None:
                    await socket.close(1003, "text messages only")
                    break
                room.publish(
                    {"type": "message", "room": room_name, "name": name,
                     "text": _message_text(raw)}
                )
            task_group.cancel_scope.cancel()


async def _forward(socket: WebSocket, inbox: MemoryObjectReceiveStream[str]) -> None:
    try:
        async for text in inbox:
            await socket.send(text)
    except ConnectionClosed:
        pass  # the client is gone; the receive loop ends on its own


@app.get("/rooms")
def list_rooms() -> dict[str, list[str]]:
    return rooms.snapshot()


@app.get("/")
def index() -> HTMLResponse:
    return HTMLResponse(PAGE)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spikard chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  form { display: flex; gap: .5rem; margin: .5rem 0; }
  input { flex: 1; padding: .4rem; }
  #log { list-style: none; padding: .5rem; height: 22rem; overflow-y: auto; }
  #log { border: 1px solid #ccc; }
  #log .notice { color: #777; font-style: italic; }
  #log b { margin-right: .3rem; }
</style>
</head>
<body>
<h1>spikard chat</h1>
<form id="join">
  <input id="room" placeholder="room" value="lobby" required>
  <input id="name" placeholder="your name" maxlength="32" required>
  <button>Join</button>
</form>
<p id="status">Pick a room and a name.</p>
<div id="chat" hidden>
  <p>Members: <span id="members"></span></p>
  <ul id="log"></ul>
  <form id="send">
    <input id="text" autocomplete="off" placeholder="say something">
    <button>Send</button>
    <button type="button" id="leave">Leave</button>
  </form>
</div>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let socket = null;

function addLine(name, text, notice) {
  const item = document.createElement("li");
  if (notice) {
    item.className = "notice";
  } else {
    const who = document.createElement("b");
    who.textContent = name + ":";
    item.appendChild(who);
  }
  item.appendChild(document.createTextNode(text));
  $("log").appendChild(item);
  item.scrollIntoView();
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("room").value.trim();
  const name = $("name").value.trim();
  if (!room || !name || socket) return;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = scheme + "://" + location.host + "/ws/" + encodeURIComponent(room)
    + "?name=" + encodeURIComponent(name);
  socket = new WebSocket(url);
  $("status").textContent = "Connecting to " + room + "...";
  socket.addEventListener("open", () => {
    $("join").hidden = true;
    $("chat").hidden = false;
    $("log").replaceChildren();
    $("status").textContent = "In room " + room + " as " + name + ".";
    $("text").focus();
  });
  socket.addEventListener("message", (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "message") {
      addLine(data.name, data.text, false);
    } else {
      addLine("", data.name + (data.type === "join" ? " joined" : " left"), true);
      $("members").textContent = data.members.join(", ");
    }
  });
  socket.addEventListener("close", (event) => {
    $("status").textContent = "Disconnected (code " + event.code
      + (event.reason ? ": " + event.reason : "") + ").";
    $("join").hidden = false;
    $("chat").hidden = true;
    socket = null;
  });
});

$("send").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("text").value;
  if (socket && text) {
    socket.send(JSON.stringify({ text: text }));
    $("text").value = "";
  }
});

$("leave").addEventListener("click", () => {
  if (socket) socket.close(1000, "bye");
});
</script>
</body>
</html>
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard chat rooms")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
