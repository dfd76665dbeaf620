"""Push a transport's bytes into a consumer from the transport's own callbacks (asyncio).

A reader task costs a task, its coroutine frames and an event-loop wakeup for every read,
before the message it carries wakes the application. A :class:`TransportFeed` instead
hands every received chunk to its consumer inside ``data_received``, so a message costs one
wakeup: the application's. Backpressure keeps its meaning without a task to block:

- each read is handed over whole (no copy) while the consumer keeps up;
- the consumer returns False from :meth:`FeedConsumer.feed` when it cannot take more (its
  queue is full); the feed then keeps what arrives in a backlog, pauses the transport once
  the backlog passes ``high_water`` bytes, and waits for the consumer to call
  :meth:`TransportFeed.resume`, after which the backlog goes over ``chunk_size`` bytes at a
  time, for as long as the consumer takes them;
- the consumer calls :meth:`TransportFeed.pause_until_writable` when its replies filled the
  transport's write buffer, so a peer that sends pings and never reads stops being read;
- the end of the input (EOF, connection lost) reaches the consumer after every byte that
  came before it.

Nothing here knows about WebSocket frames.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from .transport import DirectReader

__all__ = ["FeedConsumer", "TransportFeed"]


class FeedConsumer(Protocol):
    """What a :class:`TransportFeed` feeds."""

    def feed(self, data: bytes) -> bool:
        """Take ``data``; return False to stop the feed until it is resumed."""

    def end_of_input(self) -> None:
        """The peer closed its side or the connection was lost; called once."""


class TransportFeed:
    """Calls ``consumer.feed(chunk)`` from the transport's callbacks until :meth:`stop`.

    Args:
        reader: the :class:`~.transport.DirectReader` installed on the stream; the bytes it
            queued already are fed first.
        consumer: what takes the bytes.
        chunk_size: the largest piece of the backlog handed over at once.
        high_water: backlog size above which the transport stops reading.
    """

    __slots__ = (
        "_backlog",
        "_chunk_size",
        "_consumer",
        "_eof_pending",
        "_high_water",
        "_low_water",
        "_protocol",
        "_reader",
        "_resume_writing",
        "_stalled",
        "_stopped",
        "_transport",
        "_write_blocked",
    )

    def __init__(
        self, reader: DirectReader, consumer: FeedConsumer, chunk_size: int, high_water: int
    ) -> None:
        protocol: Any = reader.protocol
        transport: Any = reader.transport
        self._protocol = protocol
        self._transport = transport
        self._consumer = consumer
        self._chunk_size = chunk_size
        self._high_water = high_water
        self._low_water = high_water // 4
        self._backlog = bytearray(reader.take_queued())  # what came before the feed took over
        self._stalled = False
        self._stopped = False
        self._write_blocked = False
        self._eof_pending = protocol.is_at_eof or protocol.exception is not None
        self._reader = reader
        reader.redirect(self._data_received, self._end_of_input)
        self._resume_writing: Callable[[], None] = protocol.resume_writing
        protocol.resume_writing = self._writable

    def start(self, stalled: bool = False) -> None:
        """Feed what is already buffered and let the transport read.

        With ``stalled`` the consumer is full already: nothing is fed until :meth:`resume`.
        """
        self._stalled = stalled
        if stalled:
            self._update_reading()
        else:
            self._drain()

    def _data_received(self, data: bytes) -> None:
        if self._stopped:
            return
        if self._stalled or self._backlog:
            self._backlog += data
            if self._stalled:
                self._update_reading()
            else:
                self._drain()
            return
        # A read is at most a few hundred KiB: the consumer takes it whole, no copy.
        if not self._consumer.feed(data):
            self._stalled = True

    def _end_of_input(self) -> None:
        if self._stopped:
            return
        self._eof_pending = True
        if not self._stalled and not self._backlog:
            self._finish_input()

    def _finish_input(self) -> None:
        self._eof_pending = False
        self._stopped = True
        self._consumer.end_of_input()

    @property
    def has_backlog(self) -> bool:
        """True when bytes (or the end of the input) wait to be fed."""
        return bool(self._backlog) or self._eof_pending

    def resume(self) -> None:
        """The consumer can take more again: feed the backlog, then read on."""
        if self._stalled:
            self._stalled = False
            self._drain()

    def pause_until_writable(self) -> None:
        """Stop reading until the transport's write buffer has drained."""
        if not self._write_blocked:
            self._write_blocked = True
            self._update_reading()

    def _writable(self) -> None:
        self._resume_writing()
        if self._write_blocked:
            self._write_blocked = False
            self._update_reading()

    def _drain(self) -> None:
        backlog = self._backlog
        consumer = self._consumer
        size = self._chunk_size
        while backlog and not self._stalled and not self._stopped:
            with memoryview(backlog) as view:
                chunk = bytes(view[:size])
            del backlog[:size]
            if not consumer.feed(chunk):
                self._stalled = True
        if self._stopped:
            return
        if self._eof_pending and not self._stalled and not backlog:
            self._finish_input()
            return
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if self._write_blocked or len(self._backlog) > self._high_water:
            if transport.is_reading():
                transport.pause_reading()
        elif len(self._backlog) < self._low_water and not transport.is_reading():
            transport.resume_reading()

    def stop(self) -> None:
        """Stop feeding: later bytes queue in the reader again; the feed's hooks come off."""
        self._stopped = True
        self._backlog.clear()
        self._reader.redirect(None, None)
        attributes = self._protocol.__dict__
        if attributes.get("resume_writing") == self._writable:
            del attributes["resume_writing"]
