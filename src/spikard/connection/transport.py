"""Transport quirks worked around once, where a connection is accepted."""

from __future__ import annotations

from typing import Any

import anyio.abc

__all__ = ["pause_unrequested_reads"]


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
