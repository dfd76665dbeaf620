"""The asyncio driver: an ``asyncio.Protocol`` that owns one plain TCP connection.

On asyncio (and uvloop) without TLS, the listening sockets go to ``loop.create_server``, and
every accepted connection gets an :class:`AsyncioTransport`. It implements the driver contract
of :mod:`.transport` directly on the event loop's callbacks:

- **Reading.** Until a consumer takes over, ``data_received`` queues the chunks for
  :meth:`~AsyncioTransport.receive` (HTTP), pausing the socket above ``read_ahead`` bytes.
  After :meth:`~AsyncioTransport.start_feeding` every chunk goes straight to the consumer from
  ``data_received``: no task and no copy; a consumer that says "full" pauses the socket until
  it calls :meth:`~AsyncioTransport.resume_feeding`. EOF and a lost connection end the input
  once, after every byte before them.
- **Writing.** ``transport.write`` is synchronous and never splits; the write buffer's
  high-water mark is 0, so a writer that awaits :meth:`~AsyncioTransport.drain` waits until the
  kernel took every byte, which is what paces a producer. :meth:`~AsyncioTransport.defer`
  lets the connection write a burst of replies in one call, on the loop's next turn.
- **Closing.** :meth:`~AsyncioTransport.close` lets asyncio flush, then close;
  :meth:`~AsyncioTransport.abort` closes at once. ``connection_lost`` wakes every waiter.
  :meth:`~AsyncioTransport.aclose` bounds the flush with a loop timer that aborts.

Nothing here knows HTTP or WebSocket; nothing here is anyio.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Callable
from typing import IO, cast

from .events import LightEvent
from .transport import FeedConsumer, SendfileUnavailable, TransportClosed, TransportState

__all__ = ["AsyncioTransport", "serve_sockets"]

_READ_AHEAD = 65536


class AsyncioTransport(asyncio.Protocol):
    """One accepted connection on asyncio; see the module docs.

    Args:
        loop: the running event loop.
        on_connect: called from ``connection_made`` with this transport (starts its task).
        read_ahead: bytes queued for :meth:`receive` before the socket is paused.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_consumer",
        "_drained",
        "_input_ended",
        "_lost",
        "_on_connect",
        "_read_ahead",
        "_read_waiter",
        "_sendfile",
        "_state",
        "_transport",
        "_write_paused",
        "_written",
        "loop",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_connect: Callable[[AsyncioTransport], None],
        read_ahead: int = _READ_AHEAD,
    ) -> None:
        self.loop = loop
        self._on_connect: Callable[[AsyncioTransport], None] | None = on_connect
        self._transport: asyncio.Transport | None = None
        self._state = TransportState.OPEN
        self._read_ahead = read_ahead
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._read_waiter: asyncio.Future[None] | None = None
        self._input_ended = False
        self._consumer: FeedConsumer | None = None
        self._write_paused = False
        self._drained: LightEvent | None = None
        self._written = 0
        self._lost: LightEvent | None = None
        self._sendfile = True
        """False once the loop refused ``sendfile`` for this transport (uvloop, TLS)."""

    # ---- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        self._transport = transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
        transport.set_write_buffer_limits(0)
        if not type(self.loop).__module__.startswith("uvloop"):  # uvloop sets it already
            raw = transport.get_extra_info("socket")
            if raw is not None:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        on_connect, self._on_connect = self._on_connect, None
        if on_connect is not None:
            on_connect(self)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        consumer = self._consumer
        if consumer is not None:
            if not consumer.feed(data):
                self._pause_reading()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._wake_reader()
        if self._buffered > self._read_ahead:
            self._pause_reading()

    def eof_received(self) -> bool:  # noqa: D102
        self._end_input()
        return True  # keep the transport open for our last writes; we close it

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._state = TransportState.CLOSED
        self._end_input()
        self._wake_drainer()
        if self._lost is not None:
            self._lost.set()

    def pause_writing(self) -> None:  # noqa: D102
        self._write_paused = True

    def resume_writing(self) -> None:  # noqa: D102
        self._write_paused = False
        self._wake_drainer()
        if self._consumer is not None:
            self._consumer.writable()

    # ---- the Transport contract: reading -----------------------------------------------------

    @property
    def remote_address(self) -> tuple[str, int] | None:
        """The peer's (host, port), None if unknown."""
        peer = None if self._transport is None else self._transport.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None

    @property
    def local_address(self) -> tuple[str, int] | None:
        """This end's (host, port), None if unknown."""
        local = None if self._transport is None else self._transport.get_extra_info("sockname")
        return (str(local[0]), int(local[1])) if isinstance(local, tuple) else None

    def new_event(self) -> LightEvent:
        """An event of this loop, settable from the transport's callbacks."""
        return LightEvent(self.loop)

    def time(self) -> float:
        """The loop's clock."""
        return self.loop.time()

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes from the peer; ``b""`` once the input ended."""
        chunks = self._chunks
        while not chunks:
            if self._input_ended:
                return b""
            self._resume_reading()
            self._read_waiter = self.loop.create_future()
            try:
                await self._read_waiter
            finally:
                self._read_waiter = None
        chunk = chunks.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            chunks.appendleft(rest)
        self._buffered -= len(chunk)
        if self._buffered <= self._read_ahead >> 2:
            self._resume_reading()
        return chunk

    def start_feeding(self, consumer: FeedConsumer) -> None:
        """Push what was read ahead, then every later byte, into ``consumer``."""
        self._consumer = consumer
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        if data and not consumer.feed(data):
            self._pause_reading()
        elif self._input_ended:
            consumer.end_of_input()
        else:
            self._resume_reading()

    def resume_feeding(self) -> None:
        """Read again: the consumer has room."""
        self._resume_reading()

    def pause_feeding(self) -> None:
        """Stop reading until :meth:`resume_feeding`."""
        self._pause_reading()

    def stop_feeding(self) -> None:
        """Forget the consumer (no reference cycle is left behind)."""
        self._consumer = None

    # ---- the Transport contract: writing -----------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue ``data`` after every earlier write; see :class:`~.transport.Transport`."""
        transport = self._transport
        if self._state is not TransportState.OPEN or transport is None or transport.is_closing():
            # is_closing(): a write found the peer gone (reset) and asyncio closes the
            # transport; connection_lost comes on a later turn of the loop, which a sender
            # that never waits would never let come.
            raise TransportClosed
        self._written += len(data)
        try:
            transport.write(data)
        except RuntimeError as exc:  # uvloop, once the transport is closed
            raise TransportClosed from exc

    async def sendfile(self, file: IO[bytes], offset: int, count: int) -> int:
        """``loop.sendfile`` without its fallback; see :class:`~.transport.Transport`.

        asyncio's own loop uses ``os.sendfile`` on plain sockets (pausing reads meanwhile);
        uvloop and TLS transports refuse, and then this transport stops asking.
        """
        transport = self._transport
        if self._state is not TransportState.OPEN or transport is None:
            raise TransportClosed
        if not self._sendfile:
            raise SendfileUnavailable
        try:
            sent = await self.loop.sendfile(transport, file, offset, count, fallback=False)
        except (asyncio.SendfileNotAvailableError, NotImplementedError) as exc:
            self._sendfile = False
            raise SendfileUnavailable from exc
        except (OSError, RuntimeError) as exc:  # reset by the peer, or closed meanwhile
            self.abort()
            raise TransportClosed from exc
        self._written += sent
        return sent

    def defer(self, callback: Callable[[], None]) -> bool:
        """Call ``callback`` on the loop's next turn (a write is one system call: batch)."""
        self.loop.call_soon(callback)
        return True

    @property
    def writable(self) -> bool:
        """True while the kernel takes every write at once."""
        return not self._write_paused and self._state is TransportState.OPEN

    async def drain(self) -> None:
        """Wait until the kernel took every queued byte; see :class:`~.transport.Transport`."""
        while self._write_paused and self._state is not TransportState.CLOSED:
            drained = self._drained
            if drained is None:
                drained = self._drained = LightEvent(self.loop)
            await drained.wait()  # a waiter of its own each: cancelling one wakes no other
        if self._state is TransportState.CLOSED:
            raise TransportClosed

    @property
    def bytes_sent(self) -> int:
        """Bytes the kernel took so far."""
        return self._written - self.write_buffer_size

    @property
    def write_buffer_size(self) -> int:
        """Bytes waiting in the transport's write buffer."""
        transport = self._transport
        if transport is None or self._state is TransportState.CLOSED:
            return 0
        return transport.get_write_buffer_size()

    # ---- the Transport contract: closing -----------------------------------------------------

    @property
    def state(self) -> TransportState:
        """Where the transport is in its life."""
        return self._state

    def close(self) -> None:
        """Let asyncio flush what is queued, then close."""
        if self._state is not TransportState.OPEN:
            return
        self._state = TransportState.CLOSING
        self._end_input()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Close at once, dropping what is queued."""
        if self._state is TransportState.CLOSED:
            return
        self._state = TransportState.CLOSED
        self._end_input()
        self._wake_drainer()
        if self._transport is not None:
            self._transport.abort()

    async def aclose(self, timeout: float) -> None:
        """Close; abort if the flush takes longer than ``timeout`` seconds."""
        self.close()
        if self._state is TransportState.CLOSED or not self.write_buffer_size:
            return  # nothing left to send: the close completes on its own
        lost = self._lost = LightEvent(self.loop)
        timer = self.loop.call_later(timeout, self.abort)
        try:
            await lost.wait()
        except BaseException:
            self.abort()
            raise
        finally:
            timer.cancel()

    # ---- internals ---------------------------------------------------------------------------

    def _end_input(self) -> None:
        if self._input_ended:
            return
        self._input_ended = True
        self._wake_reader()
        consumer = self._consumer
        if consumer is not None:
            consumer.end_of_input()

    def _pause_reading(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and transport.is_reading():
            transport.pause_reading()

    def _resume_reading(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing() and not transport.is_reading():
            transport.resume_reading()

    def _wake_reader(self) -> None:
        waiter = self._read_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainer(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None:
            drained.set()


async def serve_sockets(
    sockets: list[socket.socket],
    on_connect: Callable[[AsyncioTransport], None],
    backlog: int = 4096,
) -> None:
    """Accept on ``sockets`` with the running loop until cancelled.

    The loop calls ``listen(backlog)`` on each again (asyncio's default would be 100).

    ``on_connect(transport)`` is called for every accepted connection, from the loop's
    callback: it starts the task that serves it. The loop gets duplicates of the sockets, so
    closing its servers never closes the caller's listening sockets.
    """
    loop = asyncio.get_running_loop()
    servers: list[asyncio.AbstractServer] = []
    try:
        for listening in sockets:
            duplicate = listening.dup()
            try:
                accepting = await loop.create_server(
                    lambda: AsyncioTransport(loop, on_connect), sock=duplicate, backlog=backlog
                )
            except BaseException:
                duplicate.close()
                raise
            servers.append(accepting)
        await asyncio.Event().wait()  # until cancelled
    finally:
        for server in servers:
            server.close()
