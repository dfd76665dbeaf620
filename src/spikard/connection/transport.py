"""Transport quirks worked around once, where a connection is accepted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

__all__ = [
    "DepartureWatch",
    "DirectReader",
    "DirectWriter",
    "LightEvent",
    "close_now",
    "direct_reader",
    "direct_writer",
    "event_loop_of",
    "pause_unrequested_reads",
    "release_protocol_hooks",
    "remote_address",
    "watch_departure",
]


class LightEvent:
    """``asyncio.Event``'s interface for one event loop, without a waiter deque per instance.

    anyio's stream protocol keeps two events per connection; as asyncio events they cost a
    deque each (about 600 bytes) and a loop lookup (a ``getpid`` on Python 3.11) per wait.
    """

    __slots__ = ("_is_set", "_loop", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True once :meth:`set` was called (and :meth:`clear` not since)."""
        return self._is_set

    def set(self) -> None:
        """Set the flag and wake every waiter."""
        if self._is_set:
            return
        self._is_set = True
        if self._waiters:
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def clear(self) -> None:
        """Reset the flag."""
        self._is_set = False

    async def wait(self) -> bool:
        """Wait until the flag is set."""
        if self._is_set:
            return True
        waiter: asyncio.Future[None] = self._loop.create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            self._waiters.remove(waiter)
        return True


def _is_event(candidate: object) -> bool:
    return isinstance(candidate, (asyncio.Event, LightEvent))


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

    @property
    def writable(self) -> bool:
        """True while the transport takes more without buffering (the peer keeps up)."""
        return bool(self._protocol.write_event.is_set())

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
        or not _is_event(getattr(protocol, "write_event", None))
    ):
        return None
    return DirectWriter(transport, protocol)


class DirectReader:
    """Read from the asyncio transport below an anyio socket stream, pausing it only when full.

    anyio's ``SocketStream.receive`` resumes the transport before waiting and pauses it after
    every wait: two event-loop registrations per read, on every message of a ping-pong. This
    reader keeps the transport reading while its queue holds less than ``high_water`` bytes
    and pauses it above that, so a lagging application still stops the socket (backpressure)
    while a busy connection costs no registration at all. It waits on a bare future that the
    protocol callbacks resolve (``asyncio.Event.wait`` looks the loop up on every call).
    """

    __slots__ = (
        "_buffered",
        "_connection_lost",
        "_eof_received",
        "_high_water",
        "_loop",
        "_low_water",
        "_on_data",
        "_on_end",
        "_protocol",
        "_transport",
        "_waiter",
    )

    def __init__(self, transport: Any, protocol: Any, high_water: int) -> None:
        self._transport = transport
        self._protocol = protocol
        self._loop = getattr(protocol, "event_loop", None) or asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._high_water = high_water
        self._low_water = high_water // 4
        self._buffered = sum(len(chunk) for chunk in protocol.read_queue)
        self._on_data: Callable[[bytes], None] | None = None
        self._on_end: Callable[[], None] | None = None
        # The protocol's own EOF and connection-lost handling runs first, then ours. Bound
        # methods, not closures: :func:`release_protocol_hooks` takes them off at the end.
        self._eof_received: Callable[[], bool | None] = protocol.eof_received
        self._connection_lost: Callable[[Exception | None], None] = protocol.connection_lost
        protocol.data_received = self._data_received
        protocol.eof_received = self._eof_hook
        protocol.connection_lost = self._lost_hook
        transport.set_protocol(protocol)  # uvloop caches the protocol's callbacks

    def set_high_water(self, high_water: int) -> None:
        """Read ahead up to ``high_water`` bytes from now on (pausing the transport above)."""
        self._high_water = high_water
        self._low_water = high_water // 4
        if self._buffered > high_water and self._transport.is_reading():
            self._transport.pause_reading()

    def take_queued(self) -> bytes:
        """Remove and return every byte queued so far (for whoever reads on without it)."""
        queue = self._protocol.read_queue
        data = b"".join(queue)
        queue.clear()
        self._buffered = 0
        return data

    def redirect(
        self, on_data: Callable[[bytes], None] | None, on_end: Callable[[], None] | None
    ) -> None:
        """Hand what arrives from now on to ``on_data`` instead of queueing it.

        ``on_end`` is called after the end of the input; ``None`` restores queueing (and no
        call). The protocol's callbacks stay this reader's: switching costs no registration.
        """
        self._on_data = on_data
        self._on_end = on_end

    def _data_received(self, data: bytes) -> None:
        if self._on_data is not None:
            self._on_data(data)
            return
        protocol = self._protocol
        protocol.read_queue.append(bytes(data))
        protocol.read_event.set()  # for anyio's own receive(), should anyone call it
        self._wake()
        self._buffered += len(data)
        if self._buffered > self._high_water and self._transport.is_reading():
            self._transport.pause_reading()

    @property
    def protocol(self) -> Any:
        """The transport's (anyio) protocol."""
        return self._protocol

    @property
    def transport(self) -> Any:
        """The asyncio transport read from."""
        return self._transport

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the transport runs on."""
        return self._loop

    def _eof_hook(self) -> bool | None:
        keep_open = self._eof_received()
        self._end_of_input()
        return keep_open

    def _lost_hook(self, exc: Exception | None) -> None:
        self._connection_lost(exc)
        self._end_of_input()

    def _end_of_input(self) -> None:
        self._wake()
        if self._on_end is not None:
            self._on_end()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Return the next bytes from the peer.

        Raises:
            anyio.EndOfStream: the peer closed its side.
            anyio.BrokenResourceError: the connection was lost.
        """
        protocol = self._protocol
        transport = self._transport
        while not protocol.read_queue:
            if protocol.exception is not None:
                raise anyio.BrokenResourceError from protocol.exception
            if protocol.is_at_eof or transport.is_closing():
                raise anyio.EndOfStream
            if not transport.is_reading():
                transport.resume_reading()
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        chunk: bytes = protocol.read_queue.popleft()
        if len(chunk) > max_bytes:
            chunk, rest = chunk[:max_bytes], chunk[max_bytes:]
            protocol.read_queue.appendleft(rest)
        self._buffered -= len(chunk)
        if (
            self._buffered < self._low_water
            and not transport.is_reading()
            and not transport.is_closing()
        ):
            transport.resume_reading()
        return chunk


