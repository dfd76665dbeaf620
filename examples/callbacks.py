"""The callback shim with all four callbacks, some plain functions and some coroutines.

::

    python examples/callbacks.py
    python -m spikard examples.callbacks:app

Connect to ``ws://127.0.0.1:8000/secure?token=alice-token`` (or ``bob-token``). Without a
known token the handshake is refused with HTTP 401 before any WebSocket exists.

Once connected: ``whoami`` answers the user name, ``quiet`` gets no reply (``on_message``
returned None), ``bye`` makes the server close with 1000, ``boom`` makes ``on_message`` raise
(``on_error`` is told, and the socket closes with 1011); anything else is echoed with the
user's name. ``GET /sessions`` shows what the callbacks recorded for each connection.

When a handler's first parameter is annotated ``Request`` it receives the handshake request
and returns a :class:`~spikard.WebSocketResponse`; spikard then calls

- ``on_connect()`` before the 101 response: raising refuses the connection (with the status
  of a ``HandshakeRejected``, 403 for any other exception);
- ``on_message(message)`` for every message: a returned message is sent back;
- ``on_error(description)`` when ``on_message`` raised or the connection failed;
- ``on_close(frame)`` once the connection ended, with the peer's ``(code, reason)`` or None
  when the peer sent no close frame. It has returned before the server closes TCP.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import anyio

from spikard import HandshakeRejected, Request, Spikard, WebSocketMessage, WebSocketResponse

logger = logging.getLogger("examples.callbacks")

TOKENS = {"alice-token": "alice", "bob-token": "bob"}
"""A stand-in for a real credential check."""


@dataclass
class SessionRecord:
    """What the callbacks saw during one connection."""

    user: str
    messages: int = 0
    errors: list[str] = field(default_factory=list)
    closed: bool = False
    close_frame: tuple[int, str] | None = None


sessions: list[SessionRecord] = []
"""Every authenticated connection, oldest first (kept small: the last 100)."""


app = Spikard()


@app.websocket("/secure")
def secure(request: Request) -> WebSocketResponse:
    user = TOKENS.get(request.query_params.get("token", ""))
    record = SessionRecord(user or "")

    def on_connect() -> None:  # a plain function
        if user is None:
            raise HandshakeRejected(
                401, "missing or unknown token", {"www-authenticate": 'Bearer realm="spikard"'}
            )
        sessions.append(record)
        del sessions[:-100]
        logger.info("%s connected from %s", user, request.client)

    async def on_message(message: WebSocketMessage) -> WebSocketMessage | None:  # a coroutine
        record.messages += 1
        text = message.as_text()
        if text is None:
            return WebSocketMessage.text(f"{user}: {len(message.as_binary() or b'')} bytes")
        if text == "whoami":
            return WebSocketMessage.text(record.user)
        if text == "quiet":
            return None
        if text == "bye":
            return WebSocketMessage.close(1000, "goodbye")
        if text == "boom":
            raise RuntimeError("boom requested")
        await anyio.sleep(0.001)  # stands in for real async work (a database, a service)
        return WebSocketMessage.text(f"{user}: {text}")

    def on_close(frame: tuple[int, str] | None) -> None:  # a plain function
        record.closed = True
        record.close_frame = frame
        logger.info("%s left with %s after %d message(s)", user, frame, record.messages)

    async def on_error(error: str) -> None:  # a coroutine
        record.errors.append(error)
        logger.warning("%s: %s", user, error)

    return WebSocketResponse(
        on_connect=on_connect, on_message=on_message, on_close=on_close, on_error=on_error
    )


@app.get("/sessions")
def list_sessions() -> list[dict[str, Any]]:
    return [asdict(record) for record in sessions]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="spikard callback shim")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args()
    app.run(args.host, args.port, backend=args.backend)
