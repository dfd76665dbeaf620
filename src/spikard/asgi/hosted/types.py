"""The ASGI 3 vocabulary the hosted side speaks (scope, receive, send)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
"""The connection scope an ASGI server passes (``type``, ``path``, ``headers``, ...)."""
Message = MutableMapping[str, Any]
"""One ASGI event, in either direction."""
Receive = Callable[[], Awaitable[Message]]
"""``await receive()``: the next event from the server."""
Send = Callable[[Message], Awaitable[None]]
"""``await send(event)``: hand an event to the server; returns once it took it."""
