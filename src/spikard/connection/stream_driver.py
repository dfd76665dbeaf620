"""The portable driver: any anyio byte stream (trio, TLS, ...), read and written by two tasks.

A :class:`StreamTransport` implements the driver contract of :mod:`.transport` on the public
anyio stream API only:

- **Reading.** Pulled reads (HTTP) call ``stream.receive`` in the caller's task. After
  :meth:`~StreamTransport.start_feeding` a reader task reads ``read_size`` bytes at a time
  and hands them to the consumer; when the consumer says "full" the task stops reading until
  :meth:`~StreamTransport.resume_feeding` (so at most one read is held beyond what the
  consumer took). The input ends once, after every byte before it.
- **Writing.** :meth:`~StreamTransport.write` appends to an outgoing buffer and wakes the
  writer task, the only task that ever calls ``stream.send``. It sends at most
  :data:`CHUNK` bytes per call, so a cancelled or failed send can only ever cut the stream
  at its end: a write that is cancelled leaves no partial frame followed by other bytes.
  :meth:`~StreamTransport.drain` waits while more than ``high_water`` bytes are queued.
  Given the stream's ``direct_socket`` (plain TCP on trio, whose stream buffers nothing),
  a write while nothing is queued or in flight first goes to the socket at once, without
  waiting (``socket.send`` on a non-blocking socket); what the kernel does not take is
  queued for the writer task as above. Either way :meth:`write` never waits, so the bytes
  stay in order and whole. With a direct socket the writer task runs only while bytes are
  queued (or to close the stream): an idle connection keeps one task, the reader.
- **Closing.** :meth:`~StreamTransport.close` lets the writer flush and then close the stream;
  :meth:`~StreamTransport.abort` cancels both tasks and closes the stream forcefully. Either
  wakes every waiter. :func:`open_stream_transport` owns the tasks and closes the stream when
  its block ends, whatever happened.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import IO

import anyio
import anyio.abc

from .transport import FeedConsumer, SendfileUnavailable, TransportClosed, TransportState

__all__ = ["CHUNK", "StreamTransport", "open_stream_transport"]

CHUNK = 256 * 1024
"""Most bytes handed to ``stream.send`` at once (a unit of write progress)."""

_STREAM_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


class StreamTransport:
    """One accepted connection as an anyio byte stream; see the module docs.

    Made by :func:`open_stream_transport`, which runs its tasks.

    Args:
        stream: the connection.
        task_group: runs the reader and writer tasks.
        read_size: most bytes per read.
        high_water: queued bytes above which :meth:`drain` waits.
        direct_socket: the non-blocking socket under ``stream``, when writing to it directly
            while nothing is queued keeps the byte order (the stream holds no write buffer
            of its own: plain TCP on trio). None for TLS and buffering streams.
    """

    __slots__ = (
        "_closed",
        "_consumer",
        "_direct",
        "_drained",
        "_in_flight",
        "_input_ended",
        "_outgoing",
        "_paused",
        "_read_scope",
        "_read_size",
        "_resumed",
        "_sent",
        "_state",
        "_stream",
        "_task_group",
        "_write_scope",
        "_writer_running",
        "_writer_wakeup",
        "high_water",
    )

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        task_group: anyio.abc.TaskGroup,
        read_size: int = 65536,
        high_water: int = 65536,
        direct_socket: socket.socket | None = None,
    ) -> None:
        self._stream = stream
        self._direct = direct_socket
        self._task_group = task_group
        self._read_size = read_size
        self.high_water = high_water
        """Queued bytes above which :meth:`drain` waits."""
        self._state = TransportState.OPEN
        self._consumer: FeedConsumer | None = None
        self._input_ended = False
        self._paused = False
        self._resumed: anyio.Event | None = None
        self._outgoing = bytearray()
        self._in_flight = 0
        self._sent = 0
        self._writer_wakeup: anyio.Event | None = None
        self._writer_running = False
        self._drained: anyio.Event | None = None
        self._closed = anyio.Event()
        self._read_scope = anyio.CancelScope()
        self._write_scope = anyio.CancelScope()

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port), None if unknown."""
        try:
            peer = self._stream.extra(anyio.abc.SocketAttribute.remote_address)
        except anyio.TypedAttributeLookupError:
            return None
        return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port), None if unknown."""
        try:
            local = self._stream.extra(anyio.abc.SocketAttribute.local_address)
        except anyio.TypedAttributeLookupError:
            return None
        return (str(local[0]), int(local[1])) if isinstance(local, tuple) else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """Always None: this driver makes no use of an asyncio loop."""
        return None

    def new_event(self) -> anyio.Event:
        """An anyio event."""
        return anyio.Event()

    def time(self) -> float:
        """Anyio's clock."""
        return anyio.current_time()

    # ---- reading ---------------------------------------------------------------------------

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes from the peer; ``b""`` once the input ended."""
        if self._input_ended:
            return b""
        try:
            return await self._stream.receive(max_bytes)
        except _STREAM_ERRORS:
            self._input_ended = True
            return b""

    def start_feeding(self, consumer: FeedConsumer) -> None:
        """Start the reader task: every byte from now on goes to ``consumer``."""
        self._consumer = consumer
        if self._input_ended or self._state is not TransportState.OPEN:
            self._input_ended = False  # reported to the consumer once, now
            self._end_input()
            return
        self._task_group.start_soon(self._read_forever, name="spikard reader")

    def resume_feeding(self) -> None:
        """Let the reader task read again."""
        self._paused = False
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.set()

    def pause_feeding(self) -> None:
        """Stop the reader task after its current read until :meth:`resume_feeding`."""
        self._paused = True

    def stop_feeding(self) -> None:
        """Stop the reader task and forget the consumer."""
        self._consumer = None
        self._read_scope.cancel()

    async def _read_forever(self) -> None:
        with self._read_scope:
            stream = self._stream
            read_size = self._read_size
            while True:
                while self._paused:
                    resumed = self._resumed = anyio.Event()
                    await resumed.wait()
                try:
                    data = await stream.receive(read_size)
                except _STREAM_ERRORS:
                    break
                consumer = self._consumer
                if consumer is None:
                    return
                if not consumer.feed(data):
                    self._paused = True
        self._end_input()

    def _end_input(self) -> None:
        if self._input_ended:
            return
        self._input_ended = True
        consumer = self._consumer
        if consumer is not None:
            consumer.end_of_input()

    # ---- writing ---------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the writer task, or send it now; never waits (see the module docs)."""
        if self._state is not TransportState.OPEN:
            raise TransportClosed
        direct = self._direct
        if direct is not None and not self._outgoing and not self._in_flight:
            try:
                sent = direct.send(data)
            except OSError:  # full (EAGAIN), or broken: the writer task meets it in send
                sent = 0
            self._sent += sent
            if sent == len(data):
                return
            data = data[sent:]
        self._outgoing += data
        self._wake_writer()

    def _wake_writer(self) -> None:
        wakeup = self._writer_wakeup
        if wakeup is not None:
            self._writer_wakeup = None
            wakeup.set()
        elif not self._writer_running:
            self.start_writer()

    def start_writer(self) -> None:
        """Start the writer task (:func:`open_stream_transport` does, or a write that queues)."""
        self._writer_running = True
        self._write_scope = anyio.CancelScope()
        self._task_group.start_soon(self._write_forever, name="spikard writer")

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """Never here: an anyio byte stream has no such call (the caller writes instead)."""
        raise SendfileUnavailable

    def defer(self, callback: Callable[[], None]) -> bool:
        """Refuse: the writer task batches what is queued on its own; write now."""
        return False

    @property
    def writable(self) -> bool:
        """True while at most ``high_water`` bytes are queued."""
        return (
            self._state is TransportState.OPEN
            and len(self._outgoing) + self._in_flight <= self.high_water
        )

    async def drain(self) -> None:
        """Wait while more than ``high_water`` bytes are queued."""
        while (
            self._state is not TransportState.CLOSED
            and len(self._outgoing) + self._in_flight > self.high_water
        ):
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()
        if self._state is TransportState.CLOSED:
            raise TransportClosed

    @property
    def bytes_sent(self) -> int:
        """Bytes ``stream.send`` completed so far."""
        return self._sent

    @property
    def write_buffer_size(self) -> int:
        """Bytes queued or being sent."""
        return len(self._outgoing) + self._in_flight

    async def _write_forever(self) -> None:
        try:
            await self._write_queued()
        finally:
            self._writer_running = False

    async def _write_queued(self) -> None:
        """Send what is queued until the stream closes (or, with a direct socket, it is sent)."""
        outgoing = self._outgoing
        with self._write_scope:
            try:
                while True:
                    while not outgoing and self._state is TransportState.OPEN:
                        if self._direct is not None:
                            return  # writes go out directly again
                        wakeup = self._writer_wakeup = anyio.Event()
                        await wakeup.wait()
                    if not outgoing:
                        await self._stream.aclose()  # closing, and everything went out
                        self._finish(stream_closed=True)
                        return
                    chunk = bytes(outgoing[:CHUNK])
                    del outgoing[:CHUNK]
                    self._in_flight = len(chunk)
                    await self._stream.send(chunk)
                    self._in_flight = 0
                    self._sent += len(chunk)
                    if len(outgoing) <= self.high_water >> 2:
                        self._wake_drainer()
                        if self._consumer is not None:
                            self._consumer.writable()
            except _STREAM_ERRORS:
                pass
        self._finish()

    def _wake_drainer(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.set()

    # ---- closing ---------------------------------------------------------------------------

    @property
    def state(self) -> TransportState:
        """Where the transport is in its life."""
        return self._state

    def close(self) -> None:
        """Let the writer flush what is queued, then close the stream."""
        if self._state is not TransportState.OPEN:
            return
        self._state = TransportState.CLOSING
        self._read_scope.cancel()
        self._wake_writer()  # it closes the stream once everything went out

    def abort(self) -> None:
        """Stop both tasks and close the stream forcefully."""
        if self._state is TransportState.CLOSED:
            return
        self._read_scope.cancel()
        self._write_scope.cancel()
        self._finish()

    def _finish(self, stream_closed: bool = False) -> None:
        """Enter ``CLOSED``: wake everyone; the stream is closed (forcefully, unless it was)."""
        if self._state is TransportState.CLOSED:
            return
        self._state = TransportState.CLOSED
        if not stream_closed:
            self._task_group.start_soon(anyio.aclose_forcefully, self._stream)
        self._outgoing.clear()
        self._in_flight = 0
        self._end_input()
        self._wake_drainer()
        self._closed.set()

    async def aclose(self, timeout: float) -> None:
        """Flush and close; abort if that takes longer than ``timeout`` seconds."""
        self.close()
        with anyio.move_on_after(timeout):
            await self._closed.wait()
        self.abort()


@asynccontextmanager
async def open_stream_transport(
    stream: anyio.abc.ByteStream,
    read_size: int = 65536,
    direct_socket: socket.socket | None = None,
) -> AsyncIterator[StreamTransport]:
    """Run a :class:`StreamTransport` over ``stream`` for the block; close it at the end.

    ``direct_socket``: see :class:`StreamTransport`.
    """
    async with anyio.create_task_group() as task_group:
        transport = StreamTransport(stream, task_group, read_size, direct_socket=direct_socket)
        if direct_socket is None:
            transport.start_writer()
        try:
            yield transport
        finally:
            transport.abort()