def direct_reader(stream: anyio.abc.ByteStream, high_water: int) -> DirectReader | None:
    """Return a :class:`DirectReader` for a plain anyio asyncio socket stream, else None."""
    if type(stream).__module__ != "anyio._backends._asyncio":
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        transport is None
        or not hasattr(transport, "is_reading")
        or not hasattr(transport, "set_protocol")
        or not _is_event(getattr(protocol, "read_event", None))
    ):
        return None
    return DirectReader(transport, protocol, high_water)


class DepartureWatch:
    """Calls back once when the peer closes or the connection is lost, until :meth:`stop`.

    It listens through the connection's :class:`DirectReader` (see :func:`watch_departure`):
    no task waits for it.
    """

    __slots__ = ("_callback", "_reader")

    def __init__(self, reader: DirectReader, callback: Callable[[], None]) -> None:
        self._reader: DirectReader | None = reader
        self._callback: Callable[[], None] | None = callback
        reader.redirect(None, self._end_of_input)

    def _end_of_input(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def stop(self) -> None:
        """Stop watching: the callback will not be called."""
        self._callback = None
        if self._reader is not None:
            self._reader.redirect(None, None)
            self._reader = None


def watch_departure(reader: DirectReader, callback: Callable[[], None]) -> DepartureWatch:
    """Notice a peer that leaves, through the connection's ``reader``: no task.

    Reading goes on so that EOF can be seen; what arrives meanwhile stays queued for the
    reader, which pauses the transport above its high-water mark. A peer that left already
    (the reader saw its EOF while the request was being handled) is reported at once.
    """
    transport = reader.transport
    protocol = reader.protocol
    watch = DepartureWatch(reader, callback)
    if protocol.is_at_eof or protocol.exception is not None or transport.is_closing():
        watch._end_of_input()
    elif not transport.is_reading():
        transport.resume_reading()
    return watch


def remote_address(stream: anyio.abc.ByteStream) -> Any:
    """The peer's address as the socket reports it, None if unknown.

    On asyncio this asks the transport: anyio's typed attributes build a table of every
    attribute (and query the socket) for each lookup.
    """
    transport = getattr(stream, "_transport", None)
    if transport is not None and type(stream).__module__ == "anyio._backends._asyncio":
        return transport.get_extra_info("peername")
    try:
        return stream.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return None


_HOOKS = ("data_received", "eof_received", "connection_lost", "resume_writing")


def release_protocol_hooks(stream: anyio.abc.ByteStream) -> None:
    """Remove the callbacks :class:`DirectReader`, :class:`DepartureWatch` and feeds installed.

    They are closures over the reader and the transport, which the protocol references in
    turn: without this the connection's objects wait for the cyclic garbage collector.
    """
    protocol = getattr(stream, "_protocol", None)
    if protocol is None:
        return
    attributes = getattr(protocol, "__dict__", {})
    for name in _HOOKS:
        attributes.pop(name, None)


def event_loop_of(stream: anyio.abc.ByteStream) -> asyncio.AbstractEventLoop | None:
    """The asyncio event loop of a plain anyio asyncio socket stream; None for other streams.

    A stream that spikard's own accept made knows its loop (``protocol.event_loop``), which
    spares a loop lookup: on Python 3.11 each one is a ``getpid`` system call.
    """
    if type(stream).__module__ != "anyio._backends._asyncio":
        return None
    loop: asyncio.AbstractEventLoop | None = getattr(
        getattr(stream, "_protocol", None), "event_loop", None
    )
    return loop or asyncio.get_running_loop()


def close_now(stream: anyio.abc.ByteStream) -> bool:
    """Close a plain anyio asyncio socket stream without awaiting; False for other streams.

    What anyio's ``aclose()`` does, less its event-loop turn: a transport with nothing left to
    send closes gracefully, one still holding bytes for a peer that stopped reading is
    aborted (anyio aborts it one turn later).
    """
    transport = getattr(stream, "_transport", None)
    if transport is None or type(stream).__module__ != "anyio._backends._asyncio":
        return False
    if not transport.is_closing():
        if transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()
    return True
