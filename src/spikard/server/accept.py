"""Accepting connections: the event loop's own server on asyncio, anyio's loop elsewhere.

anyio's listener accepts one connection per ``await``: a cancel scope, a reader registered
and removed on the listening socket, and a second ``await`` to wrap the socket in a
transport, for every connection. On asyncio (without TLS) :func:`serve_listener` hands the
listening sockets to ``loop.create_server`` instead, which accepts in the event loop itself
and builds the same anyio socket stream (anyio's own protocol class, so every anyio feature
of the stream is intact) for each connection. A duplicate of each listening socket is
given to the loop, so closing its server never closes the anyio listener's socket.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

from ..connection.transport import LightEvent

__all__ = ["serve_listener"]

Handler = Callable[[anyio.abc.ByteStream], Coroutine[Any, Any, None]]


def _asyncio_listening_sockets(listener: anyio.abc.Listener[Any]) -> list[socket.socket] | None:
    """The sockets of a plain anyio asyncio TCP listener (or a group of them), else None."""
    listeners = getattr(listener, "listeners", [listener])
    sockets = []
    for sub in listeners:
        raw = getattr(sub, "_raw_socket", None)
        if type(sub).__module__ != "anyio._backends._asyncio" or not isinstance(raw, socket.socket):
            return None
        sockets.append(raw)
    return sockets


async def serve_listener(
    listener: anyio.abc.Listener[Any],
    handler: Handler,
    task_group: Any,
) -> None:
    """Accept connections until cancelled; run ``handler(stream)`` for each in ``task_group``.

    ``task_group`` needs a ``start_soon(func, *args)`` method (an anyio task group, or a
    :class:`~spikard.connection.tasks.LightTaskGroup`).
    """
    sockets = _asyncio_listening_sockets(listener)
    if sockets is None:
        await listener.serve(handler, task_group)
        return
    from anyio._backends._asyncio import SocketStream, StreamProtocol

    loop = asyncio.get_running_loop()
    set_nodelay = not type(loop).__module__.startswith("uvloop")  # uvloop sets it already

    class AcceptedProtocol(StreamProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.event_loop = loop
            self.read_event = LightEvent(loop)  # type: ignore[assignment]
            self.write_event = LightEvent(loop)  # type: ignore[assignment]
            self.write_event.set()
            if set_nodelay:
                raw = transport.get_extra_info("socket")
                if raw is not None:
                    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = SocketStream(transport, self)  # type: ignore[arg-type]
            task_group.start_soon(handler, stream)

        def pause_writing(self) -> None:
            self.write_event = LightEvent(loop)  # type: ignore[assignment]

    servers: list[asyncio.AbstractServer] = []
    try:
        for listening in sockets:
            servers.append(await loop.create_server(AcceptedProtocol, sock=listening.dup()))
        await anyio.sleep_forever()
    finally:
        for server in servers:
            server.close()
