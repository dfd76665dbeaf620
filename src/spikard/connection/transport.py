"""Transport quirks worked around once, where a connection is accepted."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.abc

__all__ = ["DirectWriter", "direct_writer", "pause_unrequested_reads"]


def pause_unrequested_reads(stream: anyio.abc.ByteStream) -> None:
    """Stop an asyncio transport from reading ahead of ``receive()`` calls.

    anyio's asyncio socket streams pause the transport only after a ``receive()`` that had to
    wait; a connection whose every ``receive()`` finds data already queued (a peer that
    floods from the first byte) keeps reading into an unbounded queue while the application
    applies backpressure. Pausing right after accept restores the rule that bytes are read
    only when asked for. Streams of other backends (trio reads the socket directly) and
    wrappers without a transport are left alone.
    """
    inner: Any = stream
    for _ in range(4):  # TLS and similar wrappers expose the stream below as transport_stream
        transport = getattr(inner, "_transport", None)
        if transport is not None:
            is_reading = getattr(transport, "is_reading", None)
            if callable(is_reading) and is_reading():
                transport.pause_reading()
            return
        inner = getattr(inner, "transport_stream", None)
        if inner is None:
            return


class DirectWriter:
    """Write to the asyncio transport below an anyio socket stream, skipping two costs.

    anyio's ``SocketStream.send`` takes a resource guard and ends with a cancel-shielded
    checkpoint: an extra event-loop cycle for every write. ``transport.write`` is synchronous,
    so writes made through it from several tasks stay whole and in order without a lock; the
    caller awaits :meth:`drain` only when the transport says its buffer is full, which keeps
    backpressure exactly as anyio has it (its protocol pauses writing at any buffered byte).
    """

    __slots__ = ("_protocol", "_transport")

    def __init__(self, transport: Any, protocol: Any) -> None:
        self._transport = transport
        self._protocol = protocol

    def write(self, data: bytes) -> bool:
        """Write ``data`` now; return True when the caller must await :meth:`drain`.

        Raises:
            anyio.BrokenResourceError: the connection is closing or lost.
        """
        transport = self._transport
        if transport.is_closing() or self._protocol.exception is not None:
            raise anyio.BrokenResourceError
        try:
            transport.write(data)
        except RuntimeError as exc:  # uvloop, once the transport is closed
            raise anyio.BrokenResourceError from exc
        return not self._protocol.write_event.is_set()

    async def drain(self) -> None:
        """Wait until the transport accepts more (the peer read what was buffered).

        Raises:
            anyio.BrokenResourceError: the connection was lost meanwhile.
        """
        await self._protocol.write_event.wait()
        if self._protocol.exception is not None or self._transport.is_closing():
            raise anyio.BrokenResourceError


def direct_writer(stream: anyio.abc.ByteStream) -> DirectWriter | None:
    """Return a :class:`DirectWriter` for a plain anyio asyncio socket stream, else None."""
    if type(stream).__module__ != "anyio._backends._asyncio":
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        transport is None
        or not hasattr(transport, "write")
        or not isinstance(getattr(protocol, "write_event", None), asyncio.Event)
    ):
        return None
    return DirectWriter(transport, protocol)
